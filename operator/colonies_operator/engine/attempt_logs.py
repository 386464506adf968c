"""The log of one process attempt: a follower per container, one shipper to Colonies, and where to resume.

The ColonyFS steps (init containers, core/fs.py) are followed too; their lines start with "[<pod index>/<step>] ".

The reconciler only asks: follow these pods, drain before closing, close. Followers are bounded per process and
in total (each is a connection to the API server); one that finishes wakes the attempt. A container still waiting
for a slot when its process ends is read once, in full, with a slot of a separate pool of final reads, before the
process is closed.

Where each container's log was shipped up to is written on the Job every few seconds (a Checkpoint, with the
Colonies time of the newest entry it accounts for). An adopted attempt reads it back, and of the process's log in
Colonies only the entries after it, a few at a time (core/loglines.py, AlreadyShipped).

A pod that replaces another (Kubernetes replaced a disrupted one, or Kueue restarted the Job) is followed once the
old pod's lines are all shipped, after a line saying so; a note about a pod (why it was disrupted) waits for that
pod's lines too. So the log reads in order, each line once. The checkpoint names the pod of each index, and a
replacement line in Colonies after it tells a restarted operator that the index went on in another pod.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..colonies import ColoniesError, LogEntry
from ..core.fs import STEPS
from ..core.loglines import (AlreadyShipped, Checkpoint, LogPosition, line_prefix, message_lines, note_line,
                             replaced_pod, replacement_line)
from ..core.names import ANNOTATION_LOG_CHECKPOINT, COMPLETION_INDEX
from ..core.plan import JobPlan
from ..kube.api import KubeApi, KubeError
from .logs import ContainerFollower, LogShipper

if TYPE_CHECKING:
    from .registration import Identity

log = logging.getLogger(__name__)

MAX_LOG_STREAMS = 256  # log streams following at once, over all executors: each is an API server connection
FOLLOWERS_PER_PROCESS = 16
FINAL_READS = 32  # reads of a finished container that never had a slot, at once
DRAIN_STALL_SECONDS = 30.0  # a follower that reads nothing for this long while its process ends is given up
RESTORE_RETRY_SECONDS = 5.0
RESTORE_PAGE = 16  # log entries read at once (each up to 512 KiB) when an adopted attempt reads what was shipped
# A process's checkpoint is written every 10 s while it logs, less often when many stream at once: about 10 Job
# patches (and as many getlogs) a second in all at most. A restart reads that much of a log again, no more.
CHECKPOINT_SECONDS = 10.0
CHECKPOINTS_PER_SECOND = 10.0

Pods = Iterable[dict[str, Any]]
_PREFIX = re.compile(r"^\[(\d+)/([^\]\s]+)\] ")


@dataclasses.dataclass
class LogLimits:
    """The operator's bounds on log streams: following at once in total and per process, and final reads."""

    streams: asyncio.Semaphore
    stream_cap: int
    per_process: int
    final_reads: asyncio.Semaphore

    @classmethod
    def of(cls, streams: int = MAX_LOG_STREAMS, per_process: int = FOLLOWERS_PER_PROCESS,
           final_reads: int = FINAL_READS) -> "LogLimits":
        return cls(asyncio.Semaphore(streams), streams, per_process, asyncio.Semaphore(final_reads))

    def checkpoint_seconds(self) -> float:
        following = self.stream_cap - self.streams._value  # type: ignore[attr-defined]  (slots taken)
        return max(CHECKPOINT_SECONDS, following / CHECKPOINTS_PER_SECOND)


def container_key(pod_index: str, container: str) -> str:
    return f"{pod_index}/{container}"


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The statuses of the containers whose logs go to Colonies: the ColonyFS steps', then the process's."""
    status = pod.get("status") or {}
    return ([s for s in status.get("initContainerStatuses") or [] if s.get("name") in STEPS]
            + list(status.get("containerStatuses") or []))


class AttemptLogs:
    """Follows, ships and drains the containers' logs of one attempt."""

    def __init__(self, *, identity: "Identity", pid: str, namespace: str, job_name: str, kube: KubeApi,
                 adopted: bool, active_pods: Callable[[], list[dict[str, Any]]],
                 job: Callable[[], dict[str, Any] | None], wake: Callable[[], None],
                 on_refused: Callable[[ColoniesError], None], limits: LogLimits) -> None:
        self._identity, self._pid, self._namespace, self._job_name = identity, pid, namespace, job_name
        self._kube = kube
        self._active_pods = active_pods  # the view's running pods of the attempt's Job
        self._job = job  # the view's Job
        self._wake = wake
        self._limits = limits
        self._per_process = asyncio.Semaphore(limits.per_process)
        self._final_read = asyncio.Event()  # set when the process ends: followers without a slot read once
        self._followers: dict[tuple[str, str], ContainerFollower] = {}
        self._by_key: dict[str, ContainerFollower] = {}
        # An adopted attempt first reads where its containers were shipped up to (None until then).
        self._restored: dict[str, tuple[LogPosition | None, AlreadyShipped]] | None = None if adopted else {}
        self._checkpoint: dict[str, tuple[int, LogPosition | None]] = {}
        self._written: str | None = None
        self._writer: asyncio.Task | None = None
        self._pod_of_index: dict[str, str] = {}  # the pod whose lines are shipped for each pod index
        self._notes_after_pod: list[tuple[str, str]] = []  # (pod, note): shipped once the pod's lines are
        self._drain_started: float | None = None
        self.shipper = LogShipper(lambda message: identity.client.add_log(pid, message, identity.prvkey),
                                  on_refused, name=f"process {pid}", newest=self._newest_entry,
                                  on_stored=self._stored, mark_seconds=limits.checkpoint_seconds)
        self.drained = False

    async def follow(self, plan: JobPlan | None, pods: Pods, started: dt.datetime | None, *,
                     running_replacements: bool = True) -> bool:
        """Starts a follower for every container of `pods` that runs or ran and has none yet. An adopted attempt
        first reads where its containers were shipped up to; False when that cannot be read yet. A pod replacing
        another waits until the other's lines are shipped; without `running_replacements` (draining: the process
        ends), one whose containers still run is not followed at all."""
        if plan is None or self.shipper.closed:
            return True
        self._ship_notes()
        multi = plan.containers_total > 1
        for pod in pods:
            meta = pod["metadata"]
            name = meta["name"]
            index = (meta.get("annotations") or {}).get(COMPLETION_INDEX, "0")
            new = [status for status in _statuses(pod)
                   if (name, status["name"]) not in self._followers
                   and ((status.get("state") or {}).get("running") or (status.get("state") or {}).get("terminated"))]
            if not new:
                continue
            if self._restored is None:
                if self._job() is None:
                    return False  # its checkpoint is on the Job: wait for the view to show it
                self._restored = await self._restore(plan, started)
                if self._restored is None:
                    return False  # Colonies cannot say what it holds yet: follow later, from the right place
            current = self._pod_of_index.get(index)
            if current is not None and current != name:
                if self._following(current):
                    continue  # the old pod's last lines first: its follower's end wakes the attempt
                if not running_replacements and any((s.get("state") or {}).get("running") for s in new):
                    continue
                self._ship_notes()
                self.shipper.add(replacement_line(index, name, current))
                for status in new:  # where the old pod was shipped up to says nothing of this one
                    self._restored.pop(container_key(index, status["name"]), None)
                    self._checkpoint.pop(container_key(index, status["name"]), None)
            self._pod_of_index[index] = name
            for status in new:
                key = container_key(index, status["name"])
                position, ahead = self._restored.pop(key, (None, None))
                self._start_follower(name, status["name"], key,
                                     line_prefix(index, status["name"], multi or status["name"] in STEPS),
                                     position, ahead)
        return True

    def note(self, text: str) -> None:
        """A line of the operator's own in the process log (why it waits)."""
        if not self.shipper.closed:
            self.shipper.add(note_line(text))

    def note_after_pod(self, pod_name: str, text: str) -> None:
        """A line about a pod (why it was disrupted), shipped once that pod's own lines are."""
        self._notes_after_pod.append((pod_name, text))
        self._ship_notes()

    def _following(self, pod_name: str) -> bool:
        return any(pod == pod_name and not follower.finished.is_set()
                   for (pod, _), follower in self._followers.items())

    def _ship_notes(self, force: bool = False) -> None:
        waiting = []
        for pod_name, text in self._notes_after_pod:
            if not force and self._following(pod_name):
                waiting.append((pod_name, text))
            else:
                self.note(text)
        self._notes_after_pod = waiting

    def _start_follower(self, pod_name: str, container: str, key: str, prefix: str, position: LogPosition | None,
                        ahead: AlreadyShipped | None) -> None:
        namespace, kube = self._namespace, self._kube
        follower = ContainerFollower(
            open_stream=lambda since, follow: kube.stream_log(namespace, pod_name, container, since, follow=follow),
            container_done=lambda: self._container_done(pod_name, container),
            shipper=self.shipper, prefix=prefix, position=position, shipped_ahead=ahead,
            name=f"logs {namespace}/{pod_name}/{container}", on_finished=self._wake,
            limiters=(self._per_process, self._limits.streams), final_limiter=self._limits.final_reads,
            final_read=self._final_read)
        self._followers[(pod_name, container)] = follower
        self._by_key[key] = follower

    def _container_done(self, pod_name: str, container: str) -> bool:
        for pod in self._active_pods():
            if pod["metadata"]["name"] != pod_name:
                continue
            for status in _statuses(pod):
                if status["name"] == container:
                    return bool((status.get("state") or {}).get("terminated"))
        return True  # the pod finished (it left the view of running pods) or is gone

    # -- where the log was shipped up to ---------------------------------------------------------------------

    async def _restore(self, plan: JobPlan,
                       started: dt.datetime | None) -> dict[str, tuple[LogPosition | None, AlreadyShipped]] | None:
        """Per container: the position the Job's checkpoint holds, and the lines Colonies holds after it. None
        when Colonies cannot say now (the attempt is woken to try again). A container the checkpoint does not
        name counts from the attempt's start (entries logged before it belong to earlier attempts). A replacement
        line after the checkpoint starts its pod index over: the new pod's lines from its first."""
        job = self._job() or {}
        text = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_LOG_CHECKPOINT)
        saved = Checkpoint.from_annotation(text)
        checkpoint, pod_of_index = dict(saved.containers), dict(saved.pods)
        attempt_start = int(started.timestamp() * 1_000_000) * 1000 - 1 if started else 0
        multi = plan.containers_total > 1
        steps = plan.fs.steps if plan.fs else []
        step_keys = {container_key(str(i), c) for i in range(plan.nodes) for c in steps}
        keys = [container_key(str(i), c) for i in range(plan.nodes) for c in plan.container_names]
        marks = {key: checkpoint.get(key, (attempt_start, None))[0] for key in [*step_keys, *keys]}
        ahead = {key: AlreadyShipped() for key in marks}
        since = min(marks.values()) if marks else attempt_start
        identity = self._identity
        read = 0
        try:
            while True:
                page = await identity.client.get_logs(identity.colony, self._pid, identity.prvkey, since=since,
                                                      count=RESTORE_PAGE)
                for entry in page:
                    for line in message_lines(entry.message):
                        replaced = replaced_pod(line)
                        if replaced:
                            index, pod = replaced
                            later = [key for key in marks if key.split("/", 1)[0] == index
                                     and entry.timestamp > marks[key]]
                            for key in later:
                                ahead[key] = AlreadyShipped()
                                checkpoint.pop(key, None)
                            if later or index not in pod_of_index:
                                pod_of_index[index] = pod
                            continue
                        # The operator's own lines have no prefix; a step's lines always have one.
                        match = _PREFIX.match(line)
                        key = container_key(match.group(1), match.group(2)) if match else ""
                        if not multi and key not in step_keys:
                            key = keys[0]
                        if key in ahead and entry.timestamp > marks[key]:
                            ahead[key].add(line)
                            read += 1
                if len(page) < RESTORE_PAGE:
                    break
                since = page[-1].timestamp
        except ColoniesError as err:
            log.info("process %s: cannot read its shipped logs yet (%s)", self._pid, err)
            asyncio.get_running_loop().call_later(RESTORE_RETRY_SECONDS, self._wake)
            return None
        self._checkpoint = {key: value for key, value in checkpoint.items() if key in marks}
        self._pod_of_index = pod_of_index
        self._written = text
        log.info("process %s: resuming its log %s, %d lines in Colonies after it", self._pid,
                 "at the Job's checkpoint" if checkpoint else "from the attempt's start", read)
        return {key: (checkpoint.get(key, (0, None))[1], ahead[key]) for key in marks}

    async def _newest_entry(self) -> LogEntry | None:
        identity = self._identity
        return await identity.client.newest_log(identity.colony, self._pid, identity.prvkey)

    def _stored(self, mark: int | None) -> None:
        """A batch was stored; with its Colonies time (`mark`), every container's position is written on the Job
        (one still passing over lines Colonies held before keeps its older checkpoint)."""
        if mark is None or self.shipper.closed:
            return
        for key, follower in self._by_key.items():
            if not follower.pending:
                self._checkpoint[key] = (mark, follower.shipped_position())
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_checkpoint(), name=f"log-checkpoint-{self._pid}")

    async def _write_checkpoint(self) -> None:
        while not self.shipper.closed:
            text = Checkpoint(dict(self._checkpoint), dict(self._pod_of_index)).to_annotation()
            if text == self._written:
                return
            try:
                await self._kube.patch_job(self._namespace, self._job_name,
                                           {"metadata": {"annotations": {ANNOTATION_LOG_CHECKPOINT: text}}})
            except KubeError as err:  # the next batch tries again; meanwhile a restart reads a little more
                log.debug("process %s: cannot write its log checkpoint on the Job (%s)", self._pid, err)
                return
            self._written = text

    # -- the end -----------------------------------------------------------------------------------------------

    async def drain(self, plan: JobPlan | None, pods: Pods, started: dt.datetime | None) -> float | None:
        """Ships every line before the process is closed (Colonies refuses logs after). None when done, else
        seconds until the next look. A container that never had a slot is read once now; a follower that reads
        nothing for DRAIN_STALL_SECONDS is given up."""
        if not await self.follow(plan, pods, started, running_replacements=False):
            return RESTORE_RETRY_SECONDS
        self._final_read.set()
        now = asyncio.get_running_loop().time()
        self._drain_started = self._drain_started or now
        waiting = [f for f in self._followers.values() if not f.finished.is_set()]
        stalled = [f for f in waiting if f.reading and not f.waiting
                   and now - max(f.progress_at, self._drain_started) >= DRAIN_STALL_SECONDS]
        if len(stalled) < len(waiting):
            return 0.5  # a follower that finishes wakes the attempt sooner
        for follower in stalled:
            log.warning("process %s: %s read nothing for %.0fs; closing without the rest of its log",
                        self._pid, follower.name, DRAIN_STALL_SECONDS)
            follower.stop()
        self._ship_notes(force=True)
        if await self.shipper.flush():
            self.drained = True
            return None
        return 2.0  # Colonies did not take the lines: they stay, and are sent before the process is closed

    def stop_following(self) -> None:
        for follower in self._followers.values():
            follower.stop()

    def close(self) -> None:
        """Stops every follower and drops what was not shipped (the attempt is over)."""
        self.stop_following()
        self.shipper.close()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()

    def failure_tail(self) -> list[str]:
        return self.shipper.failure_tail()
