"""How often the ColoniesExecutor's status is written: a change of conditions soon, the counters at most every
few seconds (a burst changes them many times a second, and each write is an API request and a watch event)."""

from __future__ import annotations

import asyncio
import time

from colonies_operator import executor
from colonies_operator.executor import ExecutorRuntime


class RecordingKube:
    def __init__(self) -> None:
        self.writes: list[tuple[float, dict]] = []

    async def patch_executor_status(self, namespace, name, status):
        self.writes.append((time.monotonic(), status))


def test_counters_are_written_every_few_seconds_and_a_condition_change_at_once(monkeypatch):
    monkeypatch.setattr(executor, "STATUS_DEBOUNCE", 0.01)
    monkeypatch.setattr(executor, "COUNTERS_INTERVAL", 0.5)

    async def main():
        kube = RecordingKube()
        runtime = ExecutorRuntime(kube, None, {"metadata": {"namespace": "ops", "name": "cluster", "generation": 1}},
                                  asyncio.Semaphore(1))
        runtime.set_condition("ColoniesReachable", True, "Connected", "")
        runtime._changed()
        await asyncio.sleep(0.1)
        assert len(kube.writes) == 1
        started = time.monotonic()
        while time.monotonic() - started < 2.0:  # 100 processes succeed, one every 20 ms
            runtime.reconciler.succeeded += 1
            runtime._changed()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.6)
        counter_writes = kube.writes[1:]
        assert 2 <= len(counter_writes) <= 6  # every 0.5 s; it was one every debounce (about 2 s / 0.01 s)
        assert counter_writes[-1][1]["succeededProcesses"] == runtime.reconciler.succeeded  # nothing lost
        # a counter changes (its write waits), then a condition: the condition does not wait with it
        monkeypatch.setattr(executor, "COUNTERS_INTERVAL", 30)
        runtime.reconciler.succeeded += 1
        runtime._changed()
        await asyncio.sleep(0.1)
        writes = len(kube.writes)
        runtime.set_condition("ColoniesReachable", False, "Unreachable", "connection refused")
        changed = time.monotonic()
        runtime._changed()
        while len(kube.writes) == writes and time.monotonic() - changed < 2:
            await asyncio.sleep(0.01)
        assert time.monotonic() - changed < 0.3  # not held back with the counters
        assert kube.writes[-1][1]["conditions"][0]["status"] == "False"
        assert kube.writes[-1][1]["succeededProcesses"] == runtime.reconciler.succeeded
    asyncio.run(main())
