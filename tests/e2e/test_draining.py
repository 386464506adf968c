"""A resource that may take no new work still finishes what it runs, alive in Colonies until then; a refusal of
every Job by the cluster's admission is the executor's problem, not each process's."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from colonies_operator.colonies import ExecutorState, ProcessState
from tests.e2e.conftest import GROUP, PLURAL, VERSION, Executors, OperatorProcess, job_names, tutorial_spec, wait_final
from devtools.colonies_server import private_colonies_server
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def pod_running(kube_api, namespace: str, process_id: str) -> bool:
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items
    return any(p.status.phase == "Running" for p in pods)


def test_a_resource_edited_into_a_refused_spec_finishes_its_process_alive_in_colonies(kube_cluster, crd, namespace,
                                                                                      tmp_path):
    # Colonies removes executors silent for 12 s here (10 minutes by default), and re-queues what they run.
    with private_colonies_server(stale_executor_seconds=12, cleanup_interval_seconds=2) as server, \
            kube_cluster.api_client() as api:
        colony = server.new_colony()
        executors = Executors(api, namespace, colony)
        operator = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
        try:
            executors.create_ready("cluster", assignTimeoutSeconds=2)
            running = colony.client.submit(tutorial_spec(colony, cmd="sleep 36; echo done"), colony.user_prvkey)
            wait_for(lambda: pod_running(api, namespace, running.processid), 60, 0.5, "the process's pod running")
            # A service account the default policy allows nobody.
            executors.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cluster", {
                "spec": {"jobs": {"serviceAccountName": "nobody-allowed"}}})
            refused = wait_for(lambda: (c := executors.condition("cluster", "Allowed")) and c["status"] == "False"
                               and c, 30, 0.3, "Allowed=False")
            ready = executors.condition("cluster", "Ready")
            later = colony.client.submit(tutorial_spec(colony, cmd="echo later"), colony.user_prvkey)
            while colony.client.get_process(running.processid, colony.user_prvkey).state == ProcessState.RUNNING:
                executor = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey)
                assert executor.state == ExecutorState.APPROVED, "the executor was removed as stale"
                assert colony.client.get_process(running.processid, colony.user_prvkey).retries == 0, "re-queued"
                time.sleep(1)
            final = wait_final(colony, running.processid)
            assert final.state == ProcessState.SUCCESS and final.retries == 0, final.errors
            # It said why it took no work, and what it still did.
            assert refused["reason"] == "ServiceAccountNotAllowed"
            assert "taking no new work, finishing the 1 process it runs" in refused["message"], refused
            assert ready["status"] == "False" and ready["reason"] == "ServiceAccountNotAllowed"
            assert len(job_names(api, namespace, running.processid)) == 1
            assert colony.client.get_process(later.processid, colony.user_prvkey).state == ProcessState.WAITING, \
                "a refused resource took new work"
        finally:
            operator.stop()


def test_a_resource_a_new_policy_refuses_after_a_restart_finishes_its_process_alive_in_colonies(
        kube_cluster, crd, namespace, tmp_path):
    # A Helm policy change rolls the operator, and the new policy refuses a resource with work in flight.
    with private_colonies_server(stale_executor_seconds=12, cleanup_interval_seconds=2) as server, \
            kube_cluster.api_client() as api:
        colony = server.new_colony()
        executors = Executors(api, namespace, colony)
        operator = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "before.log").start()
        try:
            executors.create_ready("cluster", assignTimeoutSeconds=2, maxConcurrentProcesses=5)
            running = colony.client.submit(tutorial_spec(colony, cmd="sleep 30; echo done"), colony.user_prvkey)
            wait_for(lambda: pod_running(api, namespace, running.processid), 60, 0.5, "the process's pod running")
            operator.stop()
            policy = tmp_path / "policy.json"
            policy.write_text(json.dumps({"maxConcurrentProcesses": 2}))
            operator = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "after.log",
                                       extra_args=["--policy-file", str(policy)]).start()
            refused = wait_for(lambda: (c := executors.condition("cluster", "Allowed")) and c["status"] == "False"
                               and c["observedGeneration"] and "finishing" in c["message"] and c, 60, 0.3,
                               "Allowed=False, finishing what it runs")
            later = colony.client.submit(tutorial_spec(colony, cmd="echo later"), colony.user_prvkey)
            while colony.client.get_process(running.processid, colony.user_prvkey).state == ProcessState.RUNNING:
                executor = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey)
                assert executor.state == ExecutorState.APPROVED, "the executor was removed as stale"
                time.sleep(1)
            final = wait_final(colony, running.processid)
            assert final.state == ProcessState.SUCCESS and final.retries == 0, final.errors
            assert len(job_names(api, namespace, running.processid)) == 1
            assert refused["reason"] == "LimitAboveCeiling"
            assert colony.client.get_process(later.processid, colony.user_prvkey).state == ProcessState.WAITING
        finally:
            operator.stop()


def kubectl(kube_cluster, *args: str, stdin: str | None = None) -> None:
    subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, *args], input=stdin, text=True, check=True,
                   stdout=subprocess.DEVNULL)


def refuse_jobs(kube_cluster, namespace: str) -> str:
    """An admission policy that refuses every Job created in `namespace` (422, as a webhook's 400 is refused too:
    test_reconcile); its name."""
    name = f"refuse-jobs-{namespace}"[:63]
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name},
              "spec": {"failurePolicy": "Fail", "matchConstraints": {
                  "resourceRules": [{"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"],
                                     "resources": ["jobs"]}],
                  "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
                  "validations": [{"expression": "false", "reason": "Invalid",
                                   "message": "no Jobs in this namespace today"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name}, "spec": {"policyName": name, "validationActions": ["Deny"]}}
    kubectl(kube_cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                "items": [policy, binding]}))
    return name


def jobs_refused(kube_api, namespace: str) -> bool:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "probe-"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "busybox:1.35"}]}}}}
    try:
        client.BatchV1Api(kube_api).create_namespaced_job(namespace, job, dry_run="All")
    except ApiException as err:
        return err.status == 422
    return False


def test_an_admission_refusal_of_every_job_added_after_the_start_fails_no_process(
        operator, executors, colony, kube_cluster, kube_api, namespace):
    executors.create_ready("cluster")
    name = refuse_jobs(kube_cluster, namespace)
    try:
        wait_for(lambda: jobs_refused(kube_api, namespace), 30, 0.3, "the admission policy in force")
        first = [colony.client.submit(tutorial_spec(colony, cmd=f"echo {i}"), colony.user_prvkey) for i in range(2)]
        condition = wait_for(lambda: (c := executors.condition("cluster", "JobsAccepted")) and c["status"] == "False"
                             and c, 30, 0.3, "JobsAccepted=False")
        assert "no Jobs in this namespace today" in condition["message"], condition
        later = [colony.client.submit(tutorial_spec(colony, cmd=f"echo {i}"), colony.user_prvkey) for i in range(2)]
        time.sleep(5)  # the refusal goes on for a while; the executor checks again every few seconds
        states = {p.processid: colony.client.get_process(p.processid, colony.user_prvkey).state
                  for p in first + later}
        assert ProcessState.FAILED not in states.values(), states
        assert [states[p.processid] for p in later] == [ProcessState.WAITING] * 2, \
            "the executor took work while Kubernetes refused its Jobs"
    finally:
        kubectl(kube_cluster, "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name,
                "--ignore-not-found")
    processes = first + later
    for process in processes:
        final = wait_final(colony, process.processid, timeout=120)
        assert final.state == ProcessState.SUCCESS, final.errors
    executors.wait_ready("cluster")
