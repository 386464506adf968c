"""One ColoniesExecutor at work: registration, the assign loop, the scan of what runs here, and status.

Everything is a coroutine in kopf's event loop; the per-process work is the reconciler's (reconcile.py).
The outer loop (re)reads the spec and registers; the assign loop takes work while there is room and keeps
the executor alive in Colonies when there is none; the scanner reads what Colonies runs here, which finds
cancelled and re-queued processes and, after a restart, the work to adopt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from . import metrics
from .cache import ClusterView
from .colonies import AssignmentsPaused, ColoniesError, ColoniesUnreachable, Forbidden, Process, ProcessState
from .config import ExecutorConfig, InvalidSpec, config_from_spec
from .decide import ProcessView
from .kubeapi import KubeApi, KubeError
from .jobs import build_job, plan_job
from .names import ANNOTATION_ATTEMPT, ANNOTATION_PROCESS_ID, LABEL_EXECUTOR_ID, label_value
from .reconcile import Reconciler, view_of
from .registration import Identity, colonies_client_for, connect, register
from .status import JOBS, PAUSED, READY, REACHABLE, REGISTERED, Problem, now_iso, ready_from, with_condition

log = logging.getLogger(__name__)

MAX_HEARTBEAT_INTERVAL = 60.0  # Colonies removes executors that have not called assign for 10 minutes
NEVER_MATCHING_CPU = "-1m"  # an assign that refreshes "last heard from" but can match no process
SCAN_INTERVAL = 2.0
STATUS_DEBOUNCE = 0.5


class ExecutorRuntime:
    """Runs one ColoniesExecutor until stopped. `reload(resource)` makes it re-read its spec."""

    def __init__(self, kube: KubeApi, view: ClusterView, resource: dict[str, Any],
                 log_limiter: asyncio.Semaphore) -> None:
        self.kube, self.view = kube, view
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
        self._status_task: asyncio.Task | None = None
        self._scanner: asyncio.Task | None = None
        self._adopted = False
        self._namespace_in_use: str | None = None

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
                    self._set(problem.condition, False, problem.reason, problem.message)
                    await self.report()
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # the loop must survive anything; say what happened
                    log.exception("executor %s/%s: unexpected error, retrying in %.0fs", self.namespace, self.name,
                                  backoff)
                    self._set(REGISTERED, False, "InternalError", f"{type(err).__name__}: {err}; retrying")
                    await self.report()
                await self._sleep(backoff)
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
        await self.reconciler.stop()
        if self._namespace_in_use:
            await self.view.release(self._namespace_in_use)
            self._namespace_in_use = None
        self.view.unsubscribe(self._executor_label())

    def reload(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self._reload.set()
        self._slot_freed.set()

    async def _sleep(self, seconds: float) -> None:
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
            config = config_from_spec(self.resource.get("spec") or {}, namespace=self.namespace, name=self.name)
        except InvalidSpec as err:
            raise Problem(REGISTERED, "InvalidSpec", str(err)) from None
        client = await colonies_client_for(self.kube, config)
        await connect(client, config)
        identity = await register(self.kube, client, config, self.uid)
        self.config, self.identity = config, identity
        self._set(REGISTERED, True, "Registered", f"executor {config.executor_name} ({config.executor_type}) in "
                  f"colony {config.colony_name}, id {identity.executor_id[:12]}…")
        self._set(REACHABLE, True, "Connected", client.url)
        self._set(PAUSED, True, "Assigning", "the colony's assignments are not paused")
        await self._use_namespace(config.jobs.namespace)
        await self._check_jobs_accepted(config)
        await self.report()
        if not self._adopted:
            await self._scan_once(adopting=True)
            self._adopted = True
        if self._scanner is None or self._scanner.done():
            self._scanner = asyncio.create_task(self._scan(), name=f"scan-{self.namespace}-{self.name}")
        await self._assign_loop(config, identity)

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
            job = build_job(probe, plan_job(probe, config), config, self.identity.executor_id)
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
        self._set(JOBS, True, "Accepted", f"Kubernetes accepts Jobs in namespace {config.jobs.namespace}")

    def _jobs_refused(self, err: KubeError | None) -> None:
        """The reconciler met an executor-level refusal (None: a Job was accepted again)."""
        namespace = self.config.jobs.namespace if self.config else "?"
        if err is None:
            if self._jobs_problem is not None:
                self._jobs_problem = None
                self._set(JOBS, True, "Accepted", f"Kubernetes accepts Jobs in namespace {namespace}")
                self._slot_freed.set()
                self._changed()
            return
        self._jobs_problem = err
        self._set(JOBS, False, _kube_reason(err), f"Kubernetes refuses this executor's Jobs: {err}; "
                  f"{_kube_hint(err, namespace)}")
        self._changed()

    # -- the assign loop --------------------------------------------------------------------------------

    async def _assign_loop(self, config: ExecutorConfig, identity: Identity) -> None:
        client, last_heartbeat, paused_delay, unreachable_delay = identity.client, 0.0, 1.0, 1.0
        while not self._stop.is_set() and not self._reload.is_set():
            room = self.reconciler.active < config.max_concurrent_processes and self._jobs_problem is None
            try:
                if room:
                    process = await self._interruptible(client.assign(config.colony_name,
                                                                      config.assign_timeout_seconds,
                                                                      identity.prvkey))
                    last_heartbeat = time.monotonic()
                    self._reachable(client)
                    paused_delay = 1.0
                    if process is not None:
                        self.last_assignment = now_iso()
                        metrics.process_assigned(self.metrics_label)
                        self.reconciler.add(process, config, identity, adopted=False)
                else:
                    # No room (at the cap, or Kubernetes refuses Jobs), but Colonies counts only assign calls
                    # as signs of life: an assign that no process can match keeps the executor and its work.
                    heartbeat = min(MAX_HEARTBEAT_INTERVAL, 3.0 * config.assign_timeout_seconds)
                    if time.monotonic() - last_heartbeat >= heartbeat:
                        process = await client.assign(config.colony_name, -1, identity.prvkey,
                                                      available_cpu=NEVER_MATCHING_CPU)
                        last_heartbeat = time.monotonic()
                        if process is not None:  # only a process asking for negative cpu matches: invalid
                            self.reconciler.add(process, config, identity, adopted=False)
                    self._slot_freed.clear()
                    await self._wait_slot(min(5.0, heartbeat))
                    if self._jobs_problem is not None and self.config:
                        await self._retry_jobs_check()
            except AssignmentsPaused as err:
                # The colony owner paused assignments: wait for the resume, nothing to re-register or count.
                if self._condition_ok(PAUSED):
                    log.info("executor %s/%s: colony %s has paused assignments", self.namespace, self.name,
                             config.colony_name)
                self._set(PAUSED, False, "Paused", f"colony {config.colony_name} has paused assignments "
                          f"({err.message}); resuming by itself when they resume")
                await self.report()
                await self._sleep(paused_delay)
                paused_delay = min(paused_delay * 2, 15.0)
                last_heartbeat = time.monotonic()
                continue
            except Forbidden as err:
                raise Problem(REGISTERED, "Forbidden", f"Colonies refused this executor ({err.message}); "
                              "re-checking the registration") from None
            except ColoniesError as err:
                # Unreachable or a server error: transient. Running work goes on; assign is retried, with no
                # re-registration.
                reason = "Unreachable" if isinstance(err, ColoniesUnreachable) else "ServerError"
                if self._condition_ok(REACHABLE):
                    log.warning("executor %s/%s: Colonies %s: %s", self.namespace, self.name, reason, err)
                self._set(REACHABLE, False, reason, f"{err}; retrying")
                await self.report()
                await self._sleep(unreachable_delay)
                unreachable_delay = min(unreachable_delay * 2, 15.0)
                continue
            unreachable_delay = 1.0
            if not self._condition_ok(PAUSED):
                log.info("executor %s/%s: colony %s assigns again", self.namespace, self.name, config.colony_name)
                self._set(PAUSED, True, "Assigning", "the colony's assignments are not paused")
                await self.report()

    async def _interruptible(self, call):
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

    async def _wait_slot(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wait_any(self._slot_freed, self._stop, self._reload), timeout)
        except asyncio.TimeoutError:
            pass

    async def _retry_jobs_check(self) -> None:
        try:
            await self._check_jobs_accepted(self.config)
        except Problem as problem:
            self._set(problem.condition, False, problem.reason, problem.message)
        await self.report()

    def _reachable(self, client) -> None:
        if not self._condition_ok(REACHABLE):
            self._set(REACHABLE, True, "Connected", client.url)
            self._changed()

    # -- the scan of what runs here ----------------------------------------------------------------------

    async def _scan(self) -> None:
        while True:
            interval = SCAN_INTERVAL
            if self.reconciler.active:
                started = time.monotonic()
                await self._scan_once()
                interval = max(SCAN_INTERVAL, 4 * (time.monotonic() - started))  # a big list: ask less often
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
        if not adopting:
            return
        # After a restart: every process running here is carried on, and every active Job of this
        # executor whose attempt Colonies does not run here is looked at (and removed).
        resumed = [p for p in running if p.state == ProcessState.RUNNING]
        for process in resumed:
            self.reconciler.add(process, config, identity, adopted=True)
        for job in self.view.jobs(config.jobs.namespace):
            meta = job["metadata"]
            if (meta.get("labels") or {}).get(LABEL_EXECUTOR_ID) != label_value(identity.executor_id):
                continue
            annotations = meta.get("annotations") or {}
            pid, attempt = annotations.get(ANNOTATION_PROCESS_ID, ""), annotations.get(ANNOTATION_ATTEMPT, "")
            if not pid or not attempt.isdigit() or (pid, int(attempt)) in self.reconciler.attempts:
                continue
            try:
                process = await identity.client.get_process(pid, identity.prvkey)
            except ColoniesError:
                process, view = Process.from_dict({"processid": pid}), ProcessView.UNCONFIRMED
            else:
                view = view_of(process, identity.executor_id, int(attempt))
            # The attempt is the Job's: an older attempt's Job is removed, whatever the process does now.
            self.reconciler.add(dataclasses.replace(process, retries=int(attempt)), config, identity, adopted=True,
                                view=view)
        if self.reconciler.active:
            log.info("executor %s/%s: adopted %d running processes (%d Jobs to look at in all)", self.namespace,
                     self.name, len(resumed), self.reconciler.active)

    # -- status -------------------------------------------------------------------------------------------

    def _set(self, kind: str, ok: bool, reason: str, message: str) -> None:
        generation = self.resource["metadata"].get("generation")
        self.conditions = with_condition(self.conditions, kind, ok, reason, message, generation)

    def _condition_ok(self, kind: str) -> bool:
        return any(c["type"] == kind and c["status"] == "True" for c in self.conditions)

    def _changed(self) -> None:
        """Something the status shows changed: write it soon (once for a burst of changes)."""
        if self._stop.is_set():
            return
        self._slot_freed.set()
        if self._status_task is None or self._status_task.done():
            self._status_task = asyncio.create_task(self._report_soon())

    async def _report_soon(self) -> None:
        await asyncio.sleep(STATUS_DEBOUNCE)
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
            self._written_status = status
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
