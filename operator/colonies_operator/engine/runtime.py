"""One ColoniesExecutor at work: its spec read and admitted, its registration, and the loops that serve it.

Everything is a coroutine in kopf's event loop. The outer loop (re)reads the spec and registers, and turns what
stops it into a status condition that says what to fix; then the assign loop (assign.py) takes work while there
is room and keeps the executor alive in Colonies when there is none, the scanner (scan.py) finds cancelled and
re-queued processes and, after a restart, the work to adopt, and the reconciler (reconciler.py) carries each
process attempt to its end. The status is written by status.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..colonies import Process
from ..core.admission import check_resource, server_security
from ..core.conditions import (
    ALLOWED,
    ASSIGNING,
    JOBS,
    REACHABLE,
    REGISTERED,
    SECURE,
    Problem,
    kube_refusal_hint,
    kube_refusal_reason,
    now_iso,
)
from ..core.config import ExecutorConfig, InvalidSpec, config_from_spec
from ..core.names import label_value
from ..core.policy import DEFAULT_POLICY, OperatorPolicy
from ..kube.api import KubeApi, KubeError
from ..kube.cache import ClusterView
from . import metrics
from .assign import AssignLoop
from .hardware import CapabilitiesReporter
from .interrupts import Interrupts
from .probe import dry_run_job, jobs_refused_problem
from .reconciler import Reconciler
from .registration import Identity, colonies_client_for, connect, register
from .scan import Scanner
from .status import StatusWriter

log = logging.getLogger(__name__)

VIEW_SYNC_SECONDS = 30.0
RETRY_MAX_SECONDS = 30.0


class ExecutorRuntime:
    """Runs one ColoniesExecutor until stopped. `reload(resource)` makes it re-read its spec."""

    def __init__(self, kube: KubeApi, view: ClusterView, resource: dict[str, Any],
                 log_limiter: asyncio.Semaphore, policy: OperatorPolicy = DEFAULT_POLICY) -> None:
        self.kube, self.view, self.policy = kube, view, policy
        meta = resource["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta.get("uid", "")
        self.label = f"{self.namespace}/{self.name}"
        self.resource = resource
        status = resource.get("status") or {}
        self.last_assignment: str | None = status.get("lastAssignmentTime")
        self.metrics_label = metrics.executor_label(self.namespace, self.name)
        self.config: ExecutorConfig | None = None
        self.identity: Identity | None = None
        self.interrupts = Interrupts()
        self._slot_freed = asyncio.Event()
        self._jobs_problem: KubeError | None = None
        self._namespace_in_use: str | None = None
        self._at_cap = False
        self._adopted = False
        self._log_tasks: set[asyncio.Task] = set()
        self.status = StatusWriter(lambda s: kube.patch_executor_status(self.namespace, self.name, s),
                                   self._status_fields, conditions=status.get("conditions") or [],
                                   generation=meta.get("generation"), name=self.label)
        self.reconciler = Reconciler(kube, view, executor_label=self.metrics_label, log_name=self.label,
                                     on_change=self._changed, on_jobs_refused=self._jobs_refused,
                                     log_limiter=log_limiter, succeeded=int(status.get("succeededProcesses") or 0),
                                     failed=int(status.get("failedProcesses") or 0))
        self.scanner = Scanner(self.reconciler, view, name=self.label, executor_log=self.executor_log)
        self.hardware = CapabilitiesReporter(view.nodes, self.uid or self.label, self.label,
                                             self.reconciler.know_gpu_models)

    # -- life -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.reconciler.start()
        backoff, last_problem = 1.0, None
        try:
            while not self.interrupts.stop.is_set():
                try:
                    await self._run_once()
                    backoff = 1.0
                    if self.interrupts.reload.is_set():
                        self.interrupts.reload.clear()
                        continue
                except Problem as problem:
                    if str(problem) != last_problem:
                        log.warning("executor %s: %s", self.label, problem.message)
                        last_problem = str(problem)
                    self.status.set_condition(problem.condition, False, problem.reason, problem.message)
                    await self.status.report()
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # the loop must survive anything; say what happened
                    log.exception("executor %s: unexpected error, retrying in %.0fs", self.label, backoff)
                    self.status.set_condition(REGISTERED, False, "InternalError",
                                              f"{type(err).__name__}: {err}; retrying")
                    await self.status.report()
                await self.interrupts.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)
        finally:
            await self._stop_tasks()

    async def stop(self) -> None:
        """Stops taking and reconciling work. Jobs keep running: a restarted operator adopts them."""
        self.interrupts.stop.set()
        await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        await self.reconciler.stop()
        self.status.close()
        await self.scanner.stop()
        await self.hardware.stop()
        if self._namespace_in_use:
            await self.view.release(self._namespace_in_use)
            self._namespace_in_use = None
        self.view.unsubscribe(self._executor_label())

    def reload(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self.status.generation = resource["metadata"].get("generation")
        self.interrupts.reload.set()
        self._slot_freed.set()

    async def _run_once(self) -> None:
        try:
            config = config_from_spec(self.resource.get("spec") or {}, namespace=self.namespace, name=self.name,
                                      policy=self.policy)
        except InvalidSpec as err:
            raise Problem(REGISTERED, "InvalidSpec", str(err)) from None
        status = self.status
        status.set_condition(SECURE, *server_security(config))
        # What the admin's policy refuses stops here: no registration, no assign, no Job.
        violations = check_resource(config)
        if violations:
            raise Problem(ALLOWED, violations[0].reason, "; ".join(v.message for v in violations))
        status.set_condition(ALLOWED, True, "Allowed", "the operator's policy allows what the spec asks for")
        client = await colonies_client_for(self.kube, config)
        await connect(client, config)
        self.hardware.subscribe()
        capabilities = self.hardware.current(config)
        identity = await register(self.kube, client, config, self.uid, capabilities)
        self.config, self.identity = config, identity
        self.hardware.registered(config, identity, capabilities)
        status.set_condition(REGISTERED, True, "Registered", f"executor {config.executor_name} "
                             f"({config.executor_type}) in colony {config.colony_name}, id "
                             f"{identity.executor_id[:12]}…")
        status.set_condition(REACHABLE, True, "Connected", client.url)
        status.set_condition(ASSIGNING, True, "Assigning", "the colony's assignments are not paused")
        await self._use_namespace(config.jobs.namespace)
        await self._check_jobs_accepted(config)
        await status.report()
        if not self._adopted:
            await self.scanner.scan(config, identity, adopting=True)
            self._adopted = True
        self.scanner.start(config, identity)
        await AssignLoop(config, identity, status=status, interrupts=self.interrupts, room=self._room,
                         take=self._take, slot_freed=self._slot_freed, recheck_jobs=self._recheck_jobs,
                         name=self.label).run()

    # -- the executor's own Colonies log ------------------------------------------------------------------

    def executor_log(self, message: str) -> None:
        """A line in the executor's own Colonies log, sent in the background."""
        if self.identity is None:
            return
        task = asyncio.get_running_loop().create_task(self.identity.log(f"colonies-operator: {message}"))
        self._log_tasks.add(task)
        task.add_done_callback(self._log_tasks.discard)

    # -- the namespace of its Jobs ---------------------------------------------------------------------------

    def _executor_label(self) -> str:
        return label_value(self.identity.executor_id) if self.identity else ""

    async def _use_namespace(self, namespace: str) -> None:
        self.view.subscribe(self._executor_label(), self.reconciler.on_cluster_event)
        if self._namespace_in_use != namespace:
            self.view.use(namespace)
            if self._namespace_in_use:
                await self.view.release(self._namespace_in_use)
            self._namespace_in_use = namespace
        if not await self.view.wait_synced(namespace, VIEW_SYNC_SECONDS):
            problem = self.view.problem(namespace)
            status = problem.status if problem else None
            raise Problem(JOBS, kube_refusal_reason(status), f"cannot watch Jobs and pods in namespace {namespace}: "
                          f"{problem}; {kube_refusal_hint(status, namespace)}")

    async def _check_jobs_accepted(self, config: ExecutorConfig) -> None:
        """Raises Problem while Kubernetes refuses this executor's Jobs (probe.py)."""
        refusal = await dry_run_job(self.kube, config, self.identity.executor_id)
        if refusal is not None and refusal.transient:
            return  # the API server is busy or away: the real creation will say
        self._jobs_problem = refusal
        if refusal is not None:
            raise jobs_refused_problem(refusal, config.jobs.namespace)
        self.status.set_condition(JOBS, True, "Accepted", f"Kubernetes accepts Jobs in namespace "
                                  f"{config.jobs.namespace}")

    def _jobs_refused(self, err: KubeError | None) -> None:
        """The reconciler met an executor-level refusal of a Job (None: a Job was accepted again)."""
        namespace = self.config.jobs.namespace if self.config else "?"
        if err is None:
            if self._jobs_problem is not None:
                self._jobs_problem = None
                self.status.set_condition(JOBS, True, "Accepted", f"Kubernetes accepts Jobs in namespace {namespace}")
                self._changed()
            return
        if self._jobs_problem is None:
            self.executor_log(f"Kubernetes refuses this executor's Jobs in namespace {namespace} ({err}): taking "
                              "no work until it accepts them")
        self._jobs_problem = err
        problem = jobs_refused_problem(err, namespace)
        self.status.set_condition(problem.condition, False, problem.reason, problem.message)
        self._changed()

    async def _recheck_jobs(self) -> None:
        """While Kubernetes refuses this executor's Jobs, checks again whether it still does."""
        if self._jobs_problem is None or self.config is None:
            return
        try:
            await self._check_jobs_accepted(self.config)
        except Problem as problem:
            self.status.set_condition(problem.condition, False, problem.reason, problem.message)
        await self.status.report()

    # -- what the assign loop asks ---------------------------------------------------------------------------

    def _room(self) -> bool:
        cap = self.config.max_concurrent_processes
        at_cap = self.reconciler.active >= cap
        if at_cap != self._at_cap:
            self._at_cap = at_cap
            self.executor_log(f"at its cap of {cap} processes (spec.maxConcurrentProcesses): taking no more work "
                              "until one ends" if at_cap else "below its cap again: taking work")
        return not at_cap and self._jobs_problem is None

    def _take(self, process: Process) -> None:
        self.last_assignment = now_iso()
        metrics.process_assigned(self.metrics_label)
        self.reconciler.add(process, self.config, self.identity, adopted=False)

    # -- status -----------------------------------------------------------------------------------------------

    def _status_fields(self) -> dict[str, Any]:
        return {
            "executorId": self.identity.executor_id if self.identity else None,
            "executorName": self.config.executor_name if self.config else None,
            "activeProcesses": self.reconciler.active,
            "queuedProcesses": self.reconciler.queued,
            "succeededProcesses": self.reconciler.succeeded,
            "failedProcesses": self.reconciler.failed,
            "lastAssignmentTime": self.last_assignment,
        }

    def _changed(self) -> None:
        """An attempt began or ended, or Jobs are accepted again: room may have come, and the status changed."""
        self._slot_freed.set()
        self.status.changed()
