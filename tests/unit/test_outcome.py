"""Job and pod status -> the Colonies outcome."""

import datetime as dt

from colonies_operator.outcome import outcome_of, output_from_termination_message

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.timezone.utc)


def ago(seconds):
    return (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(conditions=(), created=10):
    return {"metadata": {"creationTimestamp": ago(created)},
            "status": {"conditions": [{"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions]}}


def pod(phase="Running", containers=(), scheduled=None, created=10, index="0"):
    status = {"phase": phase, "containerStatuses": list(containers), "conditions": []}
    if scheduled:
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": scheduled, "lastTransitionTime": ago(created)})
    return {"metadata": {"name": f"p{index}", "creationTimestamp": ago(created),
                         "annotations": {"batch.kubernetes.io/job-completion-index": index}}, "status": status}


def terminated(name, code, reason="Error", message=None):
    return {"name": name, "image": "img", "state": {"terminated": {"exitCode": code, "reason": reason,
                                                                   "message": message}}}


def waiting(name, reason, message="m"):
    return {"name": name, "image": "nope:1", "state": {"waiting": {"reason": reason, "message": message}}}


def judge(j, pods, pending=300, grace=60, walltime=None):
    return outcome_of(j, pods, NOW, pending_timeout=pending, image_pull_grace=grace, walltime=walltime)


def test_complete_job_succeeds_with_the_termination_message_as_output():
    result = judge(job([("Complete", "", "")]), [pod("Succeeded", [terminated("main", 0, "Completed", '["a", 1]')])])
    assert result.state == "succeeded" and result.output == ("a", 1)


def test_exit_code_is_reported():
    result = judge(job([("Failed", "BackoffLimitExceeded", "")]), [pod("Failed", [terminated("main", 3)])])
    assert result.state == "failed"
    assert result.errors == ("container main in pod 0 exited with code 3 (Error)",)


def test_oom_kill_is_reported_as_such():
    result = judge(job([("Failed", "BackoffLimitExceeded", "")]), [pod("Failed", [terminated("main", 137, "OOMKilled")])])
    assert "OOMKilled" in result.errors[0] and "raise conditions.mem" in result.errors[0]


def test_a_failed_pod_fails_the_process_before_the_job_controller_notices():
    assert judge(job(), [pod("Failed", [terminated("main", 1)])]).state == "failed"


def test_deadline():
    result = judge(job([("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")]), [],
                   walltime=5)
    assert result.errors[0].startswith("walltime of 5s exceeded")


def test_a_deadline_whose_pods_are_already_gone_is_a_deadline_not_a_missing_pod():
    j = job([("FailureTarget", "DeadlineExceeded", "")], created=30)
    j["status"]["failed"] = 1
    assert judge(j, [], pending=5, walltime=3).errors[0].startswith("walltime of 3s exceeded")
    j = job(created=30)
    j["status"]["failed"] = 1
    assert judge(j, [], pending=5).state == "pending"
    assert "no pod was created" in judge(job(created=30), [], pending=5).errors[0]


def test_image_pull_failure_waits_for_the_grace_period():
    pods = [pod("Pending", [waiting("main", "ImagePullBackOff")], created=30)]
    assert judge(job(), pods, grace=60).state == "pending"
    result = judge(job(), pods, grace=20)
    assert result.state == "failed" and "cannot be pulled (ImagePullBackOff)" in result.errors[0]


def test_a_root_image_under_a_non_root_profile_fails_at_once_saying_what_to_change():
    message = 'container has runAsNonRoot and image will run as root (pod: "p", container: main)'
    result = judge(job(), [pod("Pending", [waiting("main", "CreateContainerConfigError", message)], created=1)])
    assert result.state == "failed"
    assert "image will run as root" in result.errors[0] and "spec.jobs.podSecurityContext.runAsUser" in result.errors[0]
    other = judge(job(), [pod("Pending", [waiting("main", "CreateContainerConfigError", "secret x not found")],
                              created=1)])
    assert other.state == "pending", "other configuration errors wait for the grace period"


def test_unschedulable_after_the_pending_timeout():
    pods = [pod("Pending", scheduled="0/1 nodes are available: 1 Insufficient nvidia.com/gpu.", created=100)]
    assert judge(job(), pods, pending=300).state == "pending"
    result = judge(job(), pods, pending=60)
    assert result.state == "failed" and "Insufficient nvidia.com/gpu" in result.errors[0]


def test_running_and_pending():
    assert judge(job(), [pod("Running", [{"name": "main", "state": {"running": {}}}])]).state == "running"
    assert judge(job(), []).state == "pending"


def test_output_parsing():
    assert output_from_termination_message('["x"]') == ("x",)
    assert output_from_termination_message("plain text\n") == ("plain text",)
    assert output_from_termination_message('{"k": 1}') == ({"k": 1},)
    assert output_from_termination_message("") == ()


def test_failures_carry_a_reason_for_the_metrics():
    assert judge(job([("Failed", "BackoffLimitExceeded", "")]), [pod("Failed", [terminated("main", 3)])]).reason == \
        "exit_code"
    assert judge(job(), [pod("Failed", [terminated("main", 137, "OOMKilled")])]).reason == "oom"
    assert judge(job([("Failed", "DeadlineExceeded", "")]), []).reason == "deadline"
    assert judge(job(), [pod("Pending", [waiting("main", "ErrImagePull")], created=90)]).reason == "image_pull"
    assert judge(job(), [pod("Pending", scheduled="no", created=400)]).reason == "unschedulable"
