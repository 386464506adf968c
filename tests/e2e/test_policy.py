"""The cluster admin's policy as a cluster admin and a colony member see it: refused resources run nothing,
limits fail processes with the limit and its setter, pods meet their Pod Security Standard, and the Colonies
server's address is checked."""

from __future__ import annotations

import json
import subprocess
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from colonies_operator.colonies import ProcessState
from colonies_operator.colonies.address import is_loopback
from tests.e2e.conftest import (
    CRD_PATH,
    GROUP,
    PLURAL,
    VERSION,
    Executors,
    OperatorProcess,
    log_text,
    tutorial_spec,
    wait_final,
)
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

# The admin's policy in these tests: the defaults, with a ceiling a resource can exceed.
POLICY = {"ceiling": {"cpu": "2", "walltimeSeconds": 600}, "defaults": {"walltimeSeconds": 300}}


@pytest.fixture
def crd(kube_cluster) -> None:
    """This checkout's CRD, applied before each test: the test cluster is shared, and a CRD without the policy
    fields, applied meanwhile, would prune them from the resources."""
    kubectl = ["kubectl", "--kubeconfig", kube_cluster.kubeconfig]
    subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(kubectl + ["wait", "--for=condition=Established", "--timeout=60s",
                              "crd/coloniesexecutors.colonyos.io"], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def policy_operator(kube_cluster, crd, namespace, tmp_path, request) -> Iterator[OperatorProcess]:
    """The operator watching the test's namespace, under POLICY given as a file (--policy-file)."""
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    running = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                              extra_args=["--policy-file", str(path)]).start()
    try:
        yield running
    finally:
        running.stop()
        if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
            print(f"--- operator log ---\n{running.log_text()[-20000:]}")


def jobs_and_pods_anywhere(kube_api: client.ApiClient, process_id: str) -> list[str]:
    """Every Job and pod of a process, in any namespace."""
    selector = f"colonyos.io/process-id={process_id[:63]}"
    jobs = client.BatchV1Api(kube_api).list_job_for_all_namespaces(label_selector=selector).items
    pods = client.CoreV1Api(kube_api).list_pod_for_all_namespaces(label_selector=selector).items
    return [f"Job {j.metadata.namespace}/{j.metadata.name}" for j in jobs] + \
        [f"pod {p.metadata.namespace}/{p.metadata.name}" for p in pods]


def not_ready_because(executors: Executors, name: str, reason: str) -> dict[str, Any]:
    """Waits until the resource is not Ready for `reason`; returns its Ready condition."""
    def shows() -> dict[str, Any] | None:
        ready = executors.condition(name, "Ready")
        return ready if ready and ready["status"] == "False" and ready["reason"] == reason else None
    try:
        return wait_for(shows, 60, 0.5, f"ColoniesExecutor {name} not Ready with reason {reason}")
    except TimeoutError as err:
        raise AssertionError(f"{err}; its conditions: {(executors.get(name).get('status') or {}).get('conditions')}")


def label_namespace(kube_api: client.ApiClient, namespace: str, level: str) -> None:
    client.CoreV1Api(kube_api).patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "latest"}}})


# -- resources asking for more than the policy allows ------------------------------------------------------------------

REFUSED = {
    # name: (spec, reason, the admin setting the message names)
    "to-kube-system": ({"jobs": {"namespace": "kube-system"}}, "JobNamespaceNotAllowed", "policy.jobNamespaces"),
    "foreign-account": ({"jobs": {"serviceAccountName": "kube-proxy"}}, "ServiceAccountNotAllowed",
                        "policy.serviceAccountNames"),
    "with-token": ({"jobs": {"automountServiceAccountToken": True}}, "ServiceAccountTokenNotAllowed",
                   "policy.allowServiceAccountToken"),
    "privileged": ({"jobs": {"securityContext": {"privileged": True}}}, "SecurityContextNotAllowed",
                   "policy.podSecurity.allowedProfiles"),
    "privileged-profile": ({"jobs": {"podSecurityProfile": "privileged"}}, "PodSecurityProfileNotAllowed",
                           "policy.podSecurity.allowedProfiles"),
    "above-ceiling": ({"processLimits": {"cpu": "4"}}, "LimitAboveCeiling", "policy.ceiling.cpu"),
}


def test_a_resource_asking_for_more_than_the_policy_allows_is_not_ready_and_nothing_runs_for_it(
        policy_operator, executors, colony, kube_api, namespace):
    for name, (spec, _, _) in REFUSED.items():
        executors.create(name, executor_type=f"type-{name}", **spec)
    executors.create_ready("allowed", executor_type="type-allowed")
    for name, (_, reason, setting) in REFUSED.items():
        ready = not_ready_because(executors, name, reason)
        assert setting in ready["message"], ready
        allowed = executors.condition(name, "Allowed")
        assert allowed and allowed["status"] == "False" and allowed["reason"] == reason
    refused = {name: colony.client.submit(tutorial_spec(colony, executor_type=f"type-{name}"),
                                          colony.user_prvkey).processid for name in REFUSED}
    # The control: the operator takes and runs work for an allowed resource meanwhile.
    control = colony.client.submit(tutorial_spec(colony, executor_type="type-allowed"), colony.user_prvkey)
    assert wait_final(colony, control.processid).state == ProcessState.SUCCESS
    for name, process_id in refused.items():
        process = colony.client.get_process(process_id, colony.user_prvkey)
        assert process.state == ProcessState.WAITING and not process.isassigned, f"{name} took a process"
        assert jobs_and_pods_anywhere(kube_api, process_id) == [], name
    # A refused resource deletes cleanly (its finalizer does not wait on a namespace it never used).
    executors.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "to-kube-system")
    def names() -> list[str]:
        listed = executors.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return [r["metadata"]["name"] for r in listed]
    wait_for(lambda: "to-kube-system" not in names(), 30, 0.5, "the refused ColoniesExecutor deleted")


def test_a_host_with_a_path_or_query_is_refused_by_the_api_server(kube_cluster, crd, namespace):
    for host in ("svc/path?", "colonies.example.org/api?x=", "http://colonies.example.org"):
        resource = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ColoniesExecutor", "metadata": {"name": "bad"},
                    "spec": {"server": {"host": host}, "colonyName": "c",
                             "credentials": {"colonyKeySecret": {"name": "s"}}}}
        result = subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "-n", namespace, "apply",
                                 "-f", "-"], input=json.dumps(resource), capture_output=True, text=True)
        assert result.returncode != 0, host
        assert "spec.server.host" in result.stderr and "should match" in result.stderr, result.stderr


def test_plain_http_off_the_machine_shows_secure_false_without_stopping_work(policy_operator, executors, colony):
    if is_loopback(colony.server.host):
        pytest.skip("the suite's Colonies server listens on loopback here (not root): no server off the machine")
    executors.create_ready("cluster")
    secure = wait_for(lambda: executors.condition("cluster", "Secure"), 30, 0.5, "the Secure condition")
    assert secure["status"] == "False" and secure["reason"] == "PlainHTTP"
    assert "spec.server.tls" in secure["message"]
    process = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    assert wait_final(colony, process.processid).state == ProcessState.SUCCESS


def test_plain_http_to_loopback_is_secure(policy_operator, executors):
    executors.create("local", server={"host": "127.0.0.1", "port": 9})
    secure = wait_for(lambda: executors.condition("local", "Secure"), 30, 0.5, "the Secure condition")
    assert (secure["status"], secure["reason"]) == ("True", "Loopback")


# -- per-process limits ----------------------------------------------------------------------------------------------

LIMITS = {"allowedImages": ["busybox:*"], "cpu": "200m", "memory": "128Mi", "gpus": 0, "nodes": 2,
          "processesPerNode": 2, "containersPerProcess": 3, "walltimeSeconds": 300}
OVER_LIMITS = [
    ({"kwargs": {"docker-image": "alpine:3.19"}},
     "image docker.io/library/alpine:3.19 is not allowed: spec.processLimits.allowedImages"),
    ({"conditions": {"cpu": "500m"}}, "conditions.cpu 500m is above the limit of 200m per container"),
    ({"conditions": {"mem": "256Mi"}}, "conditions.mem 256Mi is above the limit of 128Mi per container"),
    ({"conditions": {"gpu": {"count": 1}}}, "conditions.gpu.count 1 is above the limit of 0"),
    ({"conditions": {"nodes": 3}}, "conditions.nodes 3 is above the limit of 2"),
    ({"conditions": {"processespernode": 3}}, "conditions.processespernode 3 is above the limit of 2"),
    ({"conditions": {"nodes": 2, "processespernode": 2}}, "(containers) 4 is above the limit of 3"),
    ({"conditions": {"walltime": 400}}, "conditions.walltime 400 is above the limit of 300"),
]


def test_each_limit_fails_a_process_over_it_with_the_limit_and_who_sets_it(operator, executors, colony, kube_api,
                                                                           namespace):
    executors.create_ready("cluster", processLimits=LIMITS)
    submitted = [(colony.client.submit(tutorial_spec(colony, **change), colony.user_prvkey), message)
                 for change, message in OVER_LIMITS]
    for process, message in submitted:
        final = wait_final(colony, process.processid)
        assert final.state == ProcessState.FAILED, (message, final.state)
        assert message in final.errors[0], (message, final.errors)
        assert f"of ColoniesExecutor {namespace}/cluster, set by its owner" in final.errors[0], final.errors
        assert jobs_and_pods_anywhere(kube_api, process.processid) == []
    good = colony.client.submit(tutorial_spec(colony, conditions={"cpu": "100m", "mem": "64Mi"}), colony.user_prvkey)
    assert wait_final(colony, good.processid).state == ProcessState.SUCCESS


def test_the_admins_ceiling_fails_a_process_over_it_naming_the_admin_setting(policy_operator, executors, colony,
                                                                             kube_api):
    executors.create_ready("cluster")
    over = colony.client.submit(tutorial_spec(colony, conditions={"cpu": "2500m", "walltime": 120}),
                                colony.user_prvkey)
    final = wait_final(colony, over.processid)
    assert final.state == ProcessState.FAILED
    assert "conditions.cpu 2500m is above the limit of 2 per container (policy.ceiling.cpu of the operator, set by " \
           "the cluster admin)" in final.errors[0], final.errors
    assert jobs_and_pods_anywhere(kube_api, over.processid) == []
    good = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    assert wait_final(colony, good.processid).state == ProcessState.SUCCESS


def test_a_process_giving_no_resources_gets_the_defaults_and_a_deadline(operator, executors, colony, kube_api,
                                                                         namespace):
    executors.create_ready("cluster", processDefaults={"cpu": "150m", "memory": "96Mi", "walltimeSeconds": 300})
    spec = tutorial_spec(colony, conditions={"cpu": "", "mem": "", "walltime": 0}, maxexectime=240)
    process = colony.client.submit(spec, colony.user_prvkey)
    assert wait_final(colony, process.processid, timeout=240).state == ProcessState.SUCCESS
    job = client.BatchV1Api(kube_api).list_namespaced_job(
        namespace, label_selector=f"colonyos.io/process-id={process.processid[:63]}").items[0]
    resources = job.spec.template.spec.containers[0].resources
    expected = {"cpu": "150m", "memory": "96Mi", "ephemeral-storage": "2Gi"}
    assert (resources.requests, resources.limits) == (expected, expected)
    assert job.metadata.annotations["colonyos.io/walltime-seconds"] == "300" and not job.spec.active_deadline_seconds


# -- pod security profiles under enforcement -------------------------------------------------------------------

def refused_by_pod_security(kube_api: client.ApiClient, namespace: str, pod_spec: dict[str, Any]) -> str:
    """The API server's answer to a dry-run pod with `pod_spec` in `namespace` ('' when admitted)."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "probe-"}, "spec": pod_spec}
    try:
        client.CoreV1Api(kube_api).create_namespaced_pod(namespace, body, dry_run="All")
    except ApiException as err:
        return err.body or str(err)
    return ""


def test_the_baseline_profile_is_admitted_under_enforce_baseline(operator, executors, colony, kube_api, namespace):
    label_namespace(kube_api, namespace, "baseline")
    privileged = {"containers": [{"name": "c", "image": "busybox:1.35", "securityContext": {"privileged": True}}]}
    assert "violates PodSecurity" in refused_by_pod_security(kube_api, namespace, privileged), \
        "the namespace must enforce baseline for this test to mean anything"
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert "hello world" in log_text(colony, process.processid)
    job = client.BatchV1Api(kube_api).list_namespaced_job(namespace).items[0]
    pod = job.spec.template.spec
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.containers[0].security_context.allow_privilege_escalation is False


def test_the_restricted_profile_is_admitted_under_enforce_restricted_and_root_fails_saying_so(
        operator, executors, colony, kube_api, namespace):
    label_namespace(kube_api, namespace, "restricted")
    baseline_pod = {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "c", "image": "busybox:1.35",
                                    "securityContext": {"allowPrivilegeEscalation": False}}]}
    assert "violates PodSecurity" in refused_by_pod_security(kube_api, namespace, baseline_pod), \
        "the namespace must enforce restricted for this test to mean anything"
    executors.create_ready("non-root", executor_type="non-root",
                           jobs={"podSecurityProfile": "restricted", "podSecurityContext": {"runAsUser": 1000}})
    executors.create_ready("as-image", executor_type="as-image", jobs={"podSecurityProfile": "restricted"})
    ok = colony.client.submit(tutorial_spec(colony, cmd='echo "hello world as $(id -u)"', executor_type="non-root"),
                              colony.user_prvkey)
    final = wait_final(colony, ok.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert "hello world as 1000" in log_text(colony, ok.processid)
    # busybox runs as root unless told otherwise: under restricted its container may not start, and no retry
    # would help, so the process fails at once (well within the 60 s grace for other start errors).
    root = colony.client.submit(tutorial_spec(colony, executor_type="as-image"), colony.user_prvkey)
    final = wait_final(colony, root.processid, timeout=40)
    assert final.state == ProcessState.FAILED
    assert "image will run as root" in final.errors[0], final.errors
    assert "pod security profile restricted" in final.errors[0] and "runAsUser" in final.errors[0], final.errors
