"""The log of one process attempt: a follower per container, one shipper to Colonies, and where to resume.

The ColonyFS steps (init containers, core/fs.py) are followed too; their lines start with "[<pod index>/<step>] ".

The reconciler only asks: follow these pods, drain before closing, close. Followers are bounded per process and
in total (each is a connection to the API server); one that finishes wakes the attempt.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..colonies import ColoniesError
from ..core.fs import STEPS
from ..core.loglines import count_shipped_lines, line_prefix
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


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The statuses of the containers whose logs go to Colonies: the ColonyFS steps', then the process's."""
    status = pod.get("status") or {}
    return ([s for s in status.get("initContainerStatuses") or [] if s.get("name") in STEPS]
            + list(status.get("containerStatuses") or []))


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
        self._drain_started: float | None = None
        self.shipper = LogShipper(lambda message: identity.client.add_log(pid, message, identity.prvkey),
                                  on_refused, name=f"process {pid}")
        self.drained = False

    async def follow(self, plan: JobPlan | None, pods: Pods, started: dt.datetime | None) -> None:
        """Starts a follower for every container of `pods` that runs or ran and has none yet. An adopted attempt
        first reads how many lines Colonies holds (since the attempt `started`), and resumes after them."""
        if plan is None or self.shipper.closed:
            return
        multi = plan.containers_total > 1
        for pod in pods:
            meta = pod["metadata"]
            index = (meta.get("annotations") or {}).get(COMPLETION_INDEX, "0")
            for status in _statuses(pod):
                state = status.get("state") or {}
                key = (meta["name"], status["name"])
                if key in self._followers or not (state.get("running") or state.get("terminated")):
                    continue
                if self._skip_lines is None:
                    self._skip_lines = await self._shipped_lines(plan, started)
                    if self._skip_lines is None:
                        return  # Colonies cannot say what it holds yet: follow later, from the right place
                prefix = line_prefix(index, status["name"], multi or status["name"] in STEPS)
                self._start_follower(meta["name"], status["name"], prefix)

    def _start_follower(self, pod_name: str, container: str, prefix: str) -> None:
        namespace = self._namespace
        self._followers[(pod_name, container)] = ContainerFollower(
            open_stream=lambda since: self._kube.stream_log(namespace, pod_name, container, since),
            container_done=lambda: self._container_done(pod_name, container),
            shipper=self.shipper, prefix=prefix, skip_lines=(self._skip_lines or {}).get(prefix, 0),
            name=f"logs {namespace}/{pod_name}/{container}", on_finished=self._wake,
            limiters=(self._per_process, self._stream_limiter))

    def _container_done(self, pod_name: str, container: str) -> bool:
        for pod in self._active_pods():
            if pod["metadata"]["name"] != pod_name:
                continue
            for status in _statuses(pod):
                if status["name"] == container:
                    return bool((status.get("state") or {}).get("terminated"))
        return True  # the pod finished (it left the view of running pods) or is gone

    async def _shipped_lines(self, plan: JobPlan, started: dt.datetime | None) -> dict[str, int] | None:
        """Lines of this attempt Colonies already holds, per container; None when Colonies cannot say now (the
        attempt is woken to try again). Entries logged before the attempt started belong to earlier attempts."""
        since = int(started.timestamp() * 1_000_000) * 1000 - 1 if started else 0
        identity = self._identity
        try:
            entries = await identity.client.logs_since(identity.colony, self._pid, identity.prvkey, since)
        except ColoniesError as err:
            log.info("process %s: cannot read its shipped logs yet (%s)", self._pid, err)
            asyncio.get_running_loop().call_later(SHIPPED_LINES_RETRY_SECONDS, self._wake)
            return None
        multi = plan.containers_total > 1
        # A step's prefix first: a single container's prefix is "", which every line starts with.
        steps = plan.fs.steps if plan.fs else []
        prefixes = [line_prefix(str(i), c, True) for i in range(plan.nodes) for c in steps]
        prefixes += [line_prefix(str(i), c, multi) for i in range(plan.nodes) for c in plan.container_names]
        return count_shipped_lines((e.message for e in entries), prefixes)

    async def drain(self, plan: JobPlan | None, pods: Pods, started: dt.datetime | None) -> float | None:
        """Ships every line before the process is closed (Colonies refuses logs after). None when done, else
        seconds until the next look; a follower still reading after DRAIN_TIMEOUT_SECONDS is given up."""
        await self.follow(plan, pods, started)
        self._drain_started = self._drain_started or time.monotonic()
        waiting = [f for f in self._followers.values() if not f.finished.is_set()]
        if waiting and time.monotonic() - self._drain_started < DRAIN_TIMEOUT_SECONDS:
            return 0.5  # a follower that finishes wakes the attempt sooner
        for follower in waiting:
            log.warning("process %s: %s did not end within %.0fs; closing without the rest of its log",
                        self._pid, follower.name, DRAIN_TIMEOUT_SECONDS)
            follower.stop()
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
