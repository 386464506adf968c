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
        unschedulable_ago: float | None = None, message: str = "") -> dict:
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
    return {"metadata": {"name": "p", "creationTimestamp": ts(created_ago),
                         "annotations": {"batch.kubernetes.io/job-completion-index": "0"}},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "main", "image": "busybox:1.35", "state": state}]}}


def facts(process: ProcessView = ProcessView.RUNNING_HERE, **kwargs) -> Facts:
    return Facts(process=process, now=NOW, **kwargs)


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
    Rule("an evicted pod fails the process as evicted, with the node's reason",
         facts(job=job(("Failed", "BackoffLimitExceeded")), job_expected=True, final_pods=(evicted_pod(),),
               logs_drained=True), Act.CLOSE_FAILED, reason=FailureReason.EVICTED, error="low on resource: memory"),
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
