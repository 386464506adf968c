"""Log batching, exactly-once positions and followers, against a fake log source that filters by sinceTime
as the kubelet does (every line stamped at or after the second asked for, in file order)."""

from __future__ import annotations

import asyncio

import pytest

from colonies_operator.colonies import ColoniesUnreachable, Forbidden, ServerError
from colonies_operator.core.loglines import (
    ReplayCursor,
    count_shipped_lines,
    current_pods,
    normalize_timestamp,
    note_line,
    replacement_line,
    split_timestamp,
)
from colonies_operator.engine.logs import ContainerFollower, LogShipper
from tests.unit.virtual_time import run_virtual


def run(coro):
    return asyncio.run(coro)


class Sink:
    """A Colonies stand-in for addlog: fails with the given errors first, then takes everything."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.messages: list[str] = []
        self.refused: list[Exception] = []

    async def send(self, message: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.messages.append(message)

    def shipper(self) -> LogShipper:
        return LogShipper(self.send, self.refused.append, name="test")

    @property
    def lines(self) -> list[str]:
        return "".join(self.messages).splitlines()


def test_lines_are_batched_in_order():
    async def main():
        sink = Sink()
        shipper = sink.shipper()
        for i in range(5000):
            shipper.add(f"line {i}")
        assert await shipper.flush()
        shipper.close()
        return sink
    sink = run(main())
    assert sink.lines == [f"line {i}" for i in range(5000)]
    assert len(sink.messages) <= 3


@pytest.mark.parametrize("error", [ColoniesUnreachable("down"), ServerError("boom", status=500),
                                   Forbidden("not running", status=403)])
def test_a_failed_batch_is_kept_and_sent_again_in_order(error):
    async def main():
        sink = Sink(error)
        shipper = sink.shipper()
        shipper.add("a")
        assert await shipper.flush() is False and sink.lines == []
        shipper.add("b")
        assert await shipper.flush() is True
        shipper.close()
        return sink
    sink = run(main())
    assert sink.lines == ["a", "b"]
    assert len(sink.refused) == (1 if error.status == 403 else 0)  # 403: the reconciler re-reads the process


def test_timestamps_compare_in_time_order_whatever_their_precision():
    assert normalize_timestamp("2026-01-01T00:00:00.12Z") < normalize_timestamp("2026-01-01T00:00:00.123Z")
    assert normalize_timestamp("2026-01-01T00:00:01Z") > normalize_timestamp("2026-01-01T00:00:00.999999999Z")


def test_an_error_body_is_not_taken_for_log_lines():
    with pytest.raises(ValueError, match="not a timestamped log line"):
        split_timestamp(b'{"kind":"Status","code":503}\n')


def test_count_shipped_lines_per_container():
    messages = ["[0/proc-0] a\n[0/proc-1] b\n", "[0/proc-0] c\n"]
    assert count_shipped_lines(messages, ["[0/proc-0] ", "[0/proc-1] "]) == {"[0/proc-0] ": 2, "[0/proc-1] ": 1}
    assert count_shipped_lines(["x\ny\n", "z\n"], [""]) == {"": 3}


def test_shipped_lines_count_only_the_pod_that_runs_each_index_now():
    # A restarted operator resumes each pod index after the lines of the pod that runs it now: those before the
    # last replacement line were the disrupted pod's, and the operator's own lines are no container's.
    single = ["a\nb\n", note_line("pod 0 (p-1) was disrupted: ...") + "\n", replacement_line("0", "p-2", "p-1") + "\n",
              "c\n", note_line("queued in LocalQueue q (Kueue): waiting") + "\n"]
    assert count_shipped_lines(single, [""]) == {"": 1}
    assert current_pods(single) == {"0": "p-2"}
    multi = ["[0/main] a\n[1/main] b\n", replacement_line("1", "p-1b", "p-1a") + "\n", "[0/main] c\n[1/main] d\n"]
    assert count_shipped_lines(multi, ["[0/main] ", "[1/main] "]) == {"[0/main] ": 2, "[1/main] ": 1}
    assert current_pods(multi) == {"1": "p-1b"}


def test_replay_cursor_counts_the_lines_of_its_window():
    cursor = ReplayCursor()
    for stamp in ("2026-01-01T00:00:00.100000000Z", "2026-01-01T00:00:01.100000000Z",
                  "2026-01-01T00:00:03.500000000Z", "2026-01-01T00:00:01.900000000Z",
                  "2026-01-01T00:00:03.600000000Z"):
        cursor.observe(stamp)
    assert cursor.since_time() == "2026-01-01T00:00:01Z"
    assert cursor.replayed == 4  # 01.1, 03.5, 01.9, 03.6: everything stamped from 01 on


class FakeLog:
    """A container's log file; `open(since)` yields what the kubelet would, `cuts` end streams early."""

    def __init__(self, lines: list[tuple[str, str]], cuts: list[int]) -> None:
        self.lines, self.cuts, self.opened = lines, list(cuts), []
        self.done = False

    async def open(self, since: str | None):
        self.opened.append(since)
        cut = self.cuts.pop(0) if self.cuts else None
        sent = 0
        for stamp, text in self.lines:
            if since and stamp[:19] + "Z" < since:
                continue
            if cut is not None and sent >= cut:
                return
            sent += 1
            yield f"{stamp} {text}\n".encode()
        self.done = True


def follow(fake: FakeLog, *, skip: int = 0) -> list[str]:
    async def main():
        sink = Sink()
        shipper = sink.shipper()
        finished = asyncio.Event()
        follower = ContainerFollower(open_stream=fake.open, container_done=lambda: fake.done, shipper=shipper,
                                     prefix="", skip_lines=skip, name="t", on_finished=finished.set,
                                     limiters=(asyncio.Semaphore(1),))
        await asyncio.wait_for(follower.finished.wait(), 10)
        await shipper.flush()
        shipper.close()
        return sink.lines
    return run(main())


def test_reconnects_keep_interleaved_stdout_and_stderr_lines():
    # stderr's line at .40 is written after stdout's at .50: a reconnect must neither drop nor repeat it.
    lines = [("2026-01-01T00:00:01.100000000Z", "out 1"), ("2026-01-01T00:00:01.500000000Z", "out 2"),
             ("2026-01-01T00:00:01.400000000Z", "err 1"), ("2026-01-01T00:00:02.100000000Z", "out 3"),
             ("2026-01-01T00:00:01.999000000Z", "err 2"), ("2026-01-01T00:00:02.200000000Z", "out 4")]
    for cuts in ([1], [2], [3], [4], [5], [1, 1, 1, 1, 1], [2, 1, 0, 1]):
        fake = FakeLog(lines, cuts)
        assert follow(fake) == [text for _, text in lines], cuts


def test_an_adopted_stream_skips_the_lines_colonies_already_has():
    lines = [(f"2026-01-01T00:00:0{i}.000000000Z", f"l{i}") for i in range(6)]
    assert follow(FakeLog(lines, [])) == [f"l{i}" for i in range(6)]
    assert follow(FakeLog(lines, []), skip=2) == ["l2", "l3", "l4", "l5"]
    # a stream that breaks in the middle of the skipped part resumes without shipping them
    assert follow(FakeLog(lines, [1]), skip=3) == ["l3", "l4", "l5"]


def test_failure_tail_has_no_nul_and_is_capped():
    async def main():
        shipper = Sink().shipper()
        shipper.add("bad\x00byte")
        shipper.add("x" * 10_000)
        tail = shipper.failure_tail()
        shipper.close()
        return tail
    (tail,) = run(main())
    assert "\x00" not in tail and len(tail) < 1200


class VirtualTime:
    """A clock that moves only when the follower sleeps, so minutes of retries take no time."""

    def __init__(self) -> None:
        self.now = 0.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def test_a_container_whose_log_cannot_be_opened_costs_a_few_requests_and_no_delay_at_its_end():
    # A fake node, or a node whose kubelet is gone: every open fails at once. The follower tries at the start,
    # after 30 s, then every minute, and once more as soon as the container ends (that read would get what a
    # kubelet back by then still has). It used to try every 5 s: seven times over a 20-s container.
    for ends_at, expected in ((20.0, [0.0, 20.0]), (100.0, [0.0, 30.0, 90.0, 100.0])):
        clock = VirtualTime()
        opened: list[float] = []

        async def open_stream(since):
            opened.append(clock.now)
            raise ServerError('Get "https://127.0.0.1:10250/containerLogs/...": connection refused', status=500)
            yield b""  # an async generator, as the real stream is

        async def main():
            follower = ContainerFollower(open_stream=open_stream, container_done=lambda: clock.now >= ends_at,
                                         shipper=Sink().shipper(), prefix="", skip_lines=0, name="t",
                                         on_finished=lambda: None, limiters=(asyncio.Semaphore(1),),
                                         sleep=clock.sleep, clock=lambda: clock.now)
            await asyncio.wait_for(follower.finished.wait(), 10)

        run(main())
        assert opened == pytest.approx(expected, abs=0.5), ends_at


def test_a_stream_that_broke_after_delivering_is_reopened_soon():
    clock = VirtualTime()
    opened: list[float] = []

    async def open_stream(since):
        opened.append(clock.now)
        yield b"2026-01-01T00:00:01.000000000Z a line\n"
        if len(opened) == 1:
            raise ServerError("connection reset", status=None)

    async def main():
        sink = Sink()
        follower = ContainerFollower(open_stream=open_stream, container_done=lambda: len(opened) >= 2,
                                     shipper=sink.shipper(), prefix="", skip_lines=0, name="t",
                                     on_finished=lambda: None, limiters=(asyncio.Semaphore(1),),
                                     sleep=clock.sleep, clock=lambda: clock.now)
        await asyncio.wait_for(follower.finished.wait(), 10)
        await follower._shipper.flush()
        return sink.lines

    assert run(main()) == ["a line"]  # the second stream repeats it: counted off, not shipped twice
    assert opened[1] == 0.5


def test_a_replacement_pod_is_followed_after_the_old_pods_last_line_and_a_line_saying_so():
    """Kubernetes replaced a disrupted pod: the new pod's lines come after every line of the old one, after the
    note on the disruption and the line naming the replacement, each line once."""
    from types import SimpleNamespace

    from colonies_operator.core.plan import JobPlan
    from colonies_operator.engine.attempt_logs import AttemptLogs

    async def main():
        shipped: list[str] = []
        old_may_end = asyncio.Event()

        async def add_log(pid, message, prvkey):
            shipped.append(message)

        async def stream_log(namespace, pod, container, since):
            stamp = "2026-01-01T00:00:0{}.000000000Z"
            if pod == "p-old":
                yield f"{stamp.format(1)} old 1\n".encode()
                await old_may_end.wait()  # its last line comes while it terminates
                yield f"{stamp.format(2)} old 2\n".encode()
            else:
                yield f"{stamp.format(5)} new 1\n".encode()

        def pod(name):
            return {"metadata": {"name": name, "annotations": {"batch.kubernetes.io/job-completion-index": "0"}},
                    "status": {"containerStatuses": [{"name": "main", "state": {
                        "running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}

        view = [pod("p-old")]
        identity = SimpleNamespace(client=SimpleNamespace(add_log=add_log), prvkey="k", colony="c")
        logs = AttemptLogs(identity=identity, pid="p", namespace="ns", kube=SimpleNamespace(stream_log=stream_log),
                           adopted=False, active_pods=lambda: view, wake=lambda: None, on_refused=lambda err: None,
                           stream_limiter=asyncio.Semaphore(4))
        plan = JobPlan(image="i", command=["true"], env={}, nodes=1, processes_per_node=1, cpu=None, memory=None,
                       gpus=0, gpu_name="", walltime=None)
        await logs.follow(plan, view, None)
        await asyncio.sleep(1)
        logs.note_after_pod("p-old", "pod 0 (p-old) was disrupted: EvictionByEvictionAPI: Eviction API: evicting")
        await logs.follow(plan, view + [pod("p-new")], None)
        assert ("p-new", "main") not in logs._followers, "the old pod's last line is still to come"
        old_may_end.set()
        view[:] = [pod("p-new")]  # the old pod is gone
        await asyncio.sleep(1)
        await logs.follow(plan, view, None)
        assert ("p-new", "main") in logs._followers
        await asyncio.sleep(1)
        view[:] = []  # the new pod finished
        while await logs.drain(plan, [], None) is not None:
            await asyncio.sleep(0.5)
        logs.close()
        return "".join(shipped).splitlines()

    assert run_virtual(main()) == [
        "old 1", "old 2", "ColonyOS: pod 0 (p-old) was disrupted: EvictionByEvictionAPI: Eviction API: evicting",
        "ColonyOS: pod 0 continues in pod p-new (replacing p-old); its log follows", "new 1"]
