"""The decision core as a table: each row is a rule (its id says it), the facts it applies to, and the one action
it takes, with the reason, error or output that action carries. On plain data."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from colonies_operator.colonies import Process
from colonies_operator.core.decide import Act, Facts, ProcessView, decide, view_of
from colonies_operator.core.names import FailureReason
from colonies_operator.core.outcome import Disruption, disruption_of

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(*conditions: tuple[str, str], created_ago: float = 10, deleting: bool = False, **status) -> dict:
    meta = {"name": "colonies-abc-0", "creationTimestamp": ts(created_ago)}
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    return {"metadata": meta, "status": {"conditions": [{"type": t, "status": "True", "reason": r}
                                                        for t, r in conditions], **status}}


def pod(phase: str = "Running", *, exit_code: int | None = None, waiting: str | None = None, created_ago: float = 5,
        unschedulable_ago: float | None = None, message: str = "", name: str = "p") -> dict:
    state: dict = {"running": {}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                "message": message}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": "pull failed"}}
    conditions = []
    if unschedulable_ago is not None:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "lastTransitionTime": ts(unschedulable_ago), "message": "0/1 nodes are available"})
    return {"metadata": {"name": name, "creationTimestamp": ts(created_ago),
                         "annotations": {"batch.kubernetes.io/job-completion-index": "0"}},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "main", "image": "busybox:1.35", "state": state}]}}


def facts(process: ProcessView = ProcessView.RUNNING_HERE, **kwargs) -> Facts:
    return Facts(process=process, now=NOW, **kwargs)


def started(seconds_ago: float, name: str = "p", **kwargs) -> dict:
    """A running pod whose container started `seconds_ago`."""
    running = pod(name=name, **kwargs)
    running["status"]["containerStatuses"][0]["state"] = {"running": {"startedAt": ts(seconds_ago)}}
    return running


def disrupted(name: str = "p-old", phase: str = "Running", reason: str = "EvictionByEvictionAPI") -> dict:
    """A pod the cluster is stopping (or stopped): DisruptionTarget, deleted."""
    stopped = started(30, name=name)
    stopped["metadata"]["deletionTimestamp"] = ts(1)
    stopped["status"]["phase"] = phase
    stopped["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": reason,
                                           "message": "Eviction API: evicting"})
    if phase == "Failed":
        stopped["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 143, "reason": "Error"}}
    return stopped


def disruptions(count: int) -> tuple[Disruption, ...]:
    return tuple(disruption_of(disrupted(f"p-{i}")) for i in range(count))


def suspended(created_ago: float = 400, **status) -> dict:
    """A Job created suspended (for Kueue) that still is."""
    queued = job(created_ago=created_ago, **status)
    queued["spec"] = {"suspend": True}
    queued["status"]["conditions"] = [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]
    return queued


def workload(*conditions: tuple[str, str, str, str]) -> dict:
    """A Kueue Workload with these (type, status, reason, message) conditions."""
    return {"metadata": {"name": "job-colonies-abc-0-1a2b3"}, "status": {"conditions": [
        {"type": t, "status": st, "reason": r, "message": m} for t, st, r, m in conditions]}}


QUOTA_PENDING = workload(("QuotaReserved", "False", "Pending", "couldn't assign flavors to pod set main: insufficient "
                          "unused quota for cpu in flavor default-flavor, 1 more needed"))
ADMITTED = workload(("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue demo"),
                    ("Admitted", "True", "Admitted", "The workload is admitted"))
PREEMPTED = workload(("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: 1) due to "
                      "prioritization in the ClusterQueue"),
                     ("QuotaReserved", "False", "Pending", "Preempted to accommodate a workload"))


RUNNING_JOB = job(active=1)


def evicted_pod() -> dict:
    evicted = pod("Failed")
    evicted["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    evicted["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 137, "reason": "Error"}}
    return evicted


LATE_JOB = job(active=0, created_ago=400)  # no pod for longer than the pending timeout
COMPLETE = job(("Complete", "Completed"))
UNSCHEDULABLE = (pod("Pending", unschedulable_ago=400, created_ago=400),)


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    facts: Facts
    act: Act
    reason: FailureReason | None = None
    error: str | None = None  # in the first error
    output: tuple[Any, ...] | None = None
    recheck: tuple[float, float] | None = None  # a WAIT's recheck_after, within this range
    note: str | None = None  # in the WAIT's note for the process log
    queued: bool | None = None
    deadline: int | None = None  # STOP_AT_WALLTIME's activeDeadlineSeconds
    errors: str | None = None  # in any error

    def __str__(self) -> str:
        return self.name


RULES = [
    # Nothing is deleted or failed on a transient error or an incomplete view.
    Rule("colonies cannot say how the process stands: wait a few seconds, keep the Job",
         facts(ProcessView.UNKNOWN, job=RUNNING_JOB, job_expected=True, active_pods=(pod(),)), Act.WAIT,
         recheck=(0, 5)),
    Rule("a Job missing from an unsynced view is not believed gone",
         facts(job=None, job_expected=True, view_synced=False), Act.WAIT),
    Rule("a Job missing from a synced view is read directly before anything is decided",
         facts(job=None, job_expected=True), Act.VERIFY_JOB),
    Rule("no pod after the pending timeout on a synced view: the Job failed (its logs first)",
         facts(job=LATE_JOB, job_expected=True), Act.DRAIN_LOGS),
    Rule("no pod after the pending timeout on an unsynced view decides nothing",
         facts(job=LATE_JOB, job_expected=True, view_synced=False), Act.WAIT),
    Rule("a Job confirmed gone fails the process, saying the outcome is unknown",
         facts(job=None, job_expected=True, job_absent_confirmed=True), Act.CLOSE_FAILED,
         reason=FailureReason.JOB_DELETED, error="outcome is unknown"),
    Rule("a Job deleted by someone while it runs fails the process",
         facts(job=job(active=1, deleting=True), job_expected=True, active_pods=(pod(),)), Act.CLOSE_FAILED,
         reason=FailureReason.JOB_DELETED),
    Rule("the operator deleted the Job of a process Colonies still runs: read the process",
         facts(job=None, job_deleted=True), Act.VERIFY_PROCESS),
    # Creating the Job.
    Rule("a running attempt with no Job on a synced view never had one, and gets one (after a restart too)",
         facts(job=None), Act.CREATE_JOB),
    Rule("a Job Kubernetes did not take yet is created again",
         facts(job=None, create_error="429 TooManyRequests", create_failing_seconds=20), Act.CREATE_JOB),
    Rule("a Job Kubernetes did not take for the creation timeout fails the process with the reason",
         facts(job=None, create_error="429 TooManyRequests", create_failing_seconds=301, create_timeout=300),
         Act.CLOSE_FAILED, reason=FailureReason.JOB_REFUSED, error="429 TooManyRequests"),
    Rule("a Job Kubernetes refuses fails the process with the reason",
         facts(job_refused="Kubernetes refused the Job (422 Invalid): spec.template bad"), Act.CLOSE_FAILED,
         reason=FailureReason.JOB_REFUSED, error="422 Invalid"),
    Rule("an invalid process fails without a Job",
         facts(invalid="kwargs 'cmd' is required"), Act.CLOSE_FAILED, reason=FailureReason.INVALID,
         error="invalid process: kwargs 'cmd' is required"),
    # What was accepted once runs to its end under the rules it started with.
    Rule("an adopted attempt whose Job runs is not failed by today's narrower limits",
         facts(invalid="conditions.cpu 2 is above the limit of 1", adopted=True, job=RUNNING_JOB,
               active_pods=(pod(),)), Act.WAIT),
    Rule("an adopted attempt with no Job meets today's limits",
         facts(invalid="conditions.cpu 2 is above the limit of 1", adopted=True, job=None), Act.CLOSE_FAILED,
         reason=FailureReason.INVALID),
    Rule("whether an adopted attempt has a Job is decided on a synced view only",
         facts(invalid="conditions.cpu 2 is above the limit of 1", adopted=True, job=None, view_synced=False),
         Act.WAIT),
    # What Colonies says of the process decides over the Job.
    Rule("a process not listed as running here is read from Colonies",
         facts(ProcessView.UNCONFIRMED, job=RUNNING_JOB, job_expected=True), Act.VERIFY_PROCESS),
    *[Rule(f"a {view.value} process loses its Job, also one still being created",
           facts(view, job=None, create_error="503 ServiceUnavailable", create_failing_seconds=40), Act.DELETE_JOB)
      for view in (ProcessView.CANCELLED, ProcessView.REQUEUED, ProcessView.GONE)],
    *[Rule(f"a {view.value} process whose Job is deleted is forgotten", facts(view, job=None, job_deleted=True),
           Act.FORGET) for view in (ProcessView.CANCELLED, ProcessView.REQUEUED, ProcessView.GONE, ProcessView.FAILED)],
    Rule("a re-queued attempt loses its Job (the new attempt is another key)",
         facts(ProcessView.REQUEUED, job=RUNNING_JOB, job_expected=True), Act.DELETE_JOB),
    Rule("a failed process keeps nothing running: an unschedulable pod",
         facts(ProcessView.FAILED, job=job(active=1), job_expected=True,
               active_pods=(pod("Pending", unschedulable_ago=10),)), Act.DELETE_JOB),
    Rule("a failed process keeps nothing running: an image that cannot be pulled",
         facts(ProcessView.FAILED, job=job(active=1), job_expected=True,
               active_pods=(pod("Pending", waiting="ImagePullBackOff"),)), Act.DELETE_JOB),
    Rule("the Job of a process that succeeded is kept for kubectl logs, released",
         facts(ProcessView.SUCCEEDED, job=COMPLETE, job_expected=True), Act.RELEASE_JOB),
    Rule("a process that succeeded, its Job released, is forgotten",
         facts(ProcessView.SUCCEEDED, job=COMPLETE, job_expected=True, job_released=True), Act.FORGET),
    *[Rule(f"a finished Job of a {view.value} process is deleted",
           facts(view, job=COMPLETE, job_expected=True), Act.DELETE_JOB)
      for view in (ProcessView.FAILED, ProcessView.REQUEUED, ProcessView.CANCELLED)],
    # A running Job.
    Rule("a running Job waits for events, with a slow resync",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(pod(),)), Act.WAIT, recheck=(60, 60)),
    Rule("a pod waiting for its image is looked at again when its grace period ends",
         facts(job=RUNNING_JOB, job_expected=True, image_pull_grace=60,
               active_pods=(pod("Pending", waiting="ErrImagePull", created_ago=50),)), Act.WAIT, recheck=(5, 11)),
    Rule("a pod unschedulable for the pending timeout fails the process",
         facts(job=job(active=1, created_ago=400), job_expected=True, active_pods=UNSCHEDULABLE, logs_drained=True),
         Act.CLOSE_FAILED, reason=FailureReason.UNSCHEDULABLE),
    # A finished Job: its pods are read once, its logs drained, then the process is closed with its outcome.
    Rule("a finished Job's pods are read once",
         facts(job=COMPLETE, job_expected=True), Act.READ_FINAL_PODS),
    Rule("a finished Job being deleted by its TTL still has its pods read",
         facts(job=job(("Complete", "Completed"), deleting=True), job_expected=True), Act.READ_FINAL_PODS),
    Rule("the logs are drained before the process is closed",
         facts(job=COMPLETE, job_expected=True, final_pods=(pod("Succeeded", exit_code=0),)), Act.DRAIN_LOGS),
    Rule("a complete Job closes the process successful with the output of its termination message",
         facts(job=job(("Complete", "Completed"), deleting=True), job_expected=True, logs_drained=True,
               final_pods=(pod("Succeeded", exit_code=0, message='["42"]'),)), Act.CLOSE_SUCCESSFUL,
         output=("42",)),
    Rule("a failed Job closes the process failed with the exit code",
         facts(job=job(("Failed", "BackoffLimitExceeded")), job_expected=True, final_pods=(pod("Failed", exit_code=3),),
               logs_drained=True), Act.CLOSE_FAILED, reason=FailureReason.EXIT_CODE, error="exited with code 3"),
    Rule("a pod evicted without DisruptionTarget (by an older kubelet) fails the process, with the node's reason",
         facts(job=job(("Failed", "BackoffLimitExceeded")), job_expected=True, final_pods=(evicted_pod(),),
               logs_drained=True), Act.CLOSE_FAILED, reason=FailureReason.EVICTED, error="low on resource: memory"),
    # Disruptions: Kubernetes replaces a pod the cluster stops (podFailurePolicy Ignore), up to maxDisruptions.
    Rule("a pod being disrupted is no failure: the process runs on",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(disrupted(),), disruptions=disruptions(1),
               disruptions_recorded=1), Act.WAIT),
    Rule("a disrupted pod that has failed is no failure either: its replacement comes",
         facts(job=job(active=0), job_expected=True, active_pods=(disrupted(phase="Failed"),),
               disruptions=disruptions(1), disruptions_recorded=1), Act.WAIT),
    Rule("a Job between its disrupted pod and the replacement is not taken for one that never made a pod",
         facts(job=job(active=0, created_ago=400), job_expected=True, disruptions=disruptions(1),
               disruptions_recorded=1), Act.WAIT),
    Rule("a new disruption is recorded on the Job first, for an operator that restarts",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(started(1),), disruptions=disruptions(2),
               disruptions_recorded=1), Act.RECORD_DISRUPTIONS),
    Rule("as many disruptions as maxDisruptions keep the process running",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(started(1),), disruptions=disruptions(3),
               disruptions_recorded=3, max_disruptions=3), Act.WAIT),
    Rule("one disruption more than maxDisruptions ships the log first",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(disrupted(),), disruptions=disruptions(4),
               disruptions_recorded=3, max_disruptions=3), Act.DRAIN_LOGS),
    Rule("one disruption more than maxDisruptions fails the process, listing them all",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(disrupted(),), disruptions=disruptions(4),
               max_disruptions=3, logs_drained=True), Act.CLOSE_FAILED, reason=FailureReason.EVICTED,
         error="disrupted 4 times, more than spec.jobs.maxDisruptions (3)",
         errors="pod 0 (p-3): EvictionByEvictionAPI"),
    Rule("maxDisruptions 0 fails the process at its first disruption",
         facts(job=RUNNING_JOB, job_expected=True, disruptions=disruptions(1), max_disruptions=0, logs_drained=True),
         Act.CLOSE_FAILED, reason=FailureReason.EVICTED, error="disrupted 1 times"),
    Rule("a container's own non-zero exit fails the process at once, with its code",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(pod("Failed", exit_code=3),), logs_drained=True),
         Act.CLOSE_FAILED, reason=FailureReason.EXIT_CODE, error="exited with code 3"),
    Rule("a failed pod that someone deleted waits for the Job's verdict (Kueue may be stopping it)",
         facts(job=RUNNING_JOB, job_expected=True, active_pods=(
             {**pod("Failed", exit_code=137), "metadata": {**pod()["metadata"], "deletionTimestamp": ts(1)}},)),
         Act.WAIT),
    Rule("a process that fails after disruptions lists them after its own failure",
         facts(job=job(("Failed", "BackoffLimitExceeded")), job_expected=True, final_pods=(pod("Failed", exit_code=3),),
               disruptions=disruptions(1), logs_drained=True), Act.CLOSE_FAILED, reason=FailureReason.EXIT_CODE,
         error="exited with code 3", errors="before that, the cluster disrupted its pods: pod 0 (p-0)"),
    # Queued Jobs (Kueue): suspended until admitted; no pending timeout meanwhile; the log says why.
    Rule("a suspended Job is queued however long it waits, and its log says why in Kueue's words",
         facts(job=suspended(created_ago=4000), job_expected=True, queue_name="q", workload=QUOTA_PENDING),
         Act.WAIT, queued=True, note="queued in LocalQueue q (Kueue): couldn't assign flavors to pod set main: "
                                     "insufficient unused quota for cpu"),
    Rule("a Job just queued waits for Kueue to take it up, and is looked at again when that takes too long",
         facts(job=suspended(created_ago=10), job_expected=True, queue_name="q"), Act.WAIT, queued=True,
         note="queued in LocalQueue q (Kueue), waiting for Kueue to take it up", recheck=(20, 21)),
    Rule("a queued Job that Kueue has made no Workload for in 30s says what to check",
         facts(job=suspended(), job_expected=True, queue_name="q"), Act.WAIT, queued=True,
         note="Kueue has made no Workload for it in 30s: check that Kueue runs"),
    Rule("a queued Job whose Workload cannot be read says why",
         facts(job=suspended(), job_expected=True, queue_name="q", workloads_problem="403 Forbidden"), Act.WAIT,
         queued=True, note="its Workload cannot be read (403 Forbidden)"),
    Rule("a queue that does not exist is said, with what to check",
         facts(job=suspended(), job_expected=True, queue_name="q", workload=workload(
             ("QuotaReserved", "False", "Inadmissible", "LocalQueue q doesn't exist"))), Act.WAIT, queued=True,
         note="LocalQueue q doesn't exist; check spec.jobs.queueName"),
    Rule("a Job Kueue preempted is queued again, not failed, whatever its stopped pods show",
         facts(job=suspended(active=0), job_expected=True, queue_name="q", workload=PREEMPTED, active_pods=(
             {**pod("Failed", exit_code=137), "metadata": {**pod()["metadata"], "deletionTimestamp": ts(1)}},)),
         Act.WAIT, queued=True, note="Kueue stopped the Job's pods (Preempted: Preempted to accommodate"),
    Rule("a Job admitted but not yet unsuspended says what it will say once unsuspended (one line in the log)",
         facts(job=suspended(), job_expected=True, queue_name="q", workload=ADMITTED), Act.WAIT, queued=True,
         note="admitted by Kueue from LocalQueue q: Quota reserved in ClusterQueue demo"),
    Rule("an admitted Job's pending timeout counts from its admission, not its creation",
         facts(job=job(created_ago=4000, startTime=ts(10)), job_expected=True, queue_name="q", workload=ADMITTED),
         Act.WAIT, queued=False, note="admitted by Kueue from LocalQueue q: Quota reserved in ClusterQueue demo"),
    Rule("an admitted Job that creates no pod within the pending timeout fails",
         facts(job=job(created_ago=4000, startTime=ts(400)), job_expected=True, queue_name="q", workload=ADMITTED),
         Act.DRAIN_LOGS),
    # Autoscaled GPU pools (spec.gpu.models): a pod waits for the autoscaler, up to scaleUpTimeoutSeconds.
    Rule("a pod of a declared GPU model no node has waits for the autoscaler past the pending timeout",
         facts(job=job(active=1, created_ago=400), job_expected=True, active_pods=UNSCHEDULABLE,
               autoscaled_model="a100", model_present=False, scale_up_timeout=900), Act.WAIT,
         note="waiting for a node with GPU model a100: none is in the cluster now; the autoscaler has 900s"),
    Rule("a pod of a declared GPU model fails after scaleUpTimeoutSeconds, saying the autoscaler added none",
         facts(job=job(active=1, created_ago=1000), job_expected=True, logs_drained=True, autoscaled_model="a100",
               active_pods=(pod("Pending", unschedulable_ago=1000, created_ago=1000),), scale_up_timeout=900),
         Act.CLOSE_FAILED, reason=FailureReason.UNSCHEDULABLE, error="no node with GPU model a100 could take the "
                                                                    "process within 900s"),
    # Walltime: the containers' running time, not the time queued or waiting for a node.
    Rule("a pod that waited long for a node keeps its whole walltime",
         facts(job=job(active=1, created_ago=100, startTime=ts(100)), job_expected=True, walltime=20,
               active_pods=(started(5),)), Act.WAIT, recheck=(15, 16)),
    Rule("containers that ran for the walltime are stopped: the Job's deadline is set to now",
         facts(job=job(active=1, created_ago=100, startTime=ts(100)), job_expected=True, walltime=20,
               active_pods=(started(21),)), Act.STOP_AT_WALLTIME, deadline=100),
    Rule("a walltime enforced already is not enforced again",
         facts(job=job(active=1, startTime=ts(100)), job_expected=True, walltime=20, active_pods=(started(21),),
               walltime_stopped=True), Act.WAIT),
    Rule("a replacement pod starts the walltime over",
         facts(job=job(active=1, startTime=ts(100)), job_expected=True, walltime=20, disruptions=disruptions(1),
               disruptions_recorded=1, active_pods=(disrupted(), started(5, name="p-new"))), Act.WAIT,
         recheck=(15, 16)),
    Rule("a Job that exceeded the deadline the operator set fails for its walltime",
         facts(job=job(("Failed", "DeadlineExceeded")), job_expected=True, final_pods=(), walltime=20,
               logs_drained=True), Act.CLOSE_FAILED, reason=FailureReason.DEADLINE, error="walltime of 20s exceeded"),
]


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_rule(rule: Rule):
    decision = decide(rule.facts)
    assert decision.act == rule.act, decision.why
    if rule.reason is not None:
        assert decision.reason == rule.reason
    if rule.error is not None:
        assert rule.error in decision.errors[0]
    if rule.output is not None:
        assert decision.output == rule.output
    if rule.recheck is not None:
        low, high = rule.recheck
        assert decision.recheck_after is not None and low <= decision.recheck_after <= high
    if rule.note is not None:
        assert decision.note and rule.note in decision.note, decision.note
    if rule.queued is not None:
        assert decision.queued == rule.queued
    if rule.deadline is not None:
        assert decision.deadline == rule.deadline
    if rule.errors is not None:
        assert any(rule.errors in error for error in decision.errors), decision.errors


def test_nothing_is_deleted_or_failed_while_colonies_cannot_say_whatever_the_job_shows():
    for candidate in (RUNNING_JOB, job(("Failed", "DeadlineExceeded")), job(active=1, deleting=True), None):
        for synced in (True, False):
            decision = decide(facts(ProcessView.UNKNOWN, job=candidate, view_synced=synced, job_expected=True))
            assert decision.act == Act.WAIT, (candidate, synced)


HERE = "e" * 64


@pytest.mark.parametrize("state, executor, attempt, view", [
    (1, HERE, 2, ProcessView.RUNNING_HERE),
    (1, "f" * 64, 2, ProcessView.REQUEUED),  # given to another executor
    (1, HERE, 3, ProcessView.REQUEUED),  # re-queued and handed back: another attempt
    (0, "", 2, ProcessView.REQUEUED),
    (2, HERE, 2, ProcessView.SUCCEEDED),
    (3, HERE, 2, ProcessView.FAILED),
    (4, HERE, 2, ProcessView.CANCELLED),
], ids=["running here", "running elsewhere", "another attempt", "waiting", "succeeded", "failed", "cancelled"])
def test_what_colonies_says_of_a_process_means_for_attempt_2_here(state, executor, attempt, view):
    process = Process.from_dict({"processid": "p", "state": state, "assignedexecutorid": executor, "retries": attempt})
    assert view_of(process, HERE, 2) == view


@pytest.mark.parametrize("starttime, view", [
    ("2026-12-01T12:00:00.123456789Z", ProcessView.RUNNING_HERE),  # the assign reply has nanoseconds
    ("2026-12-01T12:00:00.123457Z", ProcessView.RUNNING_HERE),  # the database microseconds, rounded
    ("2026-12-01T12:00:07.5Z", ProcessView.REQUEUED),  # handed back and assigned here again
    (None, ProcessView.RUNNING_HERE),  # not known: assumed the same
], ids=["same assignment", "same assignment read back", "a later assignment", "unknown assignment"])
def test_an_attempt_handed_back_and_assigned_here_again_is_another_assignment(starttime, view):
    assigned = dt.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    process = Process.from_dict({"processid": "p", "state": 1, "assignedexecutorid": HERE, "retries": 2,
                                 "starttime": starttime})
    assert view_of(process, HERE, 2, assigned) == view
