"""What a Job and its pods mean for the Colonies process, as a table: each row is a rule (its id says it), the Job
and pods it applies to, and the outcome: its state, the failure reason for the metrics, the error a user reads,
the output."""

import dataclasses
import datetime as dt
from typing import Any

import pytest

from colonies_operator.core.names import FailureReason
from colonies_operator.core.outcome import (
    Disruption,
    disruption_note,
    disruption_of,
    disruptions_from_annotation,
    disruptions_to_annotation,
    outcome_of,
    output_from_termination_message,
    recheck_after,
    running_since,
)

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.timezone.utc)


def ago(seconds):
    return (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(conditions=(), created=10):
    return {"metadata": {"creationTimestamp": ago(created)},
            "status": {"conditions": [{"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions]}}


def pod(phase="Running", containers=(), scheduled=None, created=10, index="0", init=()):
    status = {"phase": phase, "containerStatuses": list(containers), "conditions": []}
    if init:
        status["initContainerStatuses"] = list(init)
    if scheduled:
        status["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": scheduled, "lastTransitionTime": ago(created)})
    return {"metadata": {"name": f"p{index}", "creationTimestamp": ago(created),
                         "annotations": {"batch.kubernetes.io/job-completion-index": index}}, "status": status}


def with_init(pod_, *statuses):
    """A pod with a template's init containers (native sidecars too) in its status."""
    pod_["status"]["initContainerStatuses"] = list(statuses)
    return pod_


def not_started(pod_, seconds):
    """A scheduled pod whose sandbox has not been set up for `seconds` (a volume that cannot be mounted)."""
    pod_["status"]["conditions"] += [{"type": "PodScheduled", "status": "True"},
                                     {"type": "PodReadyToStartContainers", "status": "False",
                                      "lastTransitionTime": ago(seconds)}]
    return pod_


def terminated(name, code, reason="Error", message=None):
    return {"name": name, "image": "img", "state": {"terminated": {"exitCode": code, "reason": reason,
                                                                   "message": message}}}


def waiting(name, reason, message="m"):
    return {"name": name, "image": "nope:1", "state": {"waiting": {"reason": reason, "message": message}}}


def job_with(created: int = 10, conditions=(), **status: Any) -> dict:
    result = job(conditions, created)
    result["status"].update(status)
    return result


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    job: dict
    pods: list
    state: str
    reason: FailureReason | None = None
    error: str | None = None  # in the first error
    output: tuple | None = None
    pending: int = 300
    grace: int = 60
    walltime: int | None = None

    def __str__(self) -> str:
        return self.name


def disrupted(phase="Running", index="0"):
    """A pod the Eviction API is stopping (or stopped)."""
    stopped = pod(phase, [terminated("main", 143)] if phase == "Failed" else [], index=index)
    stopped["metadata"]["deletionTimestamp"] = ago(1)
    stopped["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"})
    return stopped


def suspended(created=1000, **status):
    queued = job_with(created, **status)
    queued["spec"] = {"suspend": True}
    return queued


def evicted_by_kubelet():
    evicted = pod("Failed", [terminated("main", 137)])
    evicted["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    return evicted


def deleted_failed_pod():
    stopped = pod("Failed", [terminated("main", 137)])
    stopped["metadata"]["deletionTimestamp"] = ago(1)
    return stopped


ROOT_REFUSED = 'container has runAsNonRoot and image will run as root (pod: "p", container: main)'
CASES = [
    Case("a complete Job succeeds, its output the termination message",
         job([("Complete", "", "")]), [pod("Succeeded", [terminated("main", 0, "Completed", '["a", 1]')])],
         "succeeded", output=("a", 1)),
    Case("an exit code is reported with the container and the pod",
         job([("Failed", "BackoffLimitExceeded", "")]), [pod("Failed", [terminated("main", 3)])], "failed",
         reason=FailureReason.EXIT_CODE, error="container main in pod 0 exited with code 3 (Error)"),
    Case("an OOM kill is reported as such, saying to raise conditions.mem",
         job([("Failed", "BackoffLimitExceeded", "")]), [pod("Failed", [terminated("main", 137, "OOMKilled")])],
         "failed", reason=FailureReason.OOM, error="raise conditions.mem"),
    Case("a failed pod fails the process before the Job controller notices",
         job(), [pod("Failed", [terminated("main", 1)])], "failed", reason=FailureReason.EXIT_CODE),
    Case("the walltime exceeded is the deadline, with its length",
         job([("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")]), [], "failed",
         reason=FailureReason.DEADLINE, error="walltime of 5s exceeded", walltime=5),
    Case("a deadline whose pods are gone already is a deadline, not a missing pod",
         job_with(30, [("FailureTarget", "DeadlineExceeded", "")], failed=1), [], "failed",
         reason=FailureReason.DEADLINE, error="walltime of 3s exceeded", pending=5, walltime=3),
    Case("a Job whose pods existed is not failed for having none now",
         job_with(30, failed=1), [], "pending", pending=5),
    Case("no pod created within the pending timeout fails the process",
         job(created=30), [], "failed", reason=FailureReason.UNSCHEDULABLE, error="no pod was created", pending=5),
    Case("an image that cannot be pulled waits for the grace period",
         job(), [pod("Pending", [waiting("main", "ImagePullBackOff")], created=30)], "pending", grace=60),
    Case("an image that cannot be pulled fails after the grace period",
         job(), [pod("Pending", [waiting("main", "ImagePullBackOff")], created=30)], "failed",
         reason=FailureReason.IMAGE_PULL, error="cannot be pulled (ImagePullBackOff)", grace=20),
    Case("a root image under a non-root profile fails at once, saying what to change",
         job(), [pod("Pending", [waiting("main", "CreateContainerConfigError", ROOT_REFUSED)], created=1)], "failed",
         error="spec.jobs.podSecurityContext.runAsUser"),
    Case("another configuration error waits for the grace period",
         job(), [pod("Pending", [waiting("main", "CreateContainerConfigError", "secret x not found")], created=1)],
         "pending"),
    Case("an unschedulable pod waits for the pending timeout",
         job(), [pod("Pending", scheduled="0/1 nodes are available: 1 Insufficient nvidia.com/gpu.", created=100)],
         "pending", pending=300),
    Case("an unschedulable pod fails after the pending timeout, with the scheduler's words",
         job(), [pod("Pending", scheduled="0/1 nodes are available: 1 Insufficient nvidia.com/gpu.", created=100)],
         "failed", reason=FailureReason.UNSCHEDULABLE, error="Insufficient nvidia.com/gpu", pending=60),
    Case("a running container is running", job(), [pod("Running", [{"name": "main", "state": {"running": {}}}])],
         "running"),
    Case("a Job with no pod yet is pending", job(), [], "pending"),
    Case("an init container that fails is reported as such, the process never having run",
         job([("Failed", "BackoffLimitExceeded", "")]),
         [with_init(pod("Failed", [waiting("main", "PodInitializing")]), terminated("prepare", 2))], "failed",
         reason=FailureReason.OTHER, error="init container prepare in pod 0 exited with code 2 (Error)"),
    Case("a native sidecar stopped when the process failed is not reported as a failure",
         job([("Failed", "BackoffLimitExceeded", "")]),
         [with_init(pod("Failed", [terminated("main", 3)]), terminated("uploader", 143))], "failed",
         reason=FailureReason.EXIT_CODE, error="container main in pod 0 exited with code 3"),
    Case("a native sidecar stopped when the process succeeded leaves the process a success",
         job([("Complete", "", "")]),
         [with_init(pod("Succeeded", [terminated("main", 0, "Completed", '["done"]')]),
                    terminated("uploader", 143))],
         "succeeded", output=("done",)),
    Case("an init container whose image cannot be pulled fails after the grace period",
         job(), [with_init(pod("Pending", [waiting("main", "PodInitializing")], created=30),
                           waiting("prepare", "ImagePullBackOff"))], "failed",
         reason=FailureReason.IMAGE_PULL, error="for container prepare in pod 0 cannot be pulled", grace=20),
    Case("a pod whose volumes cannot be mounted waits for the pending timeout",
         job(), [not_started(pod("Pending", [waiting("main", "ContainerCreating")], created=100), 100)], "pending",
         pending=300),
    Case("a pod whose volumes cannot be mounted fails after the pending timeout, saying where to look",
         job(), [not_started(pod("Pending", [waiting("main", "ContainerCreating")], created=100), 100)], "failed",
         error="pod 0 did not start within 60s: its volumes could not be mounted", pending=60),
    Case("an init container whose Secret is missing fails after the grace period, with the kubelet's words",
         job(), [with_init(pod("Pending", [waiting("main", "PodInitializing")], created=90),
                           waiting("prepare", "CreateContainerConfigError", 'secret "api-token" not found'))],
         "failed", error='container prepare in pod 0 cannot start (CreateContainerConfigError): secret "api-token"'),
    # ColonyFS steps (core/fs.py): their own reason, and a failed upload fails a command that succeeded.
    Case("a step before the command that failed says why, in its own words",
         job([("Failed", "BackoffLimitExceeded", "")]),
         [pod("Failed", [waiting("main", "PodInitializing")],
              init=[terminated("colonyfs-in", 1, message="downloading snapshot s to /cfs/s failed: Snapshot not "
                                                        "found")])],
         "failed", reason=FailureReason.COLONYFS,
         error="ColonyFS before the command (colonyfs-in in pod 0): downloading snapshot s to /cfs/s failed: "
               "Snapshot not found"),
    Case("a failed step fails the process before the Job controller notices",
         job(), [pod("Failed", init=[terminated("colonyfs-in", 1, message="m")])], "failed",
         reason=FailureReason.COLONYFS, error="ColonyFS before the command"),
    Case("a failed upload fails a command that succeeded",
         job([("Complete", "", "")]),
         [pod("Succeeded", [terminated("main", 0, "Completed")],
              init=[terminated("colonyfs-in", 0, "Completed"),
                    terminated("colonyfs-out", 1, message="syncing /cfs/out up to label /r failed: no route")])],
         "failed", reason=FailureReason.COLONYFS,
         error="ColonyFS after the command (colonyfs-out in pod 0): syncing /cfs/out up to label /r failed"),
    Case("an upload stopped by the grace period says to raise the timeout",
         job([("Complete", "", "")]),
         [pod("Succeeded", [terminated("main", 0, "Completed")], init=[terminated("colonyfs-out", 137)])],
         "failed", reason=FailureReason.COLONYFS, error="spec.fs.uploadTimeoutSeconds"),
    Case("a step out of memory says which limit to raise",
         job([("Complete", "", "")]),
         [pod("Succeeded", [terminated("main", 0, "Completed")], init=[terminated("colonyfs-out", 137, "OOMKilled")])],
         "failed", reason=FailureReason.COLONYFS, error="spec.fs.resources.limits.memory"),
    Case("a command that failed is the reason, its upload's failure follows",
         job([("Failed", "BackoffLimitExceeded", "")]),
         [pod("Failed", [terminated("main", 2)], init=[terminated("colonyfs-out", 1, message="up failed")])],
         "failed", reason=FailureReason.EXIT_CODE, error="container main in pod 0 exited with code 2"),
    Case("steps that succeeded leave the output to the command",
         job([("Complete", "", "")]),
         [pod("Succeeded", [terminated("main", 0, "Completed", '["r"]')],
              init=[terminated("colonyfs-in", 0, "Completed"), terminated("colonyfs-out", 0, "Completed")])],
         "succeeded", output=("r",)),
    Case("the image of a step that cannot be pulled names spec.fs.image",
         job(), [pod("Pending", [waiting("main", "PodInitializing")], created=30,
                     init=[waiting("colonyfs-in", "ErrImageNeverPull")])], "failed",
         reason=FailureReason.IMAGE_PULL, error="check spec.fs.image and the image pull secrets"),
    Case("a step whose Secret key is missing fails after the grace period with the kubelet's words",
         job(), [pod("Pending", [waiting("main", "PodInitializing")], created=30,
                     init=[waiting("colonyfs-in", "CreateContainerConfigError",
                                   'couldn\'t find key AWS_S3_BUCKET in Secret ns/s3')])], "failed",
         error="couldn't find key AWS_S3_BUCKET in Secret ns/s3", grace=20),
    Case("the output is the replacement's, not the disrupted pod's",
         job([("Complete", "", "")]), [disrupted("Failed"), pod("Succeeded", [terminated("main", 0, "Completed", '["x"]')])],
         "succeeded", output=("x",)),
    Case("a pod the cluster disrupted is no failure: the Job waits for its replacement",
         job(), [disrupted("Failed")], "pending"),
    Case("a pod being disrupted is left out, its replacement counts",
         job(), [disrupted(), pod("Running", [{"name": "main", "state": {"running": {}}}], index="0")], "running"),
    Case("a failed pod being deleted is not judged before the Job controller is",
         job(), [deleted_failed_pod()], "pending"),
    Case("a pod evicted without DisruptionTarget fails the process, promising no retry",
         job(), [evicted_by_kubelet()], "failed", reason=FailureReason.EVICTED,
         error="a failed process is not run again: submit it again"),
    Case("a suspended Job is queued, however old and whatever its stopped pods show",
         suspended(), [deleted_failed_pod()], "queued", pending=5),
    Case("an admitted Job's pending timeout counts from its start, not its creation",
         job_with(1000, startTime=ago(10)), [], "pending", pending=300),
    Case("a Job just admitted, its status not yet updated by the Job controller, is not late",
         {"metadata": {"creationTimestamp": ago(1000)}, "spec": {"suspend": False}, "status": {"conditions": [
             {"type": "Suspended", "status": "True", "lastTransitionTime": ago(1000)}]}}, [], "pending", pending=300),
    Case("a resumed Job's pending timeout counts from its resumption",
         {"metadata": {"creationTimestamp": ago(1000)}, "status": {"startTime": ago(1000), "conditions": [
             {"type": "Suspended", "status": "False", "lastTransitionTime": ago(10)}]}}, [], "pending", pending=300),
    Case("the walltime exceeded is running time, queueing and pending not counted",
         job([("Failed", "DeadlineExceeded", "")]), [], "failed", reason=FailureReason.DEADLINE,
         error="time queued or waiting for a node does not count", walltime=20),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_outcome(case: Case):
    result = outcome_of(case.job, case.pods, NOW, pending_timeout=case.pending, image_pull_grace=case.grace,
                        walltime=case.walltime)
    assert result.state == case.state, result
    if case.reason is not None:
        assert result.reason == case.reason
    if case.error is not None:
        assert case.error in result.errors[0]
    if case.output is not None:
        assert result.output == case.output


@pytest.mark.parametrize("message, output", [('["x"]', ("x",)), ("plain text\n", ("plain text",)),
                                             ('{"k": 1}', ({"k": 1},)), ("", ()), (None, ())],
                         ids=["a JSON list is the output", "text is one string", "another JSON value is one item",
                              "empty is none", "absent is none"])
def test_a_termination_message_as_output(message, output):
    assert output_from_termination_message(message) == output


def test_a_pod_whose_volumes_cannot_be_mounted_is_looked_at_again_when_its_pending_timeout_ends():
    """Its status does not change while the kubelet retries the mount: only the timer can end the wait."""
    waiting_pod = not_started(pod("Pending", [waiting("main", "ContainerCreating")], created=100), 90)
    assert recheck_after(job(), [waiting_pod], NOW, pending_timeout=100, image_pull_grace=60) == 10.5


def test_a_disruption_is_described_with_the_pod_its_index_and_the_clusters_words():
    found = disruption_of(disrupted(index="1"))
    assert found == Disruption(pod="p1", index="1", reason="EvictionByEvictionAPI", message="Eviction API: evicting")
    assert disruption_of(pod("Running")) is None
    note = disruption_note(found, 1, 3, nodes=2)
    assert note.startswith("pod 1 (p1) was disrupted: EvictionByEvictionAPI: Eviction API: evicting; Kubernetes "
                           "starts a new pod in its place (the process's other pods run on")
    assert "disruption 1 of the 3" in note
    assert "more than spec.jobs.maxDisruptions (3): the process fails" in disruption_note(found, 4, 3, nodes=1)


def test_disruptions_survive_the_round_trip_through_the_jobs_annotation():
    found = [disruption_of(disrupted(index=str(i))) for i in range(3)]
    assert disruptions_from_annotation(disruptions_to_annotation(found)) == found
    assert disruptions_from_annotation(None) == [] and disruptions_from_annotation("not json") == []


def test_running_time_counts_from_the_first_container_start_of_the_pods_not_disrupted():
    old = disrupted()
    old["status"]["containerStatuses"] = [{"name": "main", "state": {"running": {"startedAt": ago(60)}}}]
    new = pod("Running", [{"name": "main", "state": {"running": {"startedAt": ago(5)}}}])
    waiting_pod = pod("Pending", [waiting("main", "ContainerCreating")])
    assert running_since([old, new, waiting_pod]) == NOW - dt.timedelta(seconds=5)
    assert running_since([old, waiting_pod]) is None
