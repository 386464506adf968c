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

from ..colonies import ColoniesError, Process
from ..colonies.client import AsyncColoniesClient
from ..core.admission import check_resource, server_security, template_condition
from ..core.conditions import (
    ALLOWED,
    ASSIGNING,
    JOBS,
    REACHABLE,
    REGISTERED,
    SECURE,
    TEMPLATE,
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
from .assign import MAX_HEARTBEAT_INTERVAL, NEVER_MATCHING_CPU, AssignLoop
from .attempt_logs import LogLimits
from .hardware import CapabilitiesReporter
from .interrupts import Interrupts
from .probe import dry_run_job, jobs_refused_problem
from .reconciler import Reconciler
from .registration import (COLONIES_TIMEOUT_SECONDS, Identity, colonies_client_for, connect, find_registered,
                           register)
from .scan import Scanner
from .status import StatusWriter

log = logging.getLogger(__name__)

VIEW_SYNC_SECONDS = 30.0
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
EDIT_RETRY_SECONDS = 5.0  # after a problem, a spec edit is tried within this long (not sooner than the backoff's start)


class ExecutorRuntime:
    """Runs one ColoniesExecutor until stopped. `reload(resource)` makes it re-read its spec."""

    def __init__(self, kube: KubeApi, view: ClusterView, resource: dict[str, Any],
                 log_limits: LogLimits, policy: OperatorPolicy = DEFAULT_POLICY,
                 colonies_timeout: float = COLONIES_TIMEOUT_SECONDS) -> None:
        self.kube, self.view, self.policy = kube, view, policy
        self.colonies_timeout = colonies_timeout
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
        self._room_lost = asyncio.Event()  # Kubernetes began refusing Jobs: a long-poll under way ends
        self._jobs_problem: KubeError | None = None
        self._namespace_in_use: str | None = None
        self._at_cap = False
        self._last_sign_of_life = float("-inf")
        self._client = None  # the Colonies client, kept while the server and CA bundle stay the same
        self._log_tasks: set[asyncio.Task] = set()
        self.status = StatusWriter(lambda s: kube.patch_executor_status(self.namespace, self.name, s),
                                   self._status_fields, conditions=status.get("conditions") or [],
                                   generation=meta.get("generation"), name=self.label)
        self.reconciler = Reconciler(kube, view, executor_label=self.metrics_label, log_name=self.label,
                                     on_change=self._changed, on_jobs_refused=self._jobs_refused,
                                     log_limits=log_limits, succeeded=int(status.get("succeededProcesses") or 0),
                                     failed=int(status.get("failedProcesses") or 0))
        self.scanner = Scanner(self.reconciler, view, name=self.label, executor_log=self.executor_log)
        self.hardware = CapabilitiesReporter(view.nodes, self.uid or self.label, self.label,
                                             self.reconciler.know_gpu_models)

    # -- life -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.reconciler.start()
        backoff, last_problem = RETRY_MIN_SECONDS, None
        try:
            while not self.interrupts.stop.is_set():
                self.interrupts.reload.clear()  # this run reads the newest spec; an edit from now on is seen
                try:
                    await self._run_once()
                    backoff = RETRY_MIN_SECONDS  # it ran until an edit or the stop
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
                await self._wait_alive(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)
        finally:
            await self._stop_tasks()

    async def _wait_alive(self, seconds: float) -> None:
        """Waits before the next try, `seconds` or, after a spec edit, at most EDIT_RETRY_SECONDS (never sooner than
        RETRY_MIN_SECONDS): retries back off whatever edits arrive. Meanwhile what runs here is tended (the
        reconciler and the scanner go on) and the executor kept alive in Colonies until it is done."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not self.interrupts.stop.is_set():
            now = loop.time()
            limit = seconds if not self.interrupts.reload.is_set() else min(seconds, EDIT_RETRY_SECONDS)
            if now - started >= limit - 0.001:
                return
            if self._tending() and now - self._last_sign_of_life >= self._heartbeat_seconds():
                await self._sign_of_life()
            until_beat = self._heartbeat_seconds() - (loop.time() - self._last_sign_of_life)
            wait = min(limit - (loop.time() - started), max(until_beat, 0.1) if self._tending() else limit)
            # An edit ends the wait only at the edit floor; the stop at once.
            events = () if self.interrupts.reload.is_set() else (self.interrupts.reload,)
            await _wait_any(max(wait, 0.0), self.interrupts.stop, *events)

    def _tending(self) -> bool:
        """True while the executor has work here to finish (or has not looked for it yet)."""
        return self.identity is not None and (self.reconciler.active > 0 or not self.scanner.adopted)

    def _heartbeat_seconds(self) -> float:
        return min(MAX_HEARTBEAT_INTERVAL, 3.0 * (self.config.assign_timeout_seconds if self.config else 10))

    async def _sign_of_life(self) -> None:
        """An assign no process can match: the only call Colonies counts as a sign of life."""
        identity = self.identity
        self._last_sign_of_life = asyncio.get_running_loop().time()
        try:
            process = await identity.client.assign(identity.colony, -1, identity.prvkey,
                                                   available_cpu=NEVER_MATCHING_CPU)
        except ColoniesError as err:
            log.info("executor %s: cannot tell Colonies it is alive (%s)", self.label, err)
            return
        if process is not None:  # only a process asking for negative cpu matches: it is refused as invalid
            self.reconciler.add(process, self.config, identity, adopted=False)

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
        violations = check_resource(config)
        if violations:
            # What the admin's policy refuses takes no new work: no registration, no assign, no Job. What runs
            # here already runs to its end, and the executor stays alive in Colonies until then.
            try:
                await self._tend_only(config)
            except Problem as problem:
                log.info("executor %s: cannot look for its running work yet: %s", self.label, problem)
            raise Problem(ALLOWED, violations[0].reason, "; ".join(v.message for v in violations) + self._draining())
        template = template_condition(config)
        if template:
            status.set_condition(TEMPLATE, *template)
        else:
            status.drop_condition(TEMPLATE)
        client = await self._client_for(config)
        await connect(client, config)
        status.set_condition(ALLOWED, True, "Allowed", "the operator's policy allows what the spec asks for")
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
        self.scanner.taking_work = True
        if not self.scanner.adopted:
            await self.scanner.adopt(config, identity)  # retried by the scanner if Colonies or Kubernetes fail
        self.scanner.start(config, identity)
        try:
            await self._check_jobs_accepted(config)
        except Problem as problem:  # the assign loop takes no work, and checks again, while Kubernetes refuses
            self._jobs_problem = self._jobs_problem or KubeError(422, problem.reason, problem.message)
            status.set_condition(problem.condition, False, problem.reason, problem.message)
        await status.report()
        await AssignLoop(config, identity, status=status, interrupts=self.interrupts, room=self._room,
                         take=self._take, slot_freed=self._slot_freed, recheck_jobs=self._recheck_jobs,
                         name=self.label, room_lost=self._room_lost).run()

    async def _client_for(self, config: ExecutorConfig) -> AsyncColoniesClient:
        """The Colonies client, made anew only when the server or its CA bundle changed."""
        client = await colonies_client_for(self.kube, config, read_timeout=self.colonies_timeout)
        if self._client is not None and (self._client.url, self._client.ca_bundle) == (client.url, client.ca_bundle):
            return self._client
        self._client = client  # the old one stays open: attempts of the earlier identity may use it
        return client

    async def _tend_only(self, config: ExecutorConfig) -> None:
        """The executor takes no new work: the scanner goes on with what runs (adopting it first after a start,
        with the registration found as it is) and gives nothing new a Job."""
        if self.identity is None:
            client = await self._client_for(config)
            await connect(client, config)
            self.identity = await find_registered(self.kube, client, config)
            if self.identity is None:
                return  # never registered here: nothing can run
            self.config = config
            self.view.subscribe(self._executor_label(), self.reconciler.on_cluster_event)
        self.scanner.taking_work = False
        if not self.scanner.adopted:
            await self.scanner.adopt(self.config, self.identity)
        self.scanner.start(self.config, self.identity, taking_work=False)

    def _draining(self) -> str:
        """The end of a refusal's message: what the executor still does."""
        active = self.reconciler.active
        if not active:
            return "; taking no work"
        return f"; taking no new work, finishing the {active} process{'es' if active > 1 else ''} it runs"

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
        self._room_lost.set()
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
        return not at_cap and self._jobs_problem is None and self.scanner.adopted

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


async def _wait_any(seconds: float, *events: asyncio.Event) -> None:
    """Waits until one of `events` is set, at most `seconds`."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
