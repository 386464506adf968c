"""The scan of what Colonies runs on this executor: it finds processes cancelled or re-queued under the
operator's feet, assignments whose reply was lost, and, after a restart, the work to adopt."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from ..colonies import ColoniesError, Process, ProcessState
from ..core.config import ExecutorConfig
from ..core.decide import ProcessView, same_assignment
from ..kube.api import KubeError
from ..kube.cache import ClusterView
from .adoption import FoundJob, config_in, found_job, list_jobs
from .reconciler import Reconciler
from .registration import Identity

log = logging.getLogger(__name__)

SCAN_SECONDS = 2.0
IDLE_SCAN_SECONDS = 30.0


class Scanner:
    """Lists the processes Colonies runs here, every few seconds while there is work, now and then when idle.
    Until adoption has worked once (`adopted`), each look is an adoption."""

    def __init__(self, reconciler: Reconciler, view: ClusterView, *, name: str,
                 executor_log: Callable[[str], None]) -> None:
        self.reconciler, self.view, self.name = reconciler, view, name
        self._executor_log = executor_log  # a line in the executor's own Colonies log
        self._task: asyncio.Task | None = None
        self.adopted = False
        self.taking_work = True  # False while the executor may take no new work (refused): nothing gets a Job anew
        self._skipped: set[tuple[str, int]] = set()

    def start(self, config: ExecutorConfig, identity: Identity, *, taking_work: bool = True) -> None:
        """Keeps scanning (with the newest config and identity) until stopped."""
        self._config, self._identity, self.taking_work = config, identity, taking_work
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"scan-{self.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        last_scan = time.monotonic()
        while True:
            interval = SCAN_SECONDS
            if not self.adopted:
                await self.adopt(self._config, self._identity)
            # Idle, the scan still runs now and then: it finds an assignment whose reply was lost.
            elif self.reconciler.active or time.monotonic() - last_scan >= IDLE_SCAN_SECONDS:
                last_scan = time.monotonic()
                await self.scan(self._config, self._identity)
                interval = max(SCAN_SECONDS, 4 * (time.monotonic() - last_scan))  # a big list: ask less often
            await asyncio.sleep(interval)

    async def scan(self, config: ExecutorConfig, identity: Identity) -> None:
        """One look at what Colonies runs here."""
        started = time.monotonic()
        try:
            running = await identity.client.running_on(config.colony_name, identity.executor_id, identity.prvkey)
        except ColoniesError as err:
            log.debug("executor %s: cannot list its running processes (%s)", self.name, err)
            return
        reconciler = self.reconciler
        reconciler.set_views(running, identity.executor_id, started)
        # Every process Colonies runs here is carried on, also one whose assign reply never arrived (a
        # long-poll cut by a reload, a reply lost on the way); never one this operator has just closed.
        for process in running:
            if process.state == ProcessState.RUNNING and reconciler.unknown(process):
                if not self.taking_work:
                    self._skip(process)
                    continue
                log.info("executor %s: process %s runs here unknown to the operator (an assignment whose reply "
                         "was lost); carrying it on", self.name, process.processid)
                reconciler.add(process, config, identity, adopted=True)

    async def adopt(self, config: ExecutorConfig, identity: Identity) -> bool:
        """After a start: every process running here is carried on, and every active Job of this executor (in any
        namespace its Jobs may be in) is looked at, and removed if Colonies does not run its attempt here. False
        when Colonies or Kubernetes could not be read: the next look tries again."""
        started = time.monotonic()
        try:
            running = await identity.client.running_on(config.colony_name, identity.executor_id, identity.prvkey)
            jobs = [found for found in map(found_job, await list_jobs(self.reconciler.kube, config,
                                                                      identity.executor_id)) if found]
        except (ColoniesError, KubeError) as err:
            log.warning("executor %s: cannot adopt its running work yet (%s); trying again in %.0fs", self.name, err,
                        SCAN_SECONDS)
            return False
        reconciler = self.reconciler
        reconciler.set_views(running, identity.executor_id, started)
        by_attempt = {(job.process_id, job.attempt): job for job in jobs}
        resumed = 0
        for process in running:
            if process.state != ProcessState.RUNNING or not reconciler.unknown(process):
                continue
            job = by_attempt.pop((process.processid, process.retries), None)
            if job is not None and same_assignment(job.assigned_at, process.starttime):
                reconciler.add(process, config_in(config, job.namespace), identity, adopted=True, job=job.name,
                               assigned_at=job.assigned_at)
                resumed += 1
                continue
            if job is not None:  # a Job of an earlier assignment of this attempt: it goes first
                self._adopt_job(job, config, identity)
            if not self.taking_work:
                self._skip(process)
                continue
            reconciler.add(process, config, identity, adopted=True)
            resumed += 1
        # Jobs whose attempt Colonies does not run here (cancelled, re-queued, closed while the operator was
        # down): read by the reconciler's workers, side by side, while the assign loop already runs.
        for job in by_attempt.values():
            if (job.process_id, job.attempt) not in reconciler.attempts:
                self._adopt_job(job, config, identity)
        self.adopted = True
        if reconciler.active:
            log.info("executor %s: adopted %d running processes (%d Jobs to look at in all)", self.name, resumed,
                     reconciler.active)
            self._executor_log(f"adopted {resumed} processes running here ({reconciler.active} Jobs to look at "
                               "in all)")
        return True

    def _adopt_job(self, job: FoundJob, config: ExecutorConfig, identity: Identity) -> None:
        """A Job found without its attempt: the process is read before anything is decided."""
        self.reconciler.add(Process.from_dict({"processid": job.process_id, "retries": job.attempt}),
                            config_in(config, job.namespace), identity, adopted=True, view=ProcessView.UNCONFIRMED,
                            known_from_job=True, job=job.name, assigned_at=job.assigned_at)

    def _skip(self, process: Process) -> None:
        """A process assigned here that has no Job while the executor may take no new work: it is left to Colonies,
        which hands it to another executor once this one, its running work done, goes quiet."""
        key = (process.processid, process.retries)
        if key not in self._skipped:
            self._skipped.add(key)
            log.warning("executor %s: process %s is assigned here but has no Job, and the executor takes no new "
                        "work: leaving it to Colonies", self.name, process.processid)
