"""The per-attempt reconciler: a queue of process attempts, a few workers, one decision at a time.

Each process attempt (process id, attempt number) is a key. Events of its Job and pods, the scan of what
Colonies runs here, log followers and timers put its key in the queue; a key is never in the queue twice
and never reconciled by two workers at once. A reconcile brings the attempt up to date with the view and the
clock, gathers the facts, asks `decide`, does that one idempotent thing, and asks again, until the answer is to
wait. Nothing holds a thread, or a task, for a process's lifetime; log followers are bounded per process and in
total (attempt_logs.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from ..colonies import (
    AssignmentsPaused,
    ColoniesError,
    ColoniesUnreachable,
    Forbidden,
    InvalidRequest,
    NotFound,
    Process,
)
from ..colonies.wire import bounded_errors
from ..core.admission import without_limits
from ..core.conditions import Problem
from ..core.config import ExecutorConfig
from ..core.decide import Act, Decision, Facts, ProcessView, decide, same_assignment, view_of
from ..core.jobs import build_job, debug_log, release_patch
from ..core.names import ANNOTATION_DISRUPTIONS, FailureReason, ProcessOutcome, job_name
from ..core.outcome import (
    disruption_note,
    disruption_of,
    disruptions_from_annotation,
    disruptions_to_annotation,
    job_finished,
    job_suspended,
)
from ..core.plan import InvalidProcess, plan_job
from ..kube.api import KubeApi, KubeError
from ..kube.cache import ClusterView, job_of_pod, job_of_workload
from . import metrics
from .attempt import Attempt, Key
from .attempt_logs import AttemptLogs, LogLimits
from .probe import dry_run_job
from .workqueue import WorkQueue

if TYPE_CHECKING:
    from .registration import Identity

log = logging.getLogger(__name__)

WORKERS = 32  # per executor: coroutines waiting on the API server and Colonies (at 8, closing 2,000 processes
# that ended together ran at 35 a second)
MAX_STEPS = 12  # actions per reconcile before yielding the worker to other keys
FORGOTTEN_SECONDS = 600.0
UNKNOWN_SECONDS = 5.0  # Colonies could not say how a process stands: ask again after this long
FLUSH_ON_STOP_SECONDS = 1.5  # on stop (a hand-over), the log lines read so far are sent within this long


class Reconciler:
    """The attempts of one ColoniesExecutor, reconciled by a fixed number of workers."""

    def __init__(self, kube: KubeApi, view: ClusterView, *, executor_label: str, log_name: str,
                 on_change: Callable[[], None], on_jobs_refused: Callable[[KubeError | None], None],
                 log_limits: LogLimits, succeeded: int = 0, failed: int = 0) -> None:
        self.kube, self.view = kube, view
        self.executor_label = executor_label  # for metrics
        self.log_name = log_name
        self._on_change = on_change  # active count or counters changed: the status may need writing
        self._on_jobs_refused = on_jobs_refused  # an executor-level refusal (None: Jobs are accepted again)
        self._log_limits = log_limits
        self._pod_get_forbidden_logged = False
        self.attempts: dict[Key, Attempt] = {}
        self._by_job: dict[tuple[str, str], Key] = {}
        self.queue: WorkQueue[Key] = WorkQueue()
        self._workers: list[asyncio.Task] = []
        self._stopping = False
        self.succeeded, self.failed = succeeded, failed  # processes closed, since the resource was created
        # Attempts done with lately, and their assignment: a late list must not revive them (a new assignment may).
        self._forgotten: dict[Key, tuple[float, dt.datetime | None]] = {}
        # Assignments of a process attempt taken while an earlier assignment of it is being ended (handed back
        # and assigned here again): each is taken on once its predecessor is dropped.
        self._successors: dict[Key, tuple[Process, ExecutorConfig, "Identity"]] = {}
        # The cluster's GPU models (from its Nodes), once known: a process asking for another fails at once.
        self._gpu_models: frozenset[str] | None = None

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._workers = [asyncio.create_task(self._work(), name=f"reconcile-{self.log_name}-{i}")
                         for i in range(WORKERS)]

    async def stop(self) -> None:
        """Stops reconciling: Jobs keep running (a restarted operator adopts them), nothing is closed. No
        reconcile starts once this is called."""
        self._stopping = True
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        await self._flush_logs()
        for attempt in list(self.attempts.values()):
            self._drop(attempt, count=False)

    async def _flush_logs(self) -> None:
        """Sends the log lines read so far, for at most FLUSH_ON_STOP_SECONDS: whoever carries the attempts on next
        resumes after the lines Colonies holds, so what is sent here is not read again."""
        for attempt in self.attempts.values():
            attempt.logs.stop_following()
        flushes = [asyncio.ensure_future(attempt.logs.shipper.flush()) for attempt in self.attempts.values()]
        if flushes:
            _, unfinished = await asyncio.wait(flushes, timeout=FLUSH_ON_STOP_SECONDS)
            for flush in unfinished:
                flush.cancel()
            await asyncio.gather(*flushes, return_exceptions=True)

    @property
    def active(self) -> int:
        return len(self.attempts)

    @property
    def queued(self) -> int:
        """Attempts whose Job waits in a queue (suspended) now."""
        return sum(1 for attempt in self.attempts.values() if attempt.queued)

    def know_gpu_models(self, models: frozenset[str] | None) -> None:
        """The GPU models of the cluster's Nodes: a process taken from now on asking for another, not declared in
        spec.gpu.models either, fails."""
        self._gpu_models = models

    def add(self, process: Process, config: ExecutorConfig, identity: "Identity", *, adopted: bool,
            view: ProcessView = ProcessView.RUNNING_HERE, known_from_job: bool = False, job: str = "",
            assigned_at: dt.datetime | None = None) -> Attempt:
        """Takes on an attempt: assigned now, found running here after a restart, or (`known_from_job`) found
        only as a Job, whose process is read from Colonies first. `job` is the name of a Job found for it, and
        `assigned_at` the assignment that Job belongs to."""
        key = (process.processid, process.retries)
        existing = self.attempts.get(key)
        if existing is not None:
            if not known_from_job and not same_assignment(existing.assigned_at, process.starttime):
                # Handed back and assigned here again while the earlier assignment is being ended: this one is
                # taken on once that one is dropped, with a Job of its own.
                self._successors[key] = (process, config, identity)
                self._verify_soon(key)
            return existing
        job = job or job_name(process.processid, process.retries, identity.executor_id, process.starttime)
        namespace = config.jobs.namespace
        logs = AttemptLogs(identity=identity, pid=process.processid, namespace=namespace, job_name=job,
                           kube=self.kube, adopted=adopted, active_pods=lambda: self.view.pods(namespace, job),
                           job=lambda: self._job_of(key), wake=lambda: self.queue.add(key),
                           on_refused=lambda err: self._verify_soon(key), limits=self._log_limits)
        attempt = Attempt(process=process, config=config, identity=identity, adopted=adopted, logs=logs, view=view,
                          known_from_job=known_from_job, fixed_job_name=job, assignment=assigned_at)
        if not known_from_job:
            self._plan(attempt)
        self.attempts[key] = attempt
        self._by_job[(attempt.namespace, attempt.job_name)] = key
        self.view.use(attempt.namespace)
        if config.jobs.queue_name:
            self.view.use_workloads(attempt.namespace)
        metrics.set_active(self.executor_label, len(self.attempts))
        self.queue.add(key)
        self._on_change()
        return attempt

    def _job_of(self, key: Key) -> dict[str, Any] | None:
        attempt = self.attempts.get(key)
        if attempt is None:
            return None
        return self.view.job(attempt.namespace, attempt.job_name) or attempt.job_direct

    def _plan(self, attempt: Attempt) -> None:
        # An adopted attempt keeps its Job: the GPU models are checked only for work taken now.
        gpu_models = None if attempt.adopted else self._gpu_models
        try:
            attempt.plan, attempt.invalid = plan_job(attempt.process, attempt.config, gpu_models=gpu_models), None
        except InvalidProcess as err:
            attempt.plan, attempt.invalid = None, str(err)
            if attempt.adopted:
                # Accepted under the limits of its time: if its Job runs, it runs to its end (decide.py).
                try:
                    attempt.plan = plan_job(attempt.process, without_limits(attempt.config))
                except InvalidProcess:
                    pass

    def unknown(self, process: Process) -> bool:
        """True for an attempt this reconciler neither carries nor has lately done with (a new assignment of one
        it has done with is unknown)."""
        key = (process.processid, process.retries)
        if key in self.attempts:
            return False
        forgotten = self._forgotten.get(key)
        return forgotten is None or not same_assignment(forgotten[1], process.starttime)

    def _drop(self, attempt: Attempt, *, count: bool = True) -> None:
        now = time.monotonic()
        self._forgotten[attempt.key] = (now, attempt.assigned_at)
        if len(self._forgotten) > 10_000 or next(iter(self._forgotten.values()))[0] < now - FORGOTTEN_SECONDS:
            self._forgotten = {k: v for k, v in self._forgotten.items() if v[0] >= now - FORGOTTEN_SECONDS}
        attempt.logs.close()
        self.attempts.pop(attempt.key, None)
        self._by_job.pop((attempt.namespace, attempt.job_name), None)
        self.queue.forget(attempt.key)
        asyncio.get_running_loop().create_task(self.view.release(attempt.namespace))
        if attempt.config.jobs.queue_name:
            asyncio.get_running_loop().create_task(self.view.release_workloads(attempt.namespace))
        metrics.set_active(self.executor_label, len(self.attempts))
        if count and attempt.outcome:
            metrics.process_finished(self.executor_label, attempt.outcome.value,
                                     attempt.failure_reason.value if attempt.failure_reason else None)
        successor = self._successors.pop(attempt.key, None)
        if successor is not None and not self._stopping:
            process, config, identity = successor
            self.add(process, config, identity, adopted=False)
        self._on_change()

    # -- what wakes an attempt ----------------------------------------------------------------------

    def on_cluster_event(self, namespace: str, kind: str, obj: dict[str, Any] | None, last: dict[str, Any]) -> None:
        if kind == "jobs":
            job = last["metadata"]["name"]
        elif kind == "workloads":
            job = job_of_workload(last)
        else:
            job = job_of_pod(last)
        key = self._by_job.get((namespace, job))
        if key is None:
            return
        if kind == "pods" and obj is None and key in self.attempts:
            # A pod leaves the view when it finishes, and may be deleted soon after (an eviction): keep its
            # last state, the only record of why it ended.
            self.attempts[key].departed_pods[last["metadata"]["name"]] = last
        self.queue.add(key)

    def set_views(self, running: list[Process], executor_id: str, scan_started: float) -> None:
        """The scan of what Colonies runs here: attempts it lists are confirmed, those it does not are read."""
        listed = {(p.processid, p.retries): p.starttime for p in running if p.assignedexecutorid == executor_id}
        for attempt in list(self.attempts.values()):
            if attempt.key in listed and same_assignment(listed[attempt.key], attempt.assigned_at):
                if attempt.view in (ProcessView.UNCONFIRMED, ProcessView.UNKNOWN):
                    attempt.view = ProcessView.RUNNING_HERE
                    self.queue.add(attempt.key)
            elif attempt.view == ProcessView.RUNNING_HERE and attempt.process.starttime is not None \
                    and attempt.added_at < scan_started:
                attempt.view = ProcessView.UNCONFIRMED
                self.queue.add(attempt.key)

    def _verify_soon(self, key: Key) -> None:
        """Colonies refused a log batch: the process may no longer run here, so it is read again."""
        attempt = self.attempts.get(key)
        if attempt is None:
            return
        if attempt.view == ProcessView.RUNNING_HERE:
            attempt.view = ProcessView.UNCONFIRMED
        self.queue.add(key)

    # -- the workers ---------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                attempt = self.attempts.get(key)
                if attempt is not None and not self._stopping:
                    await self._reconcile(attempt)
            except asyncio.CancelledError:
                raise
            except Exception:  # one attempt's bug must not stop the others; look again later
                log.exception("process %s: unexpected error while reconciling; retrying in 10s", key[0])
                self.queue.add_after(key, 10)
            finally:
                self.queue.done(key)

    def _observe(self, attempt: Attempt) -> None:
        """Brings the attempt up to date with the view and the clock, before its facts are read."""
        if self.view.job(attempt.namespace, attempt.job_name) is not None:
            attempt.job_direct = None  # the view shows the Job now: it is the one to read
            attempt.job_expected = True
        if attempt.view == ProcessView.UNKNOWN and time.monotonic() >= attempt.unknown_until:
            attempt.view = ProcessView.UNCONFIRMED
        self._observe_disruptions(attempt)

    def _observe_disruptions(self, attempt: Attempt) -> None:
        """Records the pods the cluster disrupted (those the Job's annotation lists first, after a restart), each
        with a line in the process log once the pod's own lines are shipped. Pods stopped because the Job was
        suspended (Kueue) or finished are not disruptions."""
        job = self.view.job(attempt.namespace, attempt.job_name) or attempt.job_direct
        if job is None:
            return
        if not attempt.disruptions:
            recorded = (job.get("metadata") or {}).get("annotations") or {}
            for disruption in disruptions_from_annotation(recorded.get(ANNOTATION_DISRUPTIONS)):
                attempt.disruptions[disruption.pod] = disruption
            attempt.disruptions_recorded = len(attempt.disruptions)
        if job_suspended(job) or job_finished(job):
            return
        pods = self.view.pods(attempt.namespace, attempt.job_name) + list(attempt.departed_pods.values())
        for pod in pods:
            disruption = disruption_of(pod)
            if disruption is None or disruption.pod in attempt.disruptions:
                continue
            attempt.disruptions[disruption.pod] = disruption
            config, nodes = attempt.config.jobs, attempt.plan.nodes if attempt.plan else 1
            log.info("process %s: pod %s was disrupted (%s: %s)", attempt.pid, disruption.pod, disruption.reason,
                     disruption.message)
            attempt.logs.note_after_pod(disruption.pod, disruption_note(
                disruption, len(attempt.disruptions), config.max_disruptions, nodes))

    def facts(self, attempt: Attempt) -> Facts:
        """What is known of the attempt now, as plain data for `decide` (reading changes nothing)."""
        job = self.view.job(attempt.namespace, attempt.job_name) or attempt.job_direct
        config = attempt.config.jobs
        failing = time.monotonic() - attempt.create_failing_since if attempt.create_failing_since else 0.0
        plan = attempt.plan
        autoscaled = plan.gpu_name if plan and plan.gpu_name in attempt.config.gpu.models else ""
        workload, problem = None, None
        if config.queue_name:
            workload = self.view.workload(attempt.namespace, attempt.job_name)
            problem = self.view.workloads_problem(attempt.namespace)
            if problem and "403" in problem:
                problem += "; grant the operator get, list and watch on workloads.kueue.x-k8s.io (the chart does)"
        return Facts(
            process=attempt.view, now=self.kube.now(), pending_timeout=config.pending_timeout_seconds,
            image_pull_grace=config.image_pull_grace_seconds, walltime=attempt.plan.walltime if attempt.plan else None,
            invalid=attempt.invalid, adopted=attempt.adopted, job_refused=attempt.job_refused, job=job,
            view_synced=self.view.synced(attempt.namespace), job_expected=attempt.job_expected,
            job_absent_confirmed=attempt.job_absent_confirmed, job_deleted=attempt.job_deleted,
            job_released=attempt.job_released, active_pods=tuple(self.view.pods(attempt.namespace, attempt.job_name)),
            final_pods=attempt.final_pods, logs_drained=attempt.logs.drained, create_error=attempt.create_error,
            create_failing_seconds=failing, create_timeout=float(config.create_timeout_seconds),
            disruptions=tuple(attempt.disruptions.values()), disruptions_recorded=attempt.disruptions_recorded,
            max_disruptions=config.max_disruptions, nodes=plan.nodes if plan else 1, queue_name=config.queue_name,
            workload=workload, workloads_problem=problem, autoscaled_model=autoscaled,
            model_present=not autoscaled or self._gpu_models is None or autoscaled in self._gpu_models,
            scale_up_timeout=config.scale_up_timeout_seconds, walltime_stopped=attempt.walltime_stopped)

    async def _reconcile(self, attempt: Attempt) -> None:
        for _ in range(MAX_STEPS):
            if self.attempts.get(attempt.key) is not attempt:
                return
            self._observe(attempt)
            decision = decide(self.facts(attempt))
            log.debug("process %s attempt %d: %s (%s)", attempt.pid, attempt.process.retries, decision.act.value,
                      decision.why)
            if decision.act == Act.WAIT:
                self._waiting(attempt, decision)
                if not attempt.job_deleted:
                    await attempt.logs.follow(attempt.plan, self.view.pods(attempt.namespace, attempt.job_name),
                                              attempt.process.starttime)
                if decision.recheck_after is not None:
                    self.queue.add_after(attempt.key, decision.recheck_after)
                return
            delay = await self._do(attempt, decision)
            if delay is not None:
                self.queue.add_after(attempt.key, delay)
                return
        self.queue.add(attempt.key)

    def _waiting(self, attempt: Attempt, decision: Decision) -> None:
        """What a wait means beyond waiting: a new reason in the process log, the queued count."""
        if decision.note and decision.note != attempt.note:  # a wait for another reason (Colonies away) keeps it
            attempt.note = decision.note
            attempt.logs.note(decision.note)
        if decision.queued != attempt.queued:
            attempt.queued = decision.queued
            self._on_change()

    async def _do(self, attempt: Attempt, decision: Decision) -> float | None:
        """Does the decided thing; None to decide again at once, else seconds until the next look."""
        act = decision.act
        if act == Act.VERIFY_PROCESS:
            return await self._verify_process(attempt)
        if act == Act.VERIFY_JOB:
            try:
                job = await self.kube.get_job(attempt.namespace, attempt.job_name)
            except KubeError as err:
                log.info("process %s: cannot read Job %s yet (%s)", attempt.pid, attempt.job_name, err)
                return 5.0
            attempt.job_direct = job
            attempt.job_absent_confirmed = job is None
            return None
        if act == Act.CREATE_JOB:
            return await self._create_job(attempt)
        if act == Act.READ_FINAL_PODS:
            try:
                attempt.final_pods = await self._read_final_pods(attempt)
            except KubeError as err:
                log.info("process %s: cannot read its pods yet (%s)", attempt.pid, err)
                return 5.0
            return None
        if act == Act.DRAIN_LOGS:
            return await attempt.logs.drain(attempt.plan, attempt.final_pods or self.view.pods(
                attempt.namespace, attempt.job_name), attempt.process.starttime)
        if act == Act.CLOSE_SUCCESSFUL:
            return await self._close(attempt, ProcessOutcome.SUCCEEDED, decision)
        if act == Act.CLOSE_FAILED:
            return await self._close(attempt, ProcessOutcome.FAILED, decision)
        if act == Act.DELETE_JOB:
            return await self._delete_job(attempt, decision.why)
        if act == Act.RELEASE_JOB:
            return await self._release_job(attempt)
        if act == Act.RECORD_DISRUPTIONS:
            return await self._patch_job(attempt, {"metadata": {"annotations": {
                ANNOTATION_DISRUPTIONS: disruptions_to_annotation(attempt.disruptions.values())}}},
                "record its disruptions on", lambda: setattr(attempt, "disruptions_recorded",
                                                              len(attempt.disruptions)))
        if act == Act.STOP_AT_WALLTIME:
            log.info("process %s: %s; stopping its Job", attempt.pid, decision.why)
            return await self._patch_job(attempt, {"spec": {"activeDeadlineSeconds": decision.deadline}},
                                         "stop at its walltime", lambda: setattr(attempt, "walltime_stopped", True))
        if act == Act.FORGET:
            self._drop(attempt)
            return None
        raise AssertionError(f"unknown action {act}")

    # -- the actions -------------------------------------------------------------------------------------

    async def _verify_process(self, attempt: Attempt) -> float | None:
        identity = attempt.identity
        try:
            process = await identity.client.get_process(attempt.pid, identity.prvkey)
        except NotFound:
            attempt.view = ProcessView.GONE
            return None
        except (ColoniesUnreachable, AssignmentsPaused, Forbidden, ColoniesError) as err:
            # Unreachable, 5xx, paused, or this executor's registration in question: transient for the
            # attempt. Nothing is deleted or failed on it.
            attempt.view = ProcessView.UNKNOWN
            attempt.unknown_until = time.monotonic() + UNKNOWN_SECONDS
            log.info("process %s: Colonies cannot say how it stands (%s); waiting", attempt.pid, err)
            return UNKNOWN_SECONDS
        attempt.view = view_of(process, identity.executor_id, attempt.process.retries, attempt.assigned_at)
        if attempt.known_from_job and attempt.view == ProcessView.RUNNING_HERE:
            # Adoption found only the Job: now the process itself is known.
            attempt.process, attempt.known_from_job = process, False
            self._plan(attempt)
        if attempt.view != ProcessView.RUNNING_HERE:
            log.info("process %s attempt %d is %s in Colonies", attempt.pid, attempt.process.retries,
                     attempt.view.value)
        return None

    async def _create_job(self, attempt: Attempt) -> float | None:
        try:
            job = build_job(attempt.process, attempt.plan, attempt.config, attempt.identity.executor_id)
        except InvalidProcess as err:
            attempt.invalid = str(err)
            return None
        job["metadata"]["name"] = attempt.job_name  # as the attempt knows it, whatever the process read since
        started = time.monotonic()
        try:
            created = await self.kube.create_job(job)
        except KubeError as err:
            executor_level = not err.transient and (err.status not in (400, 413, 422)
                                                    or await self._refuses_every_job(attempt))
            if not err.transient and not executor_level:  # this process's Job is refused: say why, create nothing
                attempt.job_refused = f"Kubernetes refused the Job ({err.status} {err.reason}): {err.message}"
                return None
            if executor_level:  # the executor's namespace, rights or admission are wrong, not the process
                self._on_jobs_refused(err)
            attempt.create_error = str(err)
            attempt.create_failing_since = attempt.create_failing_since or time.monotonic()
            attempt.create_delay = min(attempt.create_delay * 2, 30.0)
            log.warning("process %s: cannot create Job %s/%s yet: %s", attempt.pid, attempt.namespace,
                        attempt.job_name, err)
            return attempt.create_delay
        metrics.job_created(time.monotonic() - started)
        if attempt.create_error:
            self._on_jobs_refused(None)
        attempt.create_error, attempt.create_failing_since = None, None
        attempt.job_expected = True
        if created is not None:
            attempt.job_direct = created
            log.info("process %s: created Job %s/%s", attempt.pid, attempt.namespace, attempt.job_name)
            if attempt.plan.debug:  # kwargs debug: what was created, first in the process log
                for line in debug_log(attempt.plan, job).splitlines():
                    attempt.logs.shipper.add(line)
        else:
            attempt.job_direct = None  # it existed already (created before a restart); the view shows it
        return None

    async def _refuses_every_job(self, attempt: Attempt) -> bool:
        """Whether Kubernetes refuses a Job of this executor that asks for nothing (a dry run): then a refusal of
        this process's Job (an admission webhook or policy added since the start) is the executor's, not the
        process's, and no process is failed for it one by one."""
        try:
            refusal = await dry_run_job(self.kube, attempt.config, attempt.identity.executor_id)
        except Problem:
            return True
        return refusal is not None and not refusal.transient

    async def _read_final_pods(self, attempt: Attempt) -> tuple[dict[str, Any], ...]:
        """The finished Job's pods as they ended. A pod that is gone is kept as last seen (an evicted pod may be
        deleted at once: that is the only record of why it ended).

        When the watch saw every pod the Job counts (succeeded and failed) leave the view, each is read by name:
        a watch announces a pod leaving its field selector with the pod's previous state, not its final one. A
        read by name is one key for the API server, where a list by label reads every pod of the namespace:
        with thousands of pods there, the list is what made closing slow. Otherwise they are listed."""
        departed = attempt.departed_pods
        job = self.view.job(attempt.namespace, attempt.job_name) or attempt.job_direct or {}
        status = job.get("status") or {}
        counted = (status.get("succeeded") or 0) + (status.get("failed") or 0)
        if (departed and len(departed) == counted and self.view.synced(attempt.namespace)
                and not self.view.pods(attempt.namespace, attempt.job_name)):
            try:
                read = await asyncio.gather(*(self.kube.get_pod(attempt.namespace, name) for name in departed))
                return tuple(pod or departed[name] for name, pod in zip(departed, read))
            except KubeError as err:
                if err.status != 403:
                    raise
                # RBAC from before reading by name (the chart grants get on pods): list them, as before.
                if not self._pod_get_forbidden_logged:
                    log.warning("cannot read pods by name in %s (%s); listing them instead: grant get on pods "
                                "(the Helm chart does)", attempt.namespace, err)
                    self._pod_get_forbidden_logged = True
        pods = await self.kube.list_pods_of_job(attempt.namespace, attempt.job_name)
        listed = {pod["metadata"]["name"] for pod in pods}
        return tuple(pods) + tuple(pod for name, pod in departed.items() if name not in listed)

    async def _close(self, attempt: Attempt, outcome: ProcessOutcome, decision: Decision) -> float | None:
        identity = attempt.identity
        try:
            if outcome == ProcessOutcome.SUCCEEDED:
                await identity.client.close_successful(attempt.pid, identity.prvkey, output=list(decision.output))
            else:
                errors = bounded_errors(list(decision.errors) + attempt.logs.failure_tail())
                await identity.client.close_failed(attempt.pid, errors, identity.prvkey)
        except (InvalidRequest, Forbidden) as err:
            # Cancelled, re-queued or closed meanwhile, or the reply refuses what was sent: read the process.
            attempt.close_refusals += 1
            if attempt.close_refusals >= 3 and outcome == ProcessOutcome.SUCCEEDED:
                log.warning("process %s: Colonies refuses to store its output (%s); failing it", attempt.pid, err)
                return await self._close(attempt, ProcessOutcome.FAILED, Decision(
                    Act.CLOSE_FAILED, "output refused", errors=(f"the process succeeded but Colonies refused its "
                                                                f"output: {err.message}",),
                    reason=FailureReason.OTHER))
            log.info("process %s could not be closed (%s); reading how it stands", attempt.pid, err.message)
            attempt.view = ProcessView.UNCONFIRMED
            return None
        except ColoniesError as err:  # unreachable, 5xx, paused: the close is retried, never dropped
            log.info("process %s: cannot close it yet (%s); retrying", attempt.pid, err)
            return 3.0
        attempt.outcome = outcome
        attempt.failure_reason = decision.reason
        attempt.view = ProcessView.SUCCEEDED if outcome == ProcessOutcome.SUCCEEDED else ProcessView.FAILED
        if outcome == ProcessOutcome.SUCCEEDED:
            self.succeeded += 1
            log.info("process %s succeeded", attempt.pid)
        else:
            self.failed += 1
            log.info("process %s failed: %s", attempt.pid, "; ".join(decision.errors)[:500])
            refusal = attempt.invalid or attempt.job_refused
            if refusal:  # the executor's own log says why work was refused, for those without the cluster
                await identity.log(f"colonies-operator: refused process {attempt.pid}: {refusal}")
        self._on_change()
        return None

    async def _delete_job(self, attempt: Attempt, why: str) -> float | None:
        attempt.logs.stop_following()
        try:
            await self.kube.patch_job(attempt.namespace, attempt.job_name, release_patch(None))
            await self.kube.delete_job(attempt.namespace, attempt.job_name)
        except KubeError as err:
            log.warning("process %s: cannot delete Job %s yet (%s)", attempt.pid, attempt.job_name, err)
            return 5.0
        if attempt.job_expected or attempt.job_direct:
            log.info("process %s: deleted Job %s/%s (%s)", attempt.pid, attempt.namespace, attempt.job_name, why)
        attempt.job_deleted = True
        attempt.job_direct = None
        attempt.logs.close()
        return None

    async def _patch_job(self, attempt: Attempt, patch: dict[str, Any], what: str,
                         done: Callable[[], None]) -> float | None:
        try:
            await self.kube.patch_job(attempt.namespace, attempt.job_name, patch)
        except KubeError as err:
            log.warning("process %s: cannot %s Job %s yet (%s)", attempt.pid, what, attempt.job_name, err)
            return 5.0
        done()
        return None

    async def _release_job(self, attempt: Attempt) -> float | None:
        try:
            await self.kube.patch_job(attempt.namespace, attempt.job_name,
                                      release_patch(attempt.outcome, attempt.config.jobs.ttl_seconds_after_finished))
        except KubeError as err:
            log.warning("process %s: cannot label Job %s closed yet (%s)", attempt.pid, attempt.job_name, err)
            return 5.0
        attempt.job_released = True
        return None
