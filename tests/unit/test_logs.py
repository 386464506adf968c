"""Pod logs to Colonies, each line once: batching, positions, checkpoints, long lines, the stream caps.

Against a fake kubelet that serves what the real one does (the current log file only, every line stamped at or
after the `sinceTime` second, in file order; a stream that follows waits for new lines until the container
ends) and a fake Colonies that stamps each log entry with its own time. Timers run on virtual time."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Callable

import pytest

from colonies_operator.colonies import ColoniesUnreachable, Forbidden, LogEntry, Process, ServerError
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.loglines import (
    CONTINUED,
    PIECE_BYTES,
    AlreadyShipped,
    Checkpoint,
    LineSplitter,
    LogPosition,
    digest,
    normalize_timestamp,
    note_line,
    replaced_pod,
    replacement_line,
    split_timestamp,
)
from colonies_operator.core.names import ANNOTATION_LOG_CHECKPOINT
from colonies_operator.core.plan import plan_job
from colonies_operator.engine.attempt_logs import AttemptLogs, LogLimits
from colonies_operator.engine.logs import HIGH_WATER_BYTES, MAX_BATCH_BYTES, ContainerFollower, LogShipper
from tests.unit.virtual_time import run_virtual

PID = "a" * 64
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
EPOCH = int(START.timestamp()) * 10**9 + 10**9  # Colonies' time (ns) of the first entry: after the attempt began


def stamp(i: int, per_second: int = 100) -> str:
    """The kubelet's time of the i-th line of a container writing `per_second` lines a second."""
    return (START + dt.timedelta(seconds=i / per_second)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def numbered(count: int, start: int = 0, per_second: int = 100) -> list[tuple[str, str]]:
    return [(stamp(i, per_second), f"line {i}") for i in range(start, start + count)]


class FakeKubelet:
    """One container's log: `lines` (stamp, text) in file order, the first `rotated` of them in files the kubelet
    no longer serves. A stream that follows ends after `cuts[n]` lines (an API server's timeout) when given."""

    def __init__(self, lines: list[tuple[str, str]] = (), *, rotated: int = 0, done: bool = True,
                 cuts: list[int] = ()) -> None:
        self.lines, self.rotated, self.done, self.cuts = list(lines), rotated, done, list(cuts)
        self.opened: list[tuple[str | None, bool]] = []
        self.changed = asyncio.Event()

    def write(self, lines: list[tuple[str, str]]) -> None:
        self.lines.extend(lines)
        self.changed.set()

    def end(self) -> None:
        self.done = True
        self.changed.set()

    async def open(self, since: str | None, follow: bool):
        self.opened.append((since, follow))
        cut = self.cuts.pop(0) if self.cuts and follow else None  # a read to the end is never cut short
        index, sent = self.rotated, 0
        while True:
            while index < len(self.lines):
                index = max(index, self.rotated)
                line_stamp, text = self.lines[index]
                index += 1
                if since and line_stamp[:19] < since[:19]:
                    continue
                if cut is not None and sent >= cut:
                    return
                sent += 1
                raw = f"{line_stamp} {text}\n".encode()
                for start in range(0, len(raw), PIECE_BYTES):  # as the API client cuts them
                    yield raw[start:start + PIECE_BYTES]
                await asyncio.sleep(0)
            if not follow or self.done:
                return
            self.changed.clear()
            await self.changed.wait()


class FakeColonies:
    """addlog and getlogs of one process: each entry stamped with the server's time (nanoseconds). `fail`
    holds what the next addlogs do: "timeout after storing", "timeout", or an exception to raise."""

    def __init__(self, entries: list[str] = ()) -> None:
        self.entries = [LogEntry(message=m, timestamp=EPOCH + i) for i, m in enumerate(entries)]
        self.fail: list[Any] = []
        self.read_entries = 0  # entries handed out by getlogs (what an adoption reads)
        self.down = False  # every call fails as unreachable

    def _clock(self) -> int:
        return (self.entries[-1].timestamp if self.entries else EPOCH) + 1

    async def add_log(self, pid: str, message: str, prvkey: str) -> None:
        if self.down:
            raise ColoniesUnreachable("cannot reach the server")
        failure = self.fail.pop(0) if self.fail else None
        if isinstance(failure, Exception):
            raise failure
        if failure != "timeout":
            self.entries.append(LogEntry(message=message, timestamp=self._clock()))
        if failure:
            raise ColoniesUnreachable("cannot reach the server: TimeoutError")

    async def get_logs(self, colony: str, pid: str, prvkey: str, since: int = 0, count: int = 500):
        if self.down:
            raise ColoniesUnreachable("cannot reach the server")
        assert 0 < count <= 500, "Colonies refuses more than 500 entries a read"
        page = [e for e in self.entries if e.timestamp > since][:count]
        self.read_entries += len(page)
        return page

    async def newest_log(self, colony: str, pid: str, prvkey: str):
        if self.down:
            raise ColoniesUnreachable("cannot reach the server")
        return self.entries[-1] if self.entries else None

    @property
    def lines(self) -> list[str]:
        return "".join(e.message for e in self.entries).splitlines()


class FakeIdentity:
    def __init__(self, client: FakeColonies) -> None:
        self.client, self.prvkey, self.colony = client, "k", "dev"


class FakeKube:
    def __init__(self, kubelets: dict[tuple[str, str], FakeKubelet]) -> None:
        self.kubelets = kubelets
        self.annotations: dict[str, str] = {}

    def stream_log(self, namespace, pod, container, since, *, follow=True):
        return self.kubelets[(pod, container)].open(since, follow)

    async def patch_job(self, namespace, name, patch):
        self.annotations.update(patch["metadata"]["annotations"])
        return {}


def plan_of(nodes: int = 1, per_node: int = 1):
    process = Process.from_dict({"processid": PID, "spec": {
        "funcname": "execute", "kwargs": {"docker-image": "busybox:1.35", "cmd": "true"},
        "conditions": {"nodes": nodes, "processespernode": per_node}}})
    config = config_from_spec({"server": {"host": "h"}, "colonyName": "dev",
                               "credentials": {"colonyKeySecret": {"name": "k"}}}, namespace="ns", name="e")
    return plan_job(process, config)


def pod(name: str, index: int, containers: dict[str, FakeKubelet]) -> dict:
    return {"metadata": {"name": name, "annotations": {"batch.kubernetes.io/job-completion-index": str(index)}},
            "status": {"containerStatuses": [{"name": c, "state": {"terminated": {"exitCode": 0}} if k.done else
                                                                     {"running": {"startedAt": "t"}}}
                                             for c, k in containers.items()]}}


class Attempt:
    """An attempt's AttemptLogs over fake kubelets (one pod per index, `containers` per pod) and a fake Colonies."""

    def __init__(self, colonies: FakeColonies, kubelets: dict[str, FakeKubelet] | list[dict[str, FakeKubelet]], *,
                 adopted: bool = False, checkpoint: str | None = None, limits: LogLimits | None = None) -> None:
        self.colonies = colonies
        self.pods_kubelets = kubelets if isinstance(kubelets, list) else [kubelets]
        self.plan = plan_of(len(self.pods_kubelets), len(self.pods_kubelets[0]))
        names = self.plan.container_names
        self.kube = FakeKube({(f"p{i}", names[n]): k for i, pk in enumerate(self.pods_kubelets)
                              for n, k in enumerate(pk.values())})
        job = {"metadata": {"annotations": {ANNOTATION_LOG_CHECKPOINT: checkpoint} if checkpoint else {}}}
        self.logs = AttemptLogs(identity=FakeIdentity(colonies), pid=PID, namespace="ns", job_name="job",
                                kube=self.kube, adopted=adopted, active_pods=self.running_pods, job=lambda: job,
                                wake=lambda: None, on_refused=lambda err: None, limits=limits or LogLimits.of())

    def pods(self) -> list[dict]:
        names = self.plan.container_names
        return [pod(f"p{i}", i, dict(zip(names, pk.values()))) for i, pk in enumerate(self.pods_kubelets)]

    def running_pods(self) -> list[dict]:
        return [p for p in self.pods() if any("running" in s["state"] for s in p["status"]["containerStatuses"])]

    async def follow(self) -> None:
        assert await self.logs.follow(self.plan, self.pods(), START)

    async def drain(self) -> None:
        while (delay := await self.logs.drain(self.plan, self.pods(), START)) is not None:
            await asyncio.sleep(delay)
        self.logs.close()

    async def run(self) -> list[str]:
        await self.follow()
        await self.drain()
        return self.colonies.lines


# -- the text of a log ------------------------------------------------------------------------------------------

def test_timestamps_compare_in_time_order_whatever_their_precision():
    assert normalize_timestamp("2026-01-01T00:00:00.12Z") < normalize_timestamp("2026-01-01T00:00:00.123Z")
    assert normalize_timestamp("2026-01-01T00:00:01Z") > normalize_timestamp("2026-01-01T00:00:00.999999999Z")


def test_an_error_body_is_not_taken_for_log_lines():
    with pytest.raises(ValueError, match="not a timestamped log line"):
        split_timestamp(b'{"kind":"Status","code":503}\n')


def test_a_long_line_is_cut_in_pieces_of_a_fixed_size_whatever_the_chunks():
    line = b"x" * 25 + b"\n"
    for chunk in (1, 3, 10, 100):
        splitter = LineSplitter(piece_bytes=10)
        data = b"a\n" + line + b"b" * 10 + b"\n" + b"tail"
        pieces = [p for i in range(0, len(data), chunk) for p in splitter.feed(data[i:i + chunk])]
        assert pieces == [b"a\n", b"x" * 10, b"x" * 10, b"x" * 5 + b"\n", b"b" * 10 + b"\n"], chunk
        assert splitter.end() == b"tail"


def test_a_checkpoint_reads_back_what_was_written_and_nothing_unreadable():
    position = LogPosition(stamp(7), digest("line 7"))
    written = Checkpoint({"0/main": (1234, position), "1/main": (99, None),
                          "2/main": (5, LogPosition(stamp(8), digest("x"), 3))}, {"0": "job-0-abcde", "2": "job-2-x"})
    assert Checkpoint.from_annotation(written.to_annotation()) == written
    assert Checkpoint.from_annotation("not json").containers == {}
    assert Checkpoint.from_annotation('{"0/main": "12 garbage"}').containers == {}


def test_a_replacement_line_names_the_index_and_the_new_pod_and_no_other_line_does():
    assert replaced_pod(replacement_line("1", "p-1b", "p-1a")) == ("1", "p-1b")
    assert replaced_pod(note_line("pod 0 (p-1) was disrupted: EvictionByEvictionAPI")) is None
    assert replaced_pod("[1/main] ColonyOS: pod 1 continues in pod x (replacing y)") is None


def test_lines_already_in_colonies_are_passed_over_in_order_with_the_operators_own_between():
    ahead = AlreadyShipped(["ColonyOS: Job ns/job created", "line 1", "line 2", "line 2"])
    assert [ahead.consume(line) for line in ("line 1", "line 2", "line 2", "line 3", "line 4")] == \
        [True, True, True, False, False]
    ahead = AlreadyShipped(["line 5", "line 6"])
    assert ahead.consume("line 9") is False and ahead.consume("line 5") is False, \
        "once a new line came, every later one is new"


# -- the shipper ------------------------------------------------------------------------------------------------

def test_lines_are_batched_in_order():
    async def main():
        colonies = FakeColonies()
        shipper = LogShipper(lambda m: colonies.add_log(PID, m, "k"), lambda err: None, name="t")
        for i in range(5000):
            shipper.add(f"line {i}")
        assert await shipper.flush()
        return colonies
    colonies = run_virtual(main())
    assert colonies.lines == [f"line {i}" for i in range(5000)]
    assert len(colonies.entries) <= 3


def test_a_whole_batch_goes_at_once_and_the_rest_within_a_second():
    # A container writing faster than a batch a second is shipped in whole batches as they fill (the follower
    # used to wait a second each time 4 MiB were read), and few RPCs: not a whole batch and its remainder each.
    async def main():
        colonies = FakeColonies()
        shipper = LogShipper(lambda m: colonies.add_log(PID, m, "k"), lambda err: None, name="t")
        shipper.add("first")
        await asyncio.sleep(0.1)
        for i in range(4500):
            shipper.add(f"line {i}")
        await asyncio.sleep(0.1)
        at_once = [len(e.message.splitlines()) for e in colonies.entries]
        await asyncio.sleep(1)
        return at_once, [len(e.message.splitlines()) for e in colonies.entries], colonies.lines
    at_once, later, lines = run_virtual(main())
    assert at_once == [2000, 2000] and later == [2000, 2000, 501]
    assert lines == ["first"] + [f"line {i}" for i in range(4500)]


@pytest.mark.parametrize("failure", [
    pytest.param("timeout after storing", id="a timeout after Colonies stored the batch: not sent again"),
    pytest.param("timeout", id="a timeout before Colonies stored it: sent again"),
    pytest.param(ServerError("bad gateway", status=502), id="a gateway error: sent again"),
    pytest.param(Forbidden("not running", status=403), id="a refusal: kept, and the reconciler told"),
])
@pytest.mark.parametrize("first", [100, 3000], ids=["more lines came meanwhile", "a full batch"])
def test_a_failed_batch_is_sent_again_only_if_colonies_did_not_store_it(failure, first):
    async def main():
        colonies, refused = FakeColonies(), []
        colonies.fail = [failure]
        shipper = LogShipper(lambda m: colonies.add_log(PID, m, "k"), refused.append, name="t",
                             newest=lambda: colonies.newest_log("dev", PID, "k"))
        for i in range(first):
            shipper.add(f"line {i}")
        result = await shipper.flush()
        for i in range(first, first + 50):
            shipper.add(f"line {i}")
        assert await shipper.flush() is True
        return result, colonies, refused
    result, colonies, refused = run_virtual(main())
    assert result is False
    assert colonies.lines == [f"line {i}" for i in range(first + 50)]
    assert len(refused) == (1 if getattr(failure, "status", None) == 403 else 0)


def test_a_batch_whose_fate_is_unknown_waits_until_colonies_can_say():
    async def main():
        colonies = FakeColonies()
        colonies.fail = ["timeout after storing"]
        shipper = LogShipper(lambda m: colonies.add_log(PID, m, "k"), lambda err: None, name="t",
                             newest=lambda: colonies.newest_log("dev", PID, "k"))
        shipper.add("a")
        assert await shipper.flush() is False
        colonies.down = True
        assert await shipper.flush() is False  # cannot tell: nothing is sent
        colonies.down = False
        assert await shipper.flush() is True
        return colonies
    assert run_virtual(main()).lines == ["a"]


def test_failure_tail_has_no_nul_and_is_capped():
    async def main():
        shipper = LogShipper(lambda m: asyncio.sleep(0), lambda err: None, name="t")
        shipper.add("bad\x00byte")
        shipper.add("x" * 10_000)
        tail = shipper.failure_tail()
        shipper.close()
        return tail
    (tail,) = run_virtual(main())
    assert "\x00" not in tail and len(tail) < 1200


# -- one container, while the operator runs --------------------------------------------------------------------

def test_reconnects_keep_interleaved_stdout_and_stderr_lines():
    # stderr's line at .40 is written after stdout's at .50: a reconnect must neither drop nor repeat it.
    lines = [("2026-01-01T00:00:01.100000000Z", "out 1"), ("2026-01-01T00:00:01.500000000Z", "out 2"),
             ("2026-01-01T00:00:01.400000000Z", "err 1"), ("2026-01-01T00:00:02.100000000Z", "out 3"),
             ("2026-01-01T00:00:01.999000000Z", "err 2"), ("2026-01-01T00:00:02.200000000Z", "out 4")]
    for cuts in ([1], [2], [3], [4], [5], [1, 1, 1, 1, 1], [2, 1, 0, 1]):
        kubelet = FakeKubelet(lines, done=False, cuts=cuts)

        async def main():
            attempt = Attempt(FakeColonies(), {"main": kubelet})
            await attempt.follow()
            await asyncio.sleep(5)
            kubelet.end()
            return await attempt.run()
        assert run_virtual(main()) == [text for _, text in lines], cuts


def test_a_rotation_while_the_stream_was_down_ships_what_the_kubelet_still_has_and_says_what_is_missing():
    async def main():
        kubelet = FakeKubelet(numbered(100), done=False, cuts=[50])
        attempt = Attempt(FakeColonies(), {"main": kubelet})
        await attempt.follow()
        await asyncio.sleep(0.1)  # the stream broke after line 49; before it is re-opened the file rotates
        kubelet.write(numbered(100, start=100))
        kubelet.rotated = 80
        await asyncio.sleep(5)
        kubelet.end()
        return await attempt.run()
    lines = run_virtual(main())
    assert lines[:50] == [f"line {i}" for i in range(50)]
    assert lines[50].startswith(f"ColonyOS: lines written between {stamp(49)} and {stamp(80)} may be missing")
    assert lines[51:] == [f"line {i}" for i in range(80, 200)]


def test_a_line_longer_than_colonies_entries_is_shipped_whole_in_order_in_marked_pieces():
    long_text = "".join(chr(0x41 + i % 26) for i in range(1024 * 1024 - 5)) + "é" * 3  # 1 MiB, multibyte too
    lines = numbered(3) + [(stamp(3), long_text)] + numbered(3, start=4)

    async def main():
        colonies = FakeColonies()
        attempt = Attempt(colonies, {"main": FakeKubelet(lines, done=False, cuts=[2, 2])})
        await attempt.follow()
        await asyncio.sleep(5)
        attempt.pods_kubelets[0]["main"].end()
        return await attempt.run(), colonies
    shipped, colonies = run_virtual(main())
    assert all(len(e.message) <= MAX_BATCH_BYTES for e in colonies.entries)
    joined, pieces = [], []
    for line in shipped:
        pieces.append(line.removesuffix(CONTINUED))
        if not line.endswith(CONTINUED):
            joined.append("".join(pieces))
            pieces = []
    assert joined == [text for _, text in lines]
    assert len(shipped) > len(lines), "the long line went as several entries' lines"


# -- an adopted attempt: where the last operator stopped ----------------------------------------------------------

def shipped_before(upto: int, marked: int) -> tuple[FakeColonies, str]:
    """Colonies holding lines 0..upto-1 of a container, in entries of 50 lines, and the Job's checkpoint written
    after line `marked - 1` (the last operator wrote it every few seconds, and was killed after shipping more)."""
    entries = ["".join(f"line {i}\n" for i in range(start, min(start + 50, upto))) for start in range(0, upto, 50)]
    colonies = FakeColonies(entries)
    assert marked % 50 == 0
    mark = colonies.entries[marked // 50 - 1].timestamp
    position = LogPosition(stamp(marked - 1), digest(f"line {marked - 1}"))
    return colonies, Checkpoint({"0/main": (mark, position)}).to_annotation()


@pytest.mark.parametrize("rotated, missing_from", [
    pytest.param(0, None, id="no rotation: every line once"),
    pytest.param(120, None, id="rotated past the checkpoint, not past what was shipped: every line once"),
    pytest.param(150, 150, id="rotated exactly to what was not shipped: every line once, a gap said possible"),
    pytest.param(230, 230, id="rotated past lines never shipped: they are said missing, the rest once"),
])
def test_an_adopted_attempt_ships_every_line_the_kubelet_serves_once(rotated, missing_from):
    # Colonies holds lines 0-149, the checkpoint says 0-99; the kubelet's current file starts at line `rotated`.
    async def main():
        colonies, checkpoint = shipped_before(150, 100)
        kubelet = FakeKubelet(numbered(400), rotated=rotated)
        return await Attempt(colonies, {"main": kubelet}, adopted=True, checkpoint=checkpoint).run()
    lines = run_virtual(main())
    if missing_from is None:
        assert lines == [f"line {i}" for i in range(400)]
    else:  # Colonies has no kubelet times: lines from the checkpoint's on may be missing, for all it can tell
        assert lines[:150] == [f"line {i}" for i in range(150)]
        assert lines[150].startswith(f"ColonyOS: lines written between {stamp(99)} and {stamp(missing_from)} may "
                                     "be missing: the kubelet rotated them")
        assert lines[151:] == [f"line {i}" for i in range(missing_from, 400)]


def test_lines_rotated_away_before_any_checkpoint_are_said_missing():
    # The last operator shipped lines 0-59 and was killed before it wrote a checkpoint; line 60 was rotated out
    # of the file the kubelet serves before anyone read it.
    async def main():
        colonies = FakeColonies(["".join(f"line {i}\n" for i in range(60))])
        kubelet = FakeKubelet(numbered(100), rotated=61)
        return await Attempt(colonies, {"main": kubelet}, adopted=True).run()
    lines = run_virtual(main())
    assert lines[:60] == [f"line {i}" for i in range(60)]
    assert lines[60].startswith(f"ColonyOS: lines written before {stamp(61)}, after those shipped, may be missing")
    assert lines[61:] == [f"line {i}" for i in range(61, 100)]


def test_the_operators_own_lines_are_not_taken_for_the_containers():
    # kwargs debug: the process log starts with the operator's "ColonyOS: " lines; the last operator was killed
    # before it wrote any checkpoint.
    async def main():
        colonies = FakeColonies(["ColonyOS: Job ns/job: 1 pod(s) of 1 container(s)\nColonyOS: command: [...]\n",
                                 "".join(f"line {i}\n" for i in range(60))])
        kubelet = FakeKubelet(numbered(100))
        return await Attempt(colonies, {"main": kubelet}, adopted=True).run()
    lines = run_virtual(main())
    assert lines[2:] == [f"line {i}" for i in range(100)]


def test_an_adopted_attempt_reads_only_the_entries_after_its_checkpoint():
    async def main():
        colonies, checkpoint = shipped_before(100_000, 99_950)
        kubelet = FakeKubelet(numbered(100_100))
        kubelet.rotated = 99_000
        attempt = Attempt(colonies, {"main": kubelet}, adopted=True, checkpoint=checkpoint)
        await attempt.follow()
        read = colonies.read_entries
        lines = await attempt.run()
        return read, lines
    read, lines = run_virtual(main())
    assert read <= 2, f"read {read} entries of 2,000 to resume"
    assert lines[-150:] == [f"line {i}" for i in range(99_950, 100_100)]


def test_the_checkpoint_on_the_job_tells_a_later_operator_where_each_container_is():
    async def main():
        colonies = FakeColonies()
        kubelets = {"a": FakeKubelet(numbered(30), done=False), "b": FakeKubelet(numbered(10, per_second=10))}
        attempt = Attempt(colonies, kubelets)
        await attempt.follow()
        await asyncio.sleep(12)
        assert not attempt.kube.annotations, "a process that logged for a few seconds costs no checkpoint"
        kubelets["a"].write(numbered(5, start=30))
        await asyncio.sleep(3)  # shipped over 10 s after the first batch: a checkpoint is due
        return attempt.kube.annotations, colonies
    annotations, colonies = run_virtual(main())
    checkpoint = Checkpoint.from_annotation(annotations[ANNOTATION_LOG_CHECKPOINT]).containers
    assert set(checkpoint) == {"0/proc-0", "0/proc-1"}
    mark, position = checkpoint["0/proc-0"]
    assert mark == colonies.entries[-1].timestamp and position == LogPosition(stamp(34), digest("line 34"))
    assert checkpoint["0/proc-1"][1] == LogPosition(stamp(9, per_second=10), digest("line 9"))


def test_a_container_faster_than_colonies_waits_in_the_kubelets_file_not_in_the_operators_memory():
    pad = "x" * 190

    async def main():
        colonies = FakeColonies()
        colonies.down = True
        kubelet = FakeKubelet([(s, f"{text} {pad}") for s, text in numbered(100_000)])  # 20 MB
        attempt = Attempt(colonies, {"main": kubelet})
        await attempt.follow()
        await asyncio.sleep(60)
        buffered, dropped = attempt.logs.shipper.buffered_bytes, attempt.logs.shipper.dropped
        colonies.down = False
        return buffered, dropped, await attempt.run()
    buffered, dropped, lines = run_virtual(main())
    assert buffered <= HIGH_WATER_BYTES + 1024 and dropped == 0
    assert lines == [f"line {i} {pad}" for i in range(100_000)]


# -- the caps on streams --------------------------------------------------------------------------------------------

def test_a_container_that_never_got_a_slot_is_read_in_full_before_its_process_closes():
    # The only slot is held by another process's container that runs on; this process's container has ended.
    async def main():
        limits = LogLimits.of(streams=1, per_process=16, final_reads=4)
        long_running = Attempt(FakeColonies(), {"main": FakeKubelet(numbered(5), done=False)}, limits=limits)
        await long_running.follow()
        await asyncio.sleep(1)
        short = Attempt(FakeColonies(), {"main": FakeKubelet(numbered(500))}, limits=limits)
        lines = await asyncio.wait_for(short.run(), 120)
        long_running.logs.close()
        return lines
    assert run_virtual(main()) == [f"line {i}" for i in range(500)]


def test_containers_beyond_the_per_process_cap_are_read_even_when_the_streams_holding_it_hang():
    # The two slots of the process are held by streams that deliver nothing and never end; three more
    # containers ended without a slot. They are read once each, the two hung streams given up.
    async def main():
        kubelets = {f"c{i}": FakeKubelet([(stamp(j), f"c{i} line {j}") for j in range(50)]) for i in range(5)}
        for hung in ("c0", "c1"):
            kubelets[hung].open = hang
        attempt = Attempt(FakeColonies(), kubelets, limits=LogLimits.of(streams=10, per_process=2))
        started = asyncio.get_running_loop().time()
        lines = await asyncio.wait_for(attempt.run(), 300)
        return lines, asyncio.get_running_loop().time() - started
    lines, took = run_virtual(main())
    for i in range(2, 5):
        assert [line for line in lines if line.startswith(f"[0/proc-{i}] ")] == \
            [f"[0/proc-{i}] c{i} line {j}" for j in range(50)]
    assert took < 60


async def hang(since, follow):
    await asyncio.Event().wait()
    yield b""


# -- the follower's pauses ---------------------------------------------------------------------------------------

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

        async def open_stream(since, follow):
            opened.append(clock.now)
            raise ServerError('Get "https://127.0.0.1:10250/containerLogs/...": connection refused', status=500)
            yield b""  # an async generator, as the real stream is

        async def main():
            shipper = LogShipper(lambda m: asyncio.sleep(0), lambda err: None, name="t")
            follower = ContainerFollower(open_stream=open_stream, container_done=lambda: clock.now >= ends_at,
                                         shipper=shipper, prefix="", name="t", on_finished=lambda: None,
                                         limiters=(asyncio.Semaphore(1),), sleep=clock.sleep, clock=lambda: clock.now)
            await asyncio.wait_for(follower.finished.wait(), 10)

        asyncio.run(main())
        assert opened == pytest.approx(expected, abs=0.5), ends_at


def test_a_stream_that_broke_after_delivering_is_reopened_soon():
    clock = VirtualTime()
    opened: list[float] = []

    async def open_stream(since, follow):
        opened.append(clock.now)
        yield b"2026-01-01T00:00:01.000000000Z a line\n"
        if len(opened) == 1:
            raise ServerError("connection reset", status=None)

    async def main():
        colonies = FakeColonies()
        shipper = LogShipper(lambda m: colonies.add_log(PID, m, "k"), lambda err: None, name="t")
        follower = ContainerFollower(open_stream=open_stream, container_done=lambda: len(opened) >= 2,
                                     shipper=shipper, prefix="", name="t", on_finished=lambda: None,
                                     limiters=(asyncio.Semaphore(1),), sleep=clock.sleep, clock=lambda: clock.now)
        await asyncio.wait_for(follower.finished.wait(), 10)
        await shipper.flush()
        return colonies.lines

    assert asyncio.run(main()) == ["a line"]  # the second stream repeats it: passed over, not shipped twice
    assert opened[1] == 0.5


def replacing(old: FakeKubelet, new: FakeKubelet, colonies: FakeColonies, *, adopted: bool = False,
              checkpoint: str | None = None) -> tuple[AttemptLogs, Callable[[list[str]], list[dict]]]:
    """The logs of an attempt whose pod 0 ran as p-old, then p-new (Kubernetes replaced a disrupted pod)."""
    kubelets = {("p-old", "main"): old, ("p-new", "main"): new}
    job = {"metadata": {"annotations": {ANNOTATION_LOG_CHECKPOINT: checkpoint} if checkpoint else {}}}

    view: list[dict] = []  # the pods of the last call, running or not

    def pods(names: list[str]) -> list[dict]:
        view[:] = [pod(name, 0, {"main": kubelets[(name, "main")]}) for name in names]
        return list(view)

    logs = AttemptLogs(identity=FakeIdentity(colonies), pid=PID, namespace="ns", job_name="job",
                       kube=FakeKube(kubelets), adopted=adopted, active_pods=lambda: view, job=lambda: job,
                       wake=lambda: None, on_refused=lambda err: None, limits=LogLimits.of())
    return logs, pods


def test_a_replacement_pod_is_followed_after_the_old_pods_last_line_and_a_line_saying_so():
    """Kubernetes replaced a disrupted pod: the new pod's lines come after every line of the old one, after the
    note on the disruption and the line naming the replacement, each line once."""
    old, new = FakeKubelet([(stamp(1), "old 1")], done=False), FakeKubelet([(stamp(500), "new 1")])
    colonies = FakeColonies()
    plan = plan_of()

    async def main():
        logs, pods = replacing(old, new, colonies)
        await logs.follow(plan, pods(["p-old"]), START)
        await asyncio.sleep(1)
        logs.note_after_pod("p-old", "pod 0 (p-old) was disrupted: EvictionByEvictionAPI: Eviction API: evicting")
        await logs.follow(plan, pods(["p-old", "p-new"]), START)
        assert ("p-new", "main") not in logs._followers, "the old pod's last line is still to come"
        old.write([(stamp(2), "old 2")])
        old.end()
        now = pods(["p-new"])  # the old pod is gone
        await asyncio.sleep(1)
        await logs.follow(plan, now, START)
        assert ("p-new", "main") in logs._followers
        while (later := await logs.drain(plan, pods(["p-new"]), START)) is not None:
            await asyncio.sleep(later)
        logs.close()

    run_virtual(main())
    assert colonies.lines == [
        "old 1", "old 2", "ColonyOS: pod 0 (p-old) was disrupted: EvictionByEvictionAPI: Eviction API: evicting",
        "ColonyOS: pod 0 continues in pod p-new (replacing p-old); its log follows", "new 1"]


def adopted_after_replacement(shipped_of_new: int) -> list[str]:
    """An operator restarted after pod 0 moved from p-old to p-new: the Job's checkpoint is p-old's (written before
    the replacement), and Colonies holds p-old's lines, the replacement line and `shipped_of_new` of p-new's."""
    old = FakeKubelet([(stamp(1), "old 1"), (stamp(2), "old 2")])
    new = FakeKubelet([(stamp(500 + i), f"new {i}") for i in range(3)])
    colonies = FakeColonies(["old 1\nold 2\n"])
    checkpoint = Checkpoint({"0/main": (colonies.entries[-1].timestamp, LogPosition(stamp(2), digest("old 2")))},
                            {"0": "p-old"}).to_annotation()
    if shipped_of_new:
        colonies.entries.append(LogEntry(message="ColonyOS: pod 0 continues in pod p-new (replacing p-old); its log "
                                         "follows\n", timestamp=colonies._clock()))
        colonies.entries.append(LogEntry(message="".join(f"new {i}\n" for i in range(shipped_of_new)),
                                         timestamp=colonies._clock()))
    plan = plan_of()

    async def main():
        logs, pods = replacing(old, new, colonies, adopted=True, checkpoint=checkpoint)
        while (later := await logs.drain(plan, pods(["p-new"]), START)) is not None:
            await asyncio.sleep(later)
        logs.close()

    run_virtual(main())
    return colonies.lines


def test_an_adopted_attempt_finds_the_replacement_in_colonies_and_ships_the_rest_of_the_new_pod_once():
    assert adopted_after_replacement(shipped_of_new=2) == [
        "old 1", "old 2", "ColonyOS: pod 0 continues in pod p-new (replacing p-old); its log follows",
        "new 0", "new 1", "new 2"]


def test_an_adopted_attempt_whose_pod_was_replaced_while_no_operator_ran_follows_the_new_pod_from_its_start():
    assert adopted_after_replacement(shipped_of_new=0) == [
        "old 1", "old 2", "ColonyOS: pod 0 continues in pod p-new (replacing p-old); its log follows",
        "new 0", "new 1", "new 2"]
