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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from ..colonies.models import Process, ProcessState
from .names import FailureReason
from .outcome import Outcome, job_finished, outcome_of, recheck_after

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


@dataclasses.dataclass(frozen=True)
class Decision:
    act: Act
    why: str
    errors: tuple[str, ...] = ()
    output: tuple[Any, ...] = ()
    reason: FailureReason | None = None
    recheck_after: float | None = None  # for WAIT: look again after this many seconds (None: on an event)


def _wait(why: str, after: float | None = RESYNC_SECONDS) -> Decision:
    return Decision(Act.WAIT, why, recheck_after=after)


def _failed(why: str, errors: list[str] | tuple[str, ...], reason: FailureReason) -> Decision:
    return Decision(Act.CLOSE_FAILED, why, errors=tuple(errors), reason=reason)


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
    pods = list(f.final_pods if finished else f.active_pods)
    outcome: Outcome = outcome_of(job, pods, f.now, pending_timeout=f.pending_timeout,
                                  image_pull_grace=f.image_pull_grace, walltime=f.walltime)
    if not outcome.finished:
        after = recheck_after(job, pods, f.now, pending_timeout=f.pending_timeout,
                              image_pull_grace=f.image_pull_grace)
        return _wait(f"the Job is {outcome.state}", min(after, RESYNC_SECONDS) if after else RESYNC_SECONDS)
    if not f.logs_drained:
        return Decision(Act.DRAIN_LOGS, f"the Job {outcome.state}: ship its last lines first")
    if outcome.state == "succeeded":
        return Decision(Act.CLOSE_SUCCESSFUL, "the Job completed", output=outcome.output)
    return _failed("the Job failed", outcome.errors, outcome.reason or FailureReason.OTHER)
