"""The decision core, one row per rule (and per defect the executor-core issue lists), on plain data."""

from __future__ import annotations

import datetime as dt

import pytest

from colonies_operator.decide import Act, Facts, ProcessView, decide
from colonies_operator.names import FailureReason

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


def test_defect_1_a_colonies_error_while_checking_never_deletes_the_job():
    # A 500/502/403 when asking "is it still mine?" is UNKNOWN: wait, keep the Job, fail nothing.
    decision = decide(facts(ProcessView.UNKNOWN, job=RUNNING_JOB, job_expected=True, active_pods=(pod(),)))
    assert decision.act == Act.WAIT
    assert decision.recheck_after and decision.recheck_after <= 5


def test_defect_2_a_job_missing_from_an_unsynced_view_is_not_declared_deleted():
    decision = decide(facts(job=None, job_expected=True, view_synced=False))
    assert decision.act == Act.WAIT


def test_defect_2_a_job_missing_from_a_synced_view_is_read_directly_before_anything_is_decided():
    assert decide(facts(job=None, job_expected=True)).act == Act.VERIFY_JOB


def test_an_unsynced_view_of_pods_is_no_ground_for_no_pod_or_pending_too_long():
    late = job(active=0, created_ago=400)
    assert decide(facts(job=late, job_expected=True, view_synced=True)).act == Act.DRAIN_LOGS  # failed: no pod
    assert decide(facts(job=late, job_expected=True, view_synced=False)).act == Act.WAIT


def test_a_job_confirmed_gone_fails_the_process_saying_the_outcome_is_unknown():
    decision = decide(facts(job=None, job_expected=True, job_absent_confirmed=True))
    assert decision.act == Act.CLOSE_FAILED and decision.reason == FailureReason.JOB_DELETED
    assert "outcome is unknown" in decision.errors[0]


@pytest.mark.parametrize("view", [ProcessView.CANCELLED, ProcessView.REQUEUED, ProcessView.GONE])
def test_defect_3_job_creation_stops_when_the_process_is_cancelled_or_lost(view):
    decision = decide(facts(view, job=None, create_error="503 ServiceUnavailable", create_failing_seconds=40))
    assert decision.act == Act.DELETE_JOB  # idempotent: no Job is fine; nothing is created
    assert decide(facts(view, job=None, job_deleted=True)).act == Act.FORGET


def test_defect_3_job_creation_is_retried_then_given_up_with_the_reason():
    retry = decide(facts(job=None, create_error="429 TooManyRequests", create_failing_seconds=20))
    assert retry.act == Act.CREATE_JOB
    give_up = decide(facts(job=None, create_error="429 TooManyRequests", create_failing_seconds=301,
                           create_timeout=300))
    assert give_up.act == Act.CLOSE_FAILED and "429 TooManyRequests" in give_up.errors[0]
    assert give_up.reason == FailureReason.JOB_REFUSED


def test_defect_4_a_requeued_attempt_loses_its_job_and_the_new_attempt_gets_one():
    # The attempt key is (process id, attempt): the old one is REQUEUED, the new one RUNNING here.
    assert decide(facts(ProcessView.REQUEUED, job=RUNNING_JOB, job_expected=True)).act == Act.DELETE_JOB
    assert decide(facts(ProcessView.RUNNING_HERE, job=None)).act == Act.CREATE_JOB


@pytest.mark.parametrize("pods", [(pod("Pending", unschedulable_ago=10),), (pod("Pending", waiting="ImagePullBackOff"),)])
def test_defect_5_a_failed_process_keeps_nothing_running(pods):
    decision = decide(facts(ProcessView.FAILED, job=job(active=1), job_expected=True, active_pods=pods))
    assert decision.act == Act.DELETE_JOB
    assert decide(facts(ProcessView.FAILED, job=None, job_deleted=True)).act == Act.FORGET


def test_defect_5_an_unschedulable_job_fails_its_process_then_is_deleted():
    pending = (pod("Pending", unschedulable_ago=400, created_ago=400),)
    decision = decide(facts(job=job(active=1, created_ago=400), job_expected=True, active_pods=pending,
                            logs_drained=True))
    assert decision.act == Act.CLOSE_FAILED and decision.reason == FailureReason.UNSCHEDULABLE
    after = decide(facts(ProcessView.FAILED, job=job(active=1), job_expected=True, active_pods=pending))
    assert after.act == Act.DELETE_JOB


def test_defect_7_a_finished_job_being_deleted_by_its_ttl_closes_with_its_real_outcome():
    finished = job(("Complete", "Completed"), deleting=True)
    assert decide(facts(job=finished, job_expected=True)).act == Act.READ_FINAL_PODS
    done = decide(facts(job=finished, job_expected=True, final_pods=(pod("Succeeded", exit_code=0,
                                                                         message='["42"]'),), logs_drained=True))
    assert done.act == Act.CLOSE_SUCCESSFUL and done.output == ("42",)


def test_defect_7_a_running_process_with_no_job_after_a_restart_was_never_started_and_starts():
    # The finalizer holds every unclosed Job, so no Job on a synced view means none was created.
    assert decide(facts(job=None, job_expected=False)).act == Act.CREATE_JOB


@pytest.mark.parametrize("view,act", [(ProcessView.SUCCEEDED, Act.RELEASE_JOB), (ProcessView.FAILED, Act.DELETE_JOB),
                                      (ProcessView.REQUEUED, Act.DELETE_JOB), (ProcessView.CANCELLED, Act.DELETE_JOB)])
def test_defect_7_jobs_of_old_attempts_and_of_processes_closed_elsewhere_are_cleaned(view, act):
    assert decide(facts(view, job=job(("Complete", "Completed")), job_expected=True)).act == act


def test_a_job_deleted_by_someone_while_it_runs_fails_the_process():
    decision = decide(facts(job=job(active=1, deleting=True), job_expected=True, active_pods=(pod(),)))
    assert decision.act == Act.CLOSE_FAILED and decision.reason == FailureReason.JOB_DELETED


def test_logs_are_drained_before_the_process_is_closed():
    finished = job(("Complete", "Completed"))
    final = (pod("Succeeded", exit_code=0),)
    assert decide(facts(job=finished, job_expected=True, final_pods=final)).act == Act.DRAIN_LOGS
    assert decide(facts(job=finished, job_expected=True, final_pods=final, logs_drained=True)).act == \
        Act.CLOSE_SUCCESSFUL


def test_a_failed_job_closes_failed_with_the_exit_code():
    decision = decide(facts(job=job(("Failed", "BackoffLimitExceeded")), job_expected=True,
                            final_pods=(pod("Failed", exit_code=3),), logs_drained=True))
    assert decision.act == Act.CLOSE_FAILED and decision.reason == FailureReason.EXIT_CODE
    assert "exited with code 3" in decision.errors[0]


def test_an_evicted_pod_is_reported_as_evicted():
    evicted = pod("Failed")
    evicted["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    evicted["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 137, "reason": "Error"}}
    decision = decide(facts(job=job(("Failed", "BackoffLimitExceeded")), job_expected=True, final_pods=(evicted,),
                            logs_drained=True))
    assert decision.reason == FailureReason.EVICTED
    assert "evicted" in decision.errors[0] and "low on resource: memory" in decision.errors[0]


def test_an_invalid_process_fails_without_a_job():
    decision = decide(facts(invalid="kwargs 'cmd' is required"))
    assert decision.act == Act.CLOSE_FAILED and decision.reason == FailureReason.INVALID


def test_a_job_kubernetes_refuses_fails_the_process_with_the_reason():
    decision = decide(facts(job_refused="Kubernetes refused the Job (422 Invalid): spec.template... bad"))
    assert decision.act == Act.CLOSE_FAILED and decision.reason == FailureReason.JOB_REFUSED


def test_an_unconfirmed_process_is_read_from_colonies():
    assert decide(facts(ProcessView.UNCONFIRMED, job=RUNNING_JOB, job_expected=True)).act == Act.VERIFY_PROCESS


def test_a_running_job_waits_for_events_with_a_slow_resync():
    decision = decide(facts(job=RUNNING_JOB, job_expected=True, active_pods=(pod(),)))
    assert decision.act == Act.WAIT and decision.recheck_after == 60


def test_a_pending_pod_is_looked_at_again_when_its_grace_period_ends():
    decision = decide(facts(job=RUNNING_JOB, job_expected=True, active_pods=(pod("Pending", waiting="ErrImagePull",
                                                                                created_ago=50),),
                            image_pull_grace=60))
    assert decision.act == Act.WAIT and 5 <= decision.recheck_after <= 11


def test_rules_never_delete_or_fail_on_unknown_whatever_the_job_shows():
    for candidate in (RUNNING_JOB, job(("Failed", "DeadlineExceeded")), job(active=1, deleting=True), None):
        for synced in (True, False):
            decision = decide(facts(ProcessView.UNKNOWN, job=candidate, view_synced=synced, job_expected=True))
            assert decision.act == Act.WAIT, (candidate, synced)
