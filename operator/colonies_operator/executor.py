"""One ColoniesExecutor at work: registration, the assign loop, the scan of what runs here, and status.

Everything is a coroutine in kopf's event loop; the per-process work is the reconciler's (reconcile.py).
The outer loop (re)reads the spec and registers; the assign loop takes work while there is room and keeps
the executor alive in Colonies when there is none; the scanner reads what Colonies runs here, which finds
cancelled and re-queued processes and, after a restart, the work to adopt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from . import metrics
from .cache import ClusterView
from .capabilities import capabilities_for, gpu_models
from .colonies import ColoniesError, Process, ProcessState
from .config import ExecutorConfig, InvalidSpec, config_from_spec
from .decide import ProcessView
from .kubeapi import KubeApi, KubeError
from .jobs import build_job, probe_plan
from .names import ANNOTATION_ATTEMPT, ANNOTATION_PROCESS_ID, LABEL_EXECUTOR_ID, label_value
from .assign import AssignLoop
from .reconcile import Reconciler
from .registration import Identity, colonies_client_for, connect, register
from .policy import DEFAULT_POLICY, OperatorPolicy, check_resource, server_security
from .status import (
    ALLOWED,
    JOBS,
    PAUSED,
    READY,
    REACHABLE,
    REGISTERED,
    SECURE,
    Problem,
    now_iso,
    ready_from,
    with_condition,
)

log = logging.getLogger(__name__)

SCAN_INTERVAL = 2.0
IDLE_SCAN_INTERVAL = 30.0
STATUS_DEBOUNCE = 0.5
# A change of conditions is written within STATUS_DEBOUNCE; one of the counters alone (active, succeeded,
# failed, last assignment) at most every COUNTERS_INTERVAL: during a burst they change many times a second, and
# each write is a request to the API server and an event for every watcher of the resource.
COUNTERS_INTERVAL = 5.0


class ExecutorRuntime:
    """Runs one ColoniesExecutor until stopped. `reload(resource)` makes it re-read its spec."""

    def __init__(self, kube: KubeApi, view: ClusterView, resource: dict[str, Any],
                 log_limiter: asyncio.Semaphore, policy: OperatorPolicy = DEFAULT_POLICY) -> None:
        self.kube, self.view, self.policy = kube, view, policy
        meta = resource["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta.get("uid", "")
        self.resource = resource
        status = resource.get("status") or {}
        self.conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
        self.last_assignment: str | None = status.get("lastAssignmentTime")
        self.metrics_label = metrics.executor_label(self.namespace, self.name)
        self.reconciler = Reconciler(kube, view, executor_label=self.metrics_label,
                                     log_name=f"{self.namespace}/{self.name}", on_change=self._changed,
                                     on_jobs_refused=self._jobs_refused, log_limiter=log_limiter)
        self.reconciler.succeeded = int(status.get("succeededProcesses") or 0)
        self.reconciler.failed = int(status.get("failedProcesses") or 0)
        self.config: ExecutorConfig | None = None
        self.identity: Identity | None = None
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._jobs_problem: KubeError | None = None
        self._written_status: dict[str, Any] = {}
        self._written_at = 0.0  # time.monotonic() of the last status write
        self._conditions_changed = asyncio.Event()
        self._status_task: asyncio.Task | None = None
        self._scanner: asyncio.Task | None = None
        self._adopted = False
        self._namespace_in_use: str | None = None
        self._nodes_changed = asyncio.Event()
        self._capabilities_task: asyncio.Task | None = None
        self._capabilities_sent: dict[str, Any] | None = None
        self._at_cap = False
        self._log_tasks: set[asyncio.Task] = set()

    # -- life -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.reconciler.start()
        backoff, last_problem = 1.0, None
        try:
            while not self._stop.is_set():
                try:
                    await self._run_once()
                    backoff = 1.0
                    if self._reload.is_set():
                        self._reload.clear()
                        continue
                except Problem as problem:
                    if str(problem) != last_problem:
                        log.warning("executor %s/%s: %s", self.namespace, self.name, problem.message)
                        last_problem = str(problem)
                    self.set_condition(problem.condition, False, problem.reason, problem.message)
                    await self.report()
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # the loop must survive anything; say what happened
                    log.exception("executor %s/%s: unexpected error, retrying in %.0fs", self.namespace, self.name,
                                  backoff)
                    self.set_condition(REGISTERED, False, "InternalError", f"{type(err).__name__}: {err}; retrying")
                    await self.report()
                await self.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        finally:
            await self._stop_tasks()

    async def stop(self) -> None:
        """Stops taking and reconciling work. Jobs keep running: a restarted operator adopts them."""
        self._stop.set()
        await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        if self._scanner:
            self._scanner.cancel()
            await asyncio.gather(self._scanner, return_exceptions=True)
            self._scanner = None
        self.view.nodes.unsubscribe(self._subscriber_key)
        if self._capabilities_task:
            self._capabilities_task.cancel()
            await asyncio.gather(self._capabilities_task, return_exceptions=True)
            self._capabilities_task = None
        await self.reconciler.stop()
        if self._namespace_in_use:
            await self.view.release(self._namespace_in_use)
            self._namespace_in_use = None
        self.view.unsubscribe(self._executor_label())

    def reload(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self._reload.set()
        self._slot_freed.set()

    async def sleep(self, seconds: float) -> None:
        """Sleeps, but wakes at once when the runtime stops or reloads."""
        try:
            await asyncio.wait_for(self._wait_any(self._stop, self._reload), seconds)
        except asyncio.TimeoutError:
            pass

    @staticmethod
    async def _wait_any(*events: asyncio.Event) -> None:
        waiters = [asyncio.create_task(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _run_once(self) -> None:
        try:
            config = config_from_spec(self.resource.get("spec") or {}, namespace=self.namespace, name=self.name,
                                      policy=self.policy)
        except InvalidSpec as err:
            raise Problem(REGISTERED, "InvalidSpec", str(err)) from None
        self.set_condition(SECURE, *server_security(config))
        # What the admin's policy refuses stops here: no registration, no assign, no Job.
        violations = check_resource(config)
        if violations:
            raise Problem(ALLOWED, violations[0].reason, "; ".join(v.message for v in violations))
        self.set_condition(ALLOWED, True, "Allowed", "the operator's policy allows what the spec asks for")
        client = await colonies_client_for(self.kube, config)
        await connect(client, config)
        self.view.nodes.subscribe(self._subscriber_key, self._nodes_changed.set)
        capabilities = self._capabilities(config)
        identity = await register(self.kube, client, config, self.uid, capabilities)
        self.config, self.identity = config, identity
        self._capabilities_sent = capabilities
        if self._capabilities_task is None or self._capabilities_task.done():
            self._capabilities_task = asyncio.create_task(self._refresh_capabilities(),
                                                          name=f"capabilities-{self.namespace}-{self.name}")
        self._nodes_changed.set()  # a spec change (GPU label, node selector) may change them
        self.set_condition(REGISTERED, True, "Registered", f"executor {config.executor_name} ({config.executor_type}) in "
                  f"colony {config.colony_name}, id {identity.executor_id[:12]}…")
        self.set_condition(REACHABLE, True, "Connected", client.url)
        self.set_condition(PAUSED, True, "Assigning", "the colony's assignments are not paused")
        await self._use_namespace(config.jobs.namespace)
        await self._check_jobs_accepted(config)
        await self.report()
        if not self._adopted:
            await self._scan_once(adopting=True)
            self._adopted = True
        if self._scanner is None or self._scanner.done():
            self._scanner = asyncio.create_task(self._scan(), name=f"scan-{self.namespace}-{self.name}")
        await AssignLoop(self, config, identity).run()

    # -- capabilities and the executor's own Colonies log ---------------------------------------------------

    @property
    def _subscriber_key(self) -> str:
        return self.uid or f"{self.namespace}/{self.name}"

    def _capabilities(self, config: ExecutorConfig) -> dict[str, Any] | None:
        """The cluster's hardware for this executor, from the view of the Nodes; None while it is not known."""
        nodes = self.view.nodes.nodes()
        if nodes is None:
            return None
        capabilities = capabilities_for(nodes, config)
        self.reconciler.gpu_models = gpu_models(capabilities["hardware"])
        return capabilities

    async def _refresh_capabilities(self) -> None:
        """Sends the capabilities again whenever the Nodes change them (updateexecutormsg)."""
        while True:
            await self._nodes_changed.wait()
            self._nodes_changed.clear()
            config, identity = self.config, self.identity
            capabilities = self._capabilities(config) if config else None
            if capabilities is None or identity is None or capabilities == self._capabilities_sent:
                continue
            try:
                await identity.client.update_capabilities(config.colony_name, config.executor_name, capabilities,
                                                          identity.prvkey)
            except ColoniesError as err:
                log.info("executor %s/%s: cannot update its capabilities yet (%s)", self.namespace, self.name, err)
                await asyncio.sleep(5.0)
                self._nodes_changed.set()
                continue
            self._capabilities_sent = capabilities
            kinds = ", ".join(f"{h['nodes']}× {h['gpu']['name'] or 'no GPU'} {h['architecture']}"
                              for h in capabilities["hardware"]) or "no schedulable node"
            log.info("executor %s/%s: capabilities updated: %s", self.namespace, self.name, kinds)

    def executor_log(self, message: str) -> None:
        """A line in the executor's own Colonies log, sent in the background."""
        if self.identity is None:
            return
        task = asyncio.get_running_loop().create_task(self.identity.log(f"colonies-operator: {message}"))
        self._log_tasks.add(task)
        task.add_done_callback(self._log_tasks.discard)

    def _executor_label(self) -> str:
        return label_value(self.identity.executor_id) if self.identity else ""

    async def _use_namespace(self, namespace: str) -> None:
        self.view.subscribe(self._executor_label(), self.reconciler.on_cluster_event)
        if self._namespace_in_use != namespace:
            self.view.use(namespace)
            if self._namespace_in_use:
                await self.view.release(self._namespace_in_use)
            self._namespace_in_use = namespace
        if not await self.view.wait_synced(namespace, 30):
            problem = self.view.problem(namespace)
            raise Problem(JOBS, _kube_reason(problem), f"cannot watch Jobs and pods in namespace {namespace}: "
                          f"{problem}; {_kube_hint(problem, namespace)}")

    async def _check_jobs_accepted(self, config: ExecutorConfig) -> None:
        """A dry-run of a Job like this executor's: a namespace that does not exist, missing rights or an
        invalid label in the spec are the executor's problem, shown in its status, not any process's."""
        probe = Process.from_dict({"processid": "0" * 64, "spec": {"funcname": config.functions[0], "kwargs": {
            "docker-image": "busybox:1.35", "cmd": "true"}, "conditions": {"nodes": 1, "processespernode": 1}}})
        try:
            job = build_job(probe, probe_plan(config), config, self.identity.executor_id)
            await self.kube.create_job(job, dry_run=True)
        except KubeError as err:
            if err.transient:
                return  # the API server is busy or away: the real creation will say
            self._jobs_problem = err
            raise Problem(JOBS, _kube_reason(err), f"Kubernetes refuses this executor's Jobs in namespace "
                          f"{config.jobs.namespace}: {err}; {_kube_hint(err, config.jobs.namespace)}") from None
        except Exception as err:  # an InvalidProcess here means the spec makes every Job invalid
            raise Problem(JOBS, "InvalidJobSpec", f"the spec cannot make a valid Job: {err}") from None
        self._jobs_problem = None
        self.set_condition(JOBS, True, "Accepted", f"Kubernetes accepts Jobs in namespace {config.jobs.namespace}")

    def _jobs_refused(self, err: KubeError | None) -> None:
        """The reconciler met an executor-level refusal (None: a Job was accepted again)."""
        namespace = self.config.jobs.namespace if self.config else "?"
        if err is None:
            if self._jobs_problem is not None:
                self._jobs_problem = None
                self.set_condition(JOBS, True, "Accepted", f"Kubernetes accepts Jobs in namespace {namespace}")
                self._slot_freed.set()
                self._changed()
            return
        if self._jobs_problem is None:
            self.executor_log(f"Kubernetes refuses this executor's Jobs in namespace {namespace} ({err}): taking "
                              "no work until it accepts them")
        self._jobs_problem = err
        self.set_condition(JOBS, False, _kube_reason(err), f"Kubernetes refuses this executor's Jobs: {err}; "
                  f"{_kube_hint(err, namespace)}")
        self._changed()

    # -- what the assign loop asks of the runtime ----------------------------------------------------

    def has_room(self, config: ExecutorConfig) -> bool:
        at_cap = self.reconciler.active >= config.max_concurrent_processes
        if at_cap != self._at_cap:
            self._at_cap = at_cap
            self.executor_log(f"at its cap of {config.max_concurrent_processes} processes "
                              "(spec.maxConcurrentProcesses): taking no more work until one ends" if at_cap
                              else "below its cap again: taking work")
        return not at_cap and self._jobs_problem is None

    def take(self, process: Process, config: ExecutorConfig, identity: Identity) -> None:
        self.last_assignment = now_iso()
        metrics.process_assigned(self.metrics_label)
        self.reconciler.add(process, config, identity, adopted=False)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or self._reload.is_set()

    async def interruptible(self, call):
        """Awaits a long-poll, but returns None at once when the runtime stops or reloads."""
        task = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(self._wait_any(self._stop, self._reload))
        try:
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return None
        return task.result()

    async def wait_slot(self, timeout: float) -> None:
        """Waits until an attempt ends (or the runtime stops or reloads), at most `timeout` seconds."""
        self._slot_freed.clear()
        try:
            await asyncio.wait_for(self._wait_any(self._slot_freed, self._stop, self._reload), timeout)
        except asyncio.TimeoutError:
            pass

    async def retry_jobs_check(self) -> None:
        """While Kubernetes refuses this executor's Jobs, checks again whether it still does."""
        if self._jobs_problem is None or self.config is None:
            return
        try:
            await self._check_jobs_accepted(self.config)
        except Problem as problem:
            self.set_condition(problem.condition, False, problem.reason, problem.message)
        await self.report()

    def reachable(self, client) -> None:
        if not self.condition_ok(REACHABLE):
            self.set_condition(REACHABLE, True, "Connected", client.url)
            self._changed()

    # -- the scan of what runs here ----------------------------------------------------------------------

    async def _scan(self) -> None:
        last_scan = time.monotonic()
        while True:
            interval = SCAN_INTERVAL
            # Idle, the scan still runs now and then: it finds an assignment whose reply was lost.
            if self.reconciler.active or time.monotonic() - last_scan >= IDLE_SCAN_INTERVAL:
                last_scan = time.monotonic()
                await self._scan_once()
                interval = max(SCAN_INTERVAL, 4 * (time.monotonic() - last_scan))  # a big list: ask less often
            await asyncio.sleep(interval)

    async def _scan_once(self, *, adopting: bool = False) -> None:
        identity, config = self.identity, self.config
        started = time.monotonic()
        try:
            running = await identity.client.running_on(config.colony_name, identity.executor_id, identity.prvkey)
        except ColoniesError as err:
            log.debug("executor %s/%s: cannot list its running processes (%s)", self.namespace, self.name, err)
            return
        self.reconciler.set_views(running, identity.executor_id, started)
        # Every process Colonies runs here is carried on, also one whose assign reply never arrived (a
        # long-poll cut by a reload, a reply lost on the way); never one this operator has just closed.
        for process in running:
            if process.state == ProcessState.RUNNING and self.reconciler.unknown(process):
                if not adopting:
                    log.info("executor %s/%s: process %s runs here unknown to the operator (an assignment whose "
                             "reply was lost); carrying it on", self.namespace, self.name, process.processid)
                self.reconciler.add(process, config, identity, adopted=True)
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
            if not pid or not attempt.isdigit() or (pid, int(attempt)) in self.reconciler.attempts:
                continue
            # Read by the reconciler's workers, side by side, while the assign loop already runs: Colonies
            # never waits on a long adoption for this executor's sign of life.
            self.reconciler.add(Process.from_dict({"processid": pid, "retries": int(attempt)}), config, identity,
                                adopted=True, view=ProcessView.UNCONFIRMED)
        if self.reconciler.active:
            log.info("executor %s/%s: adopted %d running processes (%d Jobs to look at in all)", self.namespace,
                     self.name, len(resumed), self.reconciler.active)
            self.executor_log(f"adopted {len(resumed)} processes running here ({self.reconciler.active} Jobs to "
                              "look at in all)")

    # -- status -------------------------------------------------------------------------------------------

    def set_condition(self, kind: str, ok: bool, reason: str, message: str) -> None:
        generation = self.resource["metadata"].get("generation")
        self.conditions = with_condition(self.conditions, kind, ok, reason, message, generation)

    def condition_ok(self, kind: str) -> bool:
        return any(c["type"] == kind and c["status"] == "True" for c in self.conditions)

    def _changed(self) -> None:
        """Something the status shows changed: write it soon (once for a burst of changes)."""
        if self._stop.is_set():
            return
        self._slot_freed.set()
        if self._written_status.get("conditions") != self.conditions:
            self._conditions_changed.set()
        if self._status_task is None or self._status_task.done():
            self._status_task = asyncio.create_task(self._report_soon())

    async def _report_soon(self) -> None:
        await asyncio.sleep(STATUS_DEBOUNCE)
        written = self._written_status
        if written and written.get("conditions") == self.conditions:
            self._conditions_changed.clear()
            try:  # a change of conditions meanwhile ends the wait
                await asyncio.wait_for(self._conditions_changed.wait(),
                                       max(0.0, self._written_at + COUNTERS_INTERVAL - time.monotonic()))
            except asyncio.TimeoutError:
                pass
        await self.report()

    async def report(self) -> None:
        """Writes the status if it changed (never on every poll)."""
        generation = self.resource["metadata"].get("generation")
        ready, reason, message = ready_from(self.conditions)
        self.conditions = with_condition(self.conditions, READY, ready, reason, message, generation)
        status = {
            "conditions": self.conditions,
            "executorId": self.identity.executor_id if self.identity else None,
            "executorName": self.config.executor_name if self.config else None,
            "activeProcesses": self.reconciler.active,
            "succeededProcesses": self.reconciler.succeeded,
            "failedProcesses": self.reconciler.failed,
            "lastAssignmentTime": self.last_assignment,
            "observedGeneration": generation,
        }
        if status == self._written_status:
            return
        try:
            await self.kube.patch_executor_status(self.namespace, self.name, status)
            self._written_status, self._written_at = status, time.monotonic()
        except KubeError as err:  # status is best effort; the next change retries it
            log.warning("cannot write the status of %s/%s: %s", self.namespace, self.name, err)


def _kube_reason(err: KubeError | None) -> str:
    if err is None or err.status is None:
        return "KubernetesUnreachable"
    return {401: "Unauthorized", 403: "Forbidden", 404: "NamespaceMissing", 422: "InvalidJobSpec"}.get(
        err.status, "Refused")


def _kube_hint(err: KubeError | None, namespace: str) -> str:
    if err is None or err.status is None:
        return "waiting for the API server"
    if err.status == 403:
        return (f"grant the operator's service account rights on Jobs and pods in namespace {namespace} "
                "(the chart's watchNamespaces / rbac values)")
    if err.status == 404:
        return f"create namespace {namespace}, or change spec.jobs.namespace"
    if err.status == 422:
        return "fix spec.jobs (labels, annotations, securityContext, tolerations, nodeSelector)"
    return "see the message"
