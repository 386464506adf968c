"""The scan of what Colonies runs on this executor: it finds processes cancelled or re-queued under the
operator's feet, assignments whose reply was lost, and, after a restart, the work to adopt."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from ..colonies import ColoniesError, Process, ProcessState
from ..core.config import ExecutorConfig
from ..core.decide import ProcessView
from ..core.names import ANNOTATION_ATTEMPT, ANNOTATION_PROCESS_ID, LABEL_EXECUTOR_ID, label_value
from ..kube.cache import ClusterView
from .reconciler import Reconciler
from .registration import Identity

log = logging.getLogger(__name__)

SCAN_SECONDS = 2.0
IDLE_SCAN_SECONDS = 30.0


class Scanner:
    """Lists the processes Colonies runs here, every few seconds while there is work, now and then when idle."""

    def __init__(self, reconciler: Reconciler, view: ClusterView, *, name: str,
                 executor_log: Callable[[str], None]) -> None:
        self.reconciler, self.view, self.name = reconciler, view, name
        self._executor_log = executor_log  # a line in the executor's own Colonies log
        self._task: asyncio.Task | None = None

    def start(self, config: ExecutorConfig, identity: Identity) -> None:
        """Keeps scanning (with the newest config and identity) until stopped."""
        self._config, self._identity = config, identity
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
            # Idle, the scan still runs now and then: it finds an assignment whose reply was lost.
            if self.reconciler.active or time.monotonic() - last_scan >= IDLE_SCAN_SECONDS:
                last_scan = time.monotonic()
                await self.scan(self._config, self._identity)
                interval = max(SCAN_SECONDS, 4 * (time.monotonic() - last_scan))  # a big list: ask less often
            await asyncio.sleep(interval)

    async def scan(self, config: ExecutorConfig, identity: Identity, *, adopting: bool = False) -> None:
        """One look at what Colonies runs here. `adopting` (after a start): every active Job of this executor is
        carried on too, whatever Colonies says of its attempt."""
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
                if not adopting:
                    log.info("executor %s: process %s runs here unknown to the operator (an assignment whose reply "
                             "was lost); carrying it on", self.name, process.processid)
                reconciler.add(process, config, identity, adopted=True)
        if not adopting:
            return
        # After a restart: every process running here is carried on, and every active Job of this
        # executor whose attempt Colonies does not run here is looked at (and removed).
        resumed = [p for p in running if p.state == ProcessState.RUNNING]
        for job in self.view.jobs(config.jobs.namespace):
            meta = job["metadata"]
            if (meta.get("labels") or {}).get(LABEL_EXECUTOR_ID) != label_value(identity.executor_id):
                continue
            annotations = meta.get("annotations") or {}
            pid, attempt = annotations.get(ANNOTATION_PROCESS_ID, ""), annotations.get(ANNOTATION_ATTEMPT, "")
            if not pid or not attempt.isdigit() or (pid, int(attempt)) in reconciler.attempts:
                continue
            # Read by the reconciler's workers, side by side, while the assign loop already runs: Colonies
            # never waits on a long adoption for this executor's sign of life.
            reconciler.add(Process.from_dict({"processid": pid, "retries": int(attempt)}), config, identity,
                           adopted=True, view=ProcessView.UNCONFIRMED, known_from_job=True)
        if reconciler.active:
            log.info("executor %s: adopted %d running processes (%d Jobs to look at in all)", self.name,
                     len(resumed), reconciler.active)
            self._executor_log(f"adopted {len(resumed)} processes running here ({reconciler.active} Jobs to look at "
                               "in all)")
