"""The log of one process attempt: a follower per container, one shipper to Colonies, and where to resume.

The reconciler only asks: follow these pods, drain before closing, close. Followers are bounded per process and
in total (each is a connection to the API server); one that finishes wakes the attempt.

A pod that replaces another (Kubernetes replaced a disrupted one, or Kueue restarted the Job) is followed once the
old pod's lines are all shipped, after a line saying so; a note about a pod (why it was disrupted) waits for that
pod's lines too. So the log reads in order, each line once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..colonies import ColoniesError
from ..core.loglines import count_shipped_lines, current_pods, line_prefix, note_line, replacement_line
from ..core.names import COMPLETION_INDEX
from ..core.plan import JobPlan
from ..kube.api import KubeApi
from .logs import ContainerFollower, LogShipper

if TYPE_CHECKING:
    from .registration import Identity

log = logging.getLogger(__name__)

FOLLOWERS_PER_PROCESS = 16
DRAIN_TIMEOUT_SECONDS = 30.0
SHIPPED_LINES_RETRY_SECONDS = 5.0

Pods = Iterable[dict[str, Any]]


class AttemptLogs:
    """Follows, ships and drains the containers' logs of one attempt."""

    def __init__(self, *, identity: "Identity", pid: str, namespace: str, kube: KubeApi, adopted: bool,
                 active_pods: Callable[[], list[dict[str, Any]]], wake: Callable[[], None],
                 on_refused: Callable[[ColoniesError], None], stream_limiter: asyncio.Semaphore) -> None:
        self._identity, self._pid, self._namespace, self._kube = identity, pid, namespace, kube
        self._active_pods = active_pods  # the view's running pods of the attempt's Job
        self._wake = wake
        self._stream_limiter = stream_limiter  # in total, over every attempt
        self._per_process = asyncio.Semaphore(FOLLOWERS_PER_PROCESS)
        self._followers: dict[tuple[str, str], ContainerFollower] = {}
        self._skip_lines: dict[str, int] | None = None if adopted else {}  # lines Colonies holds, per container
        self._pod_of_index: dict[str, str] = {}  # the pod whose lines are shipped for each pod index
        self._notes_after_pod: list[tuple[str, str]] = []  # (pod, note): shipped once the pod's lines are
        self._drain_started: float | None = None
        self.shipper = LogShipper(lambda message: identity.client.add_log(pid, message, identity.prvkey),
                                  on_refused, name=f"process {pid}")
        self.drained = False

    async def follow(self, plan: JobPlan | None, pods: Pods, started: dt.datetime | None, *,
                     running_replacements: bool = True) -> None:
        """Starts a follower for every container of `pods` that runs or ran and has none yet. An adopted attempt
        first reads how many lines Colonies holds (since the attempt `started`), and resumes after them. A pod
        replacing another waits until the other's lines are shipped; without `running_replacements` (draining: the
        process ends), one whose containers still run is not followed at all."""
        if plan is None or self.shipper.closed:
            return
        self._ship_notes()
        multi = plan.containers_total > 1
        for pod in pods:
            meta = pod["metadata"]
            name = meta["name"]
            index = (meta.get("annotations") or {}).get(COMPLETION_INDEX, "0")
            new = [status for status in (pod.get("status") or {}).get("containerStatuses") or []
                   if (name, status["name"]) not in self._followers
                   and ((status.get("state") or {}).get("running") or (status.get("state") or {}).get("terminated"))]
            if not new:
                continue
            if self._skip_lines is None:
                shipped = await self._shipped_lines(plan, started)
                if shipped is None:
                    return  # Colonies cannot say what it holds yet: follow later, from the right place
                self._skip_lines, self._pod_of_index = shipped
            current = self._pod_of_index.get(index)
            if current is not None and current != name:
                if self._following(current):
                    continue  # the old pod's last lines first: its follower's end wakes the attempt
                if not running_replacements and any((s.get("state") or {}).get("running") for s in new):
                    continue
                self._ship_notes()
                self.shipper.add(replacement_line(index, name, current))
                for status in new:  # what Colonies holds of this index is the old pod's
                    self._skip_lines.pop(line_prefix(index, status["name"], multi), None)
            self._pod_of_index[index] = name
            for status in new:
                self._start_follower(name, status["name"], line_prefix(index, status["name"], multi))

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

    def _start_follower(self, pod_name: str, container: str, prefix: str) -> None:
        namespace = self._namespace
        self._followers[(pod_name, container)] = ContainerFollower(
            open_stream=lambda since: self._kube.stream_log(namespace, pod_name, container, since),
            container_done=lambda: self._container_done(pod_name, container),
            shipper=self.shipper, prefix=prefix, skip_lines=(self._skip_lines or {}).pop(prefix, 0),
            name=f"logs {namespace}/{pod_name}/{container}", on_finished=self._wake,
            limiters=(self._per_process, self._stream_limiter))

    def _container_done(self, pod_name: str, container: str) -> bool:
        for pod in self._active_pods():
            if pod["metadata"]["name"] != pod_name:
                continue
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                if status["name"] == container:
                    return bool((status.get("state") or {}).get("terminated"))
        return True  # the pod finished (it left the view of running pods) or is gone

    async def _shipped_lines(self, plan: JobPlan, started: dt.datetime | None
                             ) -> tuple[dict[str, int], dict[str, str]] | None:
        """Lines of this attempt Colonies already holds, per container (of the pod that runs each index now), and
        the pods the replacement lines name; None when Colonies cannot say now (the attempt is woken to try again).
        Entries logged before the attempt started belong to earlier attempts."""
        since = int(started.timestamp() * 1_000_000) * 1000 - 1 if started else 0
        identity = self._identity
        try:
            entries = await identity.client.logs_since(identity.colony, self._pid, identity.prvkey, since)
        except ColoniesError as err:
            log.info("process %s: cannot read its shipped logs yet (%s)", self._pid, err)
            asyncio.get_running_loop().call_later(SHIPPED_LINES_RETRY_SECONDS, self._wake)
            return None
        multi = plan.containers_total > 1
        prefixes = [line_prefix(str(i), c, multi) for i in range(plan.nodes) for c in plan.container_names]
        messages = [e.message for e in entries]
        return count_shipped_lines(messages, prefixes), current_pods(messages)

    async def drain(self, plan: JobPlan | None, pods: Pods, started: dt.datetime | None) -> float | None:
        """Ships every line before the process is closed (Colonies refuses logs after). None when done, else
        seconds until the next look; a follower still reading after DRAIN_TIMEOUT_SECONDS is given up."""
        await self.follow(plan, pods, started, running_replacements=False)
        self._drain_started = self._drain_started or time.monotonic()
        waiting = [f for f in self._followers.values() if not f.finished.is_set()]
        if waiting and time.monotonic() - self._drain_started < DRAIN_TIMEOUT_SECONDS:
            return 0.5  # a follower that finishes wakes the attempt sooner
        for follower in waiting:
            log.warning("process %s: %s did not end within %.0fs; closing without the rest of its log",
                        self._pid, follower.name, DRAIN_TIMEOUT_SECONDS)
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

    def failure_tail(self) -> list[str]:
        return self.shipper.failure_tail()
