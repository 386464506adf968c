"""How often the ColoniesExecutor's status is written: a change of conditions soon, the counters at most every
few seconds (a burst changes them many times a second, and each write is an API request and a watch event).
On virtual time: the seconds below are the event loop's, and take no wall-clock time."""

from __future__ import annotations

import asyncio

from colonies_operator.engine.status import COUNTERS_SECONDS, DEBOUNCE_SECONDS, StatusWriter
from tests.unit.virtual_time import run_virtual


class Recorder:
    """The API server's side: every status written, with the loop time it was written at."""

    def __init__(self, fail: int = 0) -> None:
        self.writes: list[tuple[float, dict]] = []
        self.fail = fail

    async def write(self, status: dict) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("503 the API server is busy")
        self.writes.append((asyncio.get_running_loop().time(), status))


def writer(recorder: Recorder, counters: dict) -> StatusWriter:
    return StatusWriter(recorder.write, lambda: dict(counters), generation=3, name="ops/cluster")


def test_a_condition_change_is_written_within_the_debounce_with_ready_derived_and_the_generation():
    async def main():
        recorder, counters = Recorder(), {"succeededProcesses": 0}
        status = writer(recorder, counters)
        status.set_condition("ColoniesReachable", True, "Connected", "http://colonies:50080/api")
        status.changed()
        await asyncio.sleep(10)
        assert [t for t, _ in recorder.writes] == [DEBOUNCE_SECONDS]
        written = recorder.writes[0][1]
        assert [c["type"] for c in written["conditions"]] == ["Ready", "ColoniesReachable"]
        assert written["conditions"][0]["status"] == "True" and written["observedGeneration"] == 3
        assert written["succeededProcesses"] == 0
    run_virtual(main())


def test_a_burst_of_counter_changes_is_written_every_few_seconds_and_nothing_is_lost():
    async def main():
        recorder, counters = Recorder(), {"succeededProcesses": 0}
        status = writer(recorder, counters)
        status.changed()
        await asyncio.sleep(1)
        for _ in range(1000):  # a process succeeds every 20 ms for 20 s
            counters["succeededProcesses"] += 1
            status.changed()
            await asyncio.sleep(0.02)
        await asyncio.sleep(COUNTERS_SECONDS + 1)
        times = [t for t, _ in recorder.writes]
        assert 4 <= len(times) - 1 <= 6  # about 20 s / 5 s, where one write per debounce would be 40
        assert all(b - a >= COUNTERS_SECONDS - 1e-6 for a, b in zip(times, times[1:]))
        assert recorder.writes[-1][1]["succeededProcesses"] == 1000
    run_virtual(main())


def test_a_condition_change_is_not_held_back_by_counters_waiting_their_turn():
    async def main():
        recorder, counters = Recorder(), {"succeededProcesses": 0}
        status = writer(recorder, counters)
        status.changed()
        await asyncio.sleep(1)
        counters["succeededProcesses"] = 1
        status.changed()  # its write waits for the counters' interval
        await asyncio.sleep(1)
        status.set_condition("ColoniesReachable", False, "Unreachable", "connection refused")
        changed_at = asyncio.get_running_loop().time()
        status.changed()
        await asyncio.sleep(COUNTERS_SECONDS)
        at, written = recorder.writes[1]
        assert at - changed_at <= DEBOUNCE_SECONDS
        assert written["conditions"][0] == {**written["conditions"][0], "status": "False", "reason": "Unreachable"}
        assert written["succeededProcesses"] == 1
    run_virtual(main())


def test_an_unchanged_status_is_not_written_again():
    async def main():
        recorder = Recorder()
        status = writer(recorder, {"activeProcesses": 0})
        await status.report()
        await status.report()
        status.changed()
        await asyncio.sleep(60)
        assert len(recorder.writes) == 1
    run_virtual(main())


def test_a_failed_write_is_retried_with_the_next_change():
    async def main():
        recorder, counters = Recorder(fail=1), {"activeProcesses": 1}
        status = writer(recorder, counters)
        await status.report()
        assert recorder.writes == []
        status.changed()
        await asyncio.sleep(DEBOUNCE_SECONDS + 0.1)
        assert len(recorder.writes) == 1 and recorder.writes[0][1]["activeProcesses"] == 1
    run_virtual(main())


def test_a_closed_writer_writes_nothing_more():
    async def main():
        recorder = Recorder()
        status = writer(recorder, {})
        status.changed()
        status.close()
        status.changed()
        await asyncio.sleep(60)
        assert recorder.writes == []
    run_virtual(main())
