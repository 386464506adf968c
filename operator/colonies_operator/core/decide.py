"""What to do next for one process attempt (pure: no I/O).

`decide(facts)` takes what is known of an attempt — the process as Colonies last reported it, its Job and
pods as observed, what the operator has already done, the clock — and returns one action. The reconciler
(engine/reconciler.py) gathers the facts, does that one idempotent thing, and asks again. Every rule that protects
work lives here, so each is a row in a table-driven test:

- a process is never failed, and a Job never deleted, on a transient error or an unsynced view;
- "the Job is gone" is believed only after a direct read confirms what a synced view shows;
- a process that Colonies no longer runs here (cancelled, re-queued, given to another attempt or executor,
  removed) loses its Job; a FAILED process keeps nothing running;
- a Job is created only for a RUNNING attempt that never had one: a Job cannot vanish unseen (it carries a
  finalizer until its process is closed), so no attempt runs twice;
- what was accepted once runs to its end under the rules it started with: an attempt adopted with its Job is not
  failed because today's limits would refuse it.
- a pod the cluster disrupts is replaced by Kubernetes and the process runs on, up to max_disruptions;
- a queued Job (suspended, for Kueue) waits without a timeout, and its log says why;
- walltime counts the containers' running time: when it is over, the Job's activeDeadlineSeconds is set to stop
  it now (activeDeadlineSeconds from the start would count queued and pending time too).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from typing import Any

from ..colonies.models import Process, ProcessState
from .names import FailureReason
from .outcome import (
    Disruption,
    Outcome,
    condition,
    job_finished,
    outcome_of,
    parse_time,
    recheck_after,
    running_since,
    too_many_disruptions,
)

RESYNC_SECONDS = 60.0  # level-triggered: every attempt is looked at again this often, events or not
COLONIES_RETRY_SECONDS = 5.0


class ProcessView(enum.Enum):
    """The attempt as Colonies last reported it."""

    RUNNING_HERE = "running here"  # RUNNING, assigned to this executor, this attempt
    UNCONFIRMED = "unconfirmed"  # not in the last list of running processes, or not read yet: read it
    UNKNOWN = "unknown"  # Colonies could not be asked (unreachable, 5xx, paused): wait, change nothing
    REQUEUED = "re-queued"  # WAITING again, or RUNNING as another attempt or on another executor
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    GONE = "gone"  # removed from Colonies (404)


ASSIGNMENT_TOLERANCE = dt.timedelta(milliseconds=1)  # Colonies' reply has nanoseconds, its database microseconds


def same_assignment(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    """Whether two starttimes are one assignment (unknown on either side: assumed so)."""
    return a is None or b is None or a.year < 2 or b.year < 2 or abs(a - b) < ASSIGNMENT_TOLERANCE


def view_of(process: Process, executor_id: str, attempt: int, assigned_at: dt.datetime | None = None) -> ProcessView:
    """What a process read from Colonies means for one attempt (assigned at `assigned_at`) of it on this executor.
    Handed back and assigned here again, it keeps its attempt number: that is another assignment."""
    state = process.state
    if state == ProcessState.RUNNING:
        if process.assignedexecutorid == executor_id and process.retries == attempt and \
                same_assignment(process.starttime, assigned_at):
            return ProcessView.RUNNING_HERE
        return ProcessView.REQUEUED
    return {ProcessState.WAITING: ProcessView.REQUEUED, ProcessState.SUCCESS: ProcessView.SUCCEEDED,
            ProcessState.FAILED: ProcessView.FAILED, ProcessState.CANCELLED: ProcessView.CANCELLED}.get(
        ProcessState(state), ProcessView.UNKNOWN)


class Act(enum.Enum):
    WAIT = "wait"
    VERIFY_PROCESS = "verify process"  # read the process from Colonies
    VERIFY_JOB = "verify job"  # read the Job directly: the view does not show it
    CREATE_JOB = "create job"
    READ_FINAL_PODS = "read final pods"  # the Job finished: read its pods once, for exit codes and output
    DRAIN_LOGS = "drain logs"  # ship every line before closing: Colonies refuses logs after
    CLOSE_SUCCESSFUL = "close successful"
    CLOSE_FAILED = "close failed"
    DELETE_JOB = "delete job"  # the Job and its pods, and its finalizer
    RELEASE_JOB = "release job"  # label the Job closed and drop its finalizer: it stays for kubectl logs
    FORGET = "forget"  # nothing left to do for this attempt
    RECORD_DISRUPTIONS = "record disruptions"  # on the Job, so that a restarted operator counts them too
    STOP_AT_WALLTIME = "stop at walltime"  # set the Job's activeDeadlineSeconds to `deadline`: it stops now


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the reconciler knows of one attempt when it asks."""

    process: ProcessView
    now: dt.datetime
    pending_timeout: int = 300
    image_pull_grace: int = 60
    walltime: int | None = None
    invalid: str | None = None  # why the process cannot become a Job
    # Found running after a start: accepted under the rules of its time, it runs to its end if it has a Job,
    # whatever today's limits say (`invalid` then only stops it from getting one).
    adopted: bool = False
    job_refused: str | None = None  # why Kubernetes refused this process's Job (invalid for the API server)
    job: dict[str, Any] | None = None  # from the view, or from a direct read
    view_synced: bool = True
    job_expected: bool = False  # this attempt's Job was created or seen: it should exist
    job_absent_confirmed: bool = False  # a direct read found no Job
    job_deleted: bool = False  # the operator deleted the Job
    job_released: bool = False  # the operator labelled the Job closed and dropped its finalizer
    active_pods: tuple[dict[str, Any], ...] = ()
    final_pods: tuple[dict[str, Any], ...] | None = None  # read once the Job finished
    logs_drained: bool = False
    create_error: str | None = None  # why the last creation attempt failed (transient or executor-level)
    create_failing_seconds: float = 0.0
    create_timeout: float = 300.0
    # Pods the cluster stopped (eviction, preemption, node shutdown), and how many the Job's annotation records.
    disruptions: tuple[Disruption, ...] = ()
    disruptions_recorded: int = 0
    max_disruptions: int = 3
    nodes: int = 1
    # Kueue: the LocalQueue the Job waits in, its Workload (None: none seen), why Workloads cannot be read.
    queue_name: str = ""
    workload: dict[str, Any] | None = None
    workloads_problem: str | None = None
    # A GPU model the resource declares (spec.gpu.models) that the process asks for: its pods may wait
    # scale_up_timeout for the autoscaler; model_present: some node has it now.
    autoscaled_model: str = ""
    model_present: bool = True
    scale_up_timeout: int = 900
    walltime_stopped: bool = False  # the operator set the Job's deadline to stop it


@dataclasses.dataclass(frozen=True)
class Decision:
    act: Act
    why: str
    errors: tuple[str, ...] = ()
    output: tuple[Any, ...] = ()
    reason: FailureReason | None = None
    recheck_after: float | None = None  # for WAIT: look again after this many seconds (None: on an event)
    note: str | None = None  # for WAIT: why it waits, for the process log (written when it changes)
    queued: bool = False  # for WAIT: the Job waits in a queue (the resource's status counts these)
    deadline: int | None = None  # for STOP_AT_WALLTIME: the activeDeadlineSeconds that ends the Job now


def _wait(why: str, after: float | None = RESYNC_SECONDS) -> Decision:
    return Decision(Act.WAIT, why, recheck_after=after)


def _failed(why: str, errors: list[str] | tuple[str, ...], reason: FailureReason) -> Decision:
    return Decision(Act.CLOSE_FAILED, why, errors=tuple(errors), reason=reason)


NO_WORKLOAD_SECONDS = 30  # Kueue makes a Workload within a second or two: longer, and it may not be running


def queue_note(queue: str, workload: dict[str, Any] | None, problem: str | None, waited: float = 0.0) -> str:
    """Why a suspended Job waits, in Kueue's words (its Workload's conditions), for the process log. `waited`:
    seconds since the Job was created."""
    where = f"queued in LocalQueue {queue} (Kueue)"
    if workload is None:
        if problem:
            return f"{where}; why it waits is not known: its Workload cannot be read ({problem})"
        if waited < NO_WORKLOAD_SECONDS:
            return f"{where}, waiting for Kueue to take it up"
        return (f"{where}; Kueue has made no Workload for it in {NO_WORKLOAD_SECONDS}s: check that Kueue runs and "
                "manages batch/job")
    evicted = condition(workload, "Evicted")
    if evicted and evicted.get("status") == "True":
        return (f"Kueue stopped the Job's pods ({evicted.get('reason')}: {evicted.get('message') or 'no message'}); "
                f"{where} again, it starts over when admitted")
    reserved = condition(workload, "QuotaReserved")
    if reserved is None:
        return f"{where}, waiting for Kueue to take it up"
    if reserved.get("status") != "True":
        hint = ("; check spec.jobs.queueName and the cluster's LocalQueues and ClusterQueues"
                if reserved.get("reason") == "Inadmissible" else "")
        return f"{where}: {reserved.get('message') or reserved.get('reason') or 'waiting'}{hint}"
    admitted = condition(workload, "Admitted")
    if not admitted or admitted.get("status") != "True":
        return f"{where}: quota reserved, waiting for admission checks ({(admitted or {}).get('message') or ''})"
    return _admitted_note(queue, workload) or f"{where}: admitted"  # the same words once it runs: said once


def _age(job: dict[str, Any], now: dt.datetime) -> float:
    created = parse_time((job.get("metadata") or {}).get("creationTimestamp"))
    return (now - created).total_seconds() if created else 0.0


def _admitted_note(queue: str, workload: dict[str, Any] | None) -> str | None:
    admitted = condition(workload or {}, "Admitted")
    if not queue or not admitted or admitted.get("status") != "True":
        return None
    reserved = condition(workload or {}, "QuotaReserved") or {}
    return f"admitted by Kueue from LocalQueue {queue}: {reserved.get('message') or admitted.get('message')}"


def _stop_at_walltime(f: Facts, job: dict[str, Any], pods: list[dict[str, Any]]) -> Decision | float | None:
    """STOP_AT_WALLTIME when the containers have run for the walltime; else seconds until they will have (None
    while none runs, or once the Job has its deadline)."""
    since = running_since(pods) if f.walltime else None
    if since is None or f.walltime_stopped or "activeDeadlineSeconds" in (job.get("spec") or {}):
        return None
    left = (since - f.now).total_seconds() + f.walltime
    if left > 0:
        return left
    start = parse_time((job.get("status") or {}).get("startTime")) or since
    deadline = max(1, math.ceil((f.now - start).total_seconds()))
    return Decision(Act.STOP_AT_WALLTIME, f"the containers ran for the walltime of {f.walltime}s", deadline=deadline)


def decide(facts: Facts) -> Decision:
    """The one next action for the attempt."""
    f = facts
    job = f.job
    job_may_exist = job is not None or not (f.job_absent_confirmed or f.job_deleted)

    # Colonies no longer runs this attempt here: nothing of it may run on.
    if f.process in (ProcessView.REQUEUED, ProcessView.CANCELLED, ProcessView.GONE, ProcessView.FAILED):
        if job_may_exist and not f.job_deleted:
            return Decision(Act.DELETE_JOB, f"the process is {f.process.value} in Colonies")
        return Decision(Act.FORGET, f"the process is {f.process.value} and its Job is gone")
    if f.process == ProcessView.SUCCEEDED:
        if job_may_exist and not f.job_released:
            return Decision(Act.RELEASE_JOB, "the process succeeded: keep its Job for kubectl logs until its TTL")
        return Decision(Act.FORGET, "the process succeeded")
    if f.process == ProcessView.UNKNOWN:
        return _wait("Colonies cannot be asked about the process now", COLONIES_RETRY_SECONDS)
    if f.process == ProcessView.UNCONFIRMED:
        return Decision(Act.VERIFY_PROCESS, "Colonies did not list the process as running here")

    # RUNNING here.
    if f.invalid and f.adopted and job is None and not f.view_synced:
        return _wait("the view of Jobs is not synced: whether the adopted attempt has a Job decides",
                     COLONIES_RETRY_SECONDS)
    if f.invalid and not (f.adopted and job is not None):
        return _failed("the process cannot become a Job", [f"invalid process: {f.invalid}"], FailureReason.INVALID)
    if f.job_refused and job is None:
        return _failed("Kubernetes refused the Job", [f.job_refused], FailureReason.JOB_REFUSED)
    if job is None:
        if f.job_deleted:
            return Decision(Act.VERIFY_PROCESS, "its Job was deleted while Colonies still runs the process")
        if not f.view_synced:
            return _wait("the view of Jobs is not synced: nothing is decided on it", COLONIES_RETRY_SECONDS)
        if f.job_expected:
            if not f.job_absent_confirmed:
                return Decision(Act.VERIFY_JOB, "the view does not show the Job")
            return _failed("the Job vanished", ["the Job was removed before it finished, by someone other than "
                                                "the operator (its finalizer was removed too); the outcome is "
                                                "unknown: resubmit the process"], FailureReason.JOB_DELETED)
        if f.create_error:
            if f.create_failing_seconds >= f.create_timeout:
                return _failed("Kubernetes did not take the Job in time",
                               [f"Kubernetes did not accept the Job for {f.create_failing_seconds:.0f}s: "
                                f"{f.create_error}"], FailureReason.JOB_REFUSED)
            return Decision(Act.CREATE_JOB, f"retrying the Job's creation ({f.create_error})")
        return Decision(Act.CREATE_JOB, "the process runs here and has no Job yet")

    deleting = bool((job.get("metadata") or {}).get("deletionTimestamp"))
    finished = job_finished(job)
    if finished and f.final_pods is None:
        return Decision(Act.READ_FINAL_PODS, "the Job finished")
    if not finished and not f.view_synced:
        # "No pod yet", "pending too long": only a complete view of the pods can say so.
        return _wait("the view of pods is not synced: nothing is decided on it", COLONIES_RETRY_SECONDS)
    if deleting and not finished:
        return _failed("the Job is being deleted", ["the Job was deleted before it finished, by someone other "
                                                    "than the operator"], FailureReason.JOB_DELETED)
    if not finished and len(f.disruptions) > f.max_disruptions:
        if not f.logs_drained:
            return Decision(Act.DRAIN_LOGS, "disrupted too often: ship its last lines first")
        return _failed("disrupted too often", [too_many_disruptions(f.disruptions, f.max_disruptions)],
                       FailureReason.EVICTED)
    if not finished and len(f.disruptions) > f.disruptions_recorded:
        return Decision(Act.RECORD_DISRUPTIONS, "a pod was disrupted: the Job keeps the count")
    pods = list(f.final_pods if finished else f.active_pods)
    # A pod of a declared (autoscaled) GPU model waits for the autoscaler, not the pending timeout.
    pending_timeout = f.scale_up_timeout if f.autoscaled_model else f.pending_timeout
    outcome: Outcome = outcome_of(job, pods, f.now, pending_timeout=pending_timeout,
                                  image_pull_grace=f.image_pull_grace, walltime=f.walltime,
                                  had_pods=bool(f.disruptions))
    if outcome.state == "queued":
        age = _age(job, f.now)
        after = NO_WORKLOAD_SECONDS - age + 0.5 if f.workload is None and age < NO_WORKLOAD_SECONDS else RESYNC_SECONDS
        return Decision(Act.WAIT, "the Job waits in its queue", recheck_after=after, queued=True,
                        note=queue_note(f.queue_name, f.workload, f.workloads_problem, _age(job, f.now))
                        if f.queue_name else
                        "the Job is suspended: it waits until someone resumes it")
    if not outcome.finished:
        walltime = _stop_at_walltime(f, job, pods)
        if isinstance(walltime, Decision):
            return walltime
        after = recheck_after(job, pods, f.now, pending_timeout=pending_timeout,
                              image_pull_grace=f.image_pull_grace)
        after = min(t for t in (after, walltime and walltime + 0.5, RESYNC_SECONDS) if t)
        note = _admitted_note(f.queue_name, f.workload)
        if f.autoscaled_model and not f.model_present and outcome.state == "pending":
            note = (f"waiting for a node with GPU model {f.autoscaled_model}: none is in the cluster now; the "
                    f"autoscaler has {f.scale_up_timeout}s to add one (spec.jobs.scaleUpTimeoutSeconds)")
        return Decision(Act.WAIT, f"the Job is {outcome.state}", recheck_after=after, note=note)
    if not f.logs_drained:
        return Decision(Act.DRAIN_LOGS, f"the Job {outcome.state}: ship its last lines first")
    if outcome.state == "succeeded":
        return Decision(Act.CLOSE_SUCCESSFUL, "the Job completed", output=outcome.output)
    errors = list(outcome.errors)
    if f.autoscaled_model and outcome.reason == FailureReason.UNSCHEDULABLE:
        errors.insert(0, f"no node with GPU model {f.autoscaled_model} could take the process within "
                         f"{f.scale_up_timeout}s (spec.jobs.scaleUpTimeoutSeconds): the autoscaler added none, or "
                         "none with room; check the node pool's autoscaling and its maximum size")
    if f.disruptions:
        errors.append("before that, the cluster disrupted its pods: " + "; ".join(d.describe() for d in f.disruptions))
    return _failed("the Job failed", errors, outcome.reason or FailureReason.OTHER)
