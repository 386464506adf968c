"""The executor core under the faults nobody scripts: a flaky gateway, re-queues handed straight back, a spec
changed mid-run, deletion under load, a restart among many running processes. (Evictions: test_disruptions.py.)"""

from __future__ import annotations

import base64
import json
import time

import pytest
from kubernetes import client

from colonies_operator.colonies import Executor, ProcessState, crypto
from devtools.colonies_client import ColoniesClient
from tests.e2e.conftest import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorProcess,
    attempt_job,
    log_text,
    tutorial_spec,
    wait_final,
)
from tests.fixtures.fault_proxy import fault_proxy
from devtools.kube import delete_namespace
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def jobs_of(kube_api, namespace: str, process_id: str) -> list:
    return client.BatchV1Api(kube_api).list_namespaced_job(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items


def pods_running(kube_api, namespace: str, process_id: str) -> bool:
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items
    return any(p.status.phase == "Running" for p in pods)


def test_colonies_answering_502_for_15_seconds_loses_no_work(operator, executors, colony, kube_api, namespace):
    with fault_proxy(colony.server.host, colony.server.port) as proxy:
        executors.create_ready("cluster", server={"host": proxy.host, "port": proxy.port})
        cmd = 'i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); sleep 0.3; done'
        process = colony.client.submit(tutorial_spec(colony, cmd=cmd), colony.user_prvkey)
        wait_for(lambda: colony.client.get_logs(colony.name, process.processid, colony.user_prvkey, count=1),
                 60, 0.3, "the first lines in Colonies")
        proxy.fail_with = 502
        condition = wait_for(lambda: (c := executors.condition("cluster", "ColoniesReachable"))
                             and c["status"] == "False" and c, 15, 0.3, "ColoniesReachable=False during the 502s")
        assert "502" in condition["message"] and "retrying" in condition["message"]
        time.sleep(15 - 0.3)  # the fault lasts 15 s, whatever the operator does meanwhile
        assert proxy.failed_requests > 0
        names = [j.metadata.name for j in jobs_of(kube_api, namespace, process.processid)]
        assert len(names) == 1 and attempt_job(process.processid, 0).fullmatch(names[0]), \
            "the Job must survive a Colonies outage"
        proxy.fail_with = None
        final = wait_final(colony, process.processid, timeout=90)
        assert final.state == ProcessState.SUCCESS, final.errors
        assert log_text(colony, process.processid).splitlines() == [f"line {i}" for i in range(100)]
        executors.wait_ready("cluster")


def test_an_attempt_requeued_and_handed_straight_back_gets_its_own_job(operator, executors, colony, kube_api,
                                                                       namespace):
    executors.create_ready("cluster")
    # maxexectime 8 s: Colonies re-queues the first attempt, and this executor (the only one) takes it again.
    process = colony.client.submit(tutorial_spec(colony, cmd="sleep 300", maxexectime=8, maxretries=1),
                                   colony.user_prvkey)
    second = attempt_job(process.processid, 1)
    # The old runner-per-process core kept the first attempt's runner, so the second never got a Job.
    wait_for(lambda: len(names := [j.metadata.name for j in jobs_of(kube_api, namespace, process.processid)]) == 1
             and second.fullmatch(names[0]) and pods_running(kube_api, namespace, process.processid), 60, 0.3,
             "only the second attempt's Job, running")
    final = wait_final(colony, process.processid, timeout=60)
    assert final.state == ProcessState.FAILED and final.retries == 1


def test_changing_the_job_namespace_while_processes_run_fails_none(executors, colony, kube_cluster, crd, kube_api,
                                                                   namespace, tmp_path):
    other = f"{namespace[:50]}-b"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    # The cluster admin lets this operator's resources run Jobs in the second namespace.
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"jobNamespaces": [other]}))
    operator = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                               extra_args=["--policy-file", str(policy)]).start()
    try:
        wait_for(lambda: core.read_namespaced_service_account("default", other), 60, 0.5, "the other namespace")
        executors.create_ready("cluster")
        spec = tutorial_spec(colony, cmd="sleep 12; echo first", conditions={"cpu": "10m", "mem": "16Mi"})
        first = [colony.client.submit(spec, colony.user_prvkey) for _ in range(3)]
        wait_for(lambda: all(pods_running(kube_api, namespace, p.processid) for p in first), 60, 0.5,
                 "the first three running")
        executors.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cluster",
                                                        {"spec": {"jobs": {"namespace": other}}})
        later = [colony.client.submit(tutorial_spec(colony, cmd="echo later"), colony.user_prvkey) for _ in range(2)]
        for process in first + later:
            final = wait_final(colony, process.processid, timeout=120)
            assert final.state == ProcessState.SUCCESS, final.errors
        assert all(jobs_of(kube_api, namespace, p.processid) for p in first), "the first Jobs stay where they ran"
        assert all(jobs_of(kube_api, other, p.processid) for p in later), "new Jobs go to the new namespace"
    finally:
        operator.stop()
        delete_namespace(kube_api, other, wait=False)


def test_deleting_the_resource_with_20_running_processes_requeues_all_and_fails_none(
        operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster", maxConcurrentProcesses=20)
    spec = tutorial_spec(colony, cmd="sleep 300", conditions={"cpu": "10m", "mem": "16Mi"})
    processes = [colony.client.submit(spec, colony.user_prvkey) for _ in range(20)]
    wait_for(lambda: all(pods_running(kube_api, namespace, p.processid) for p in processes), 120, 1,
             "all 20 running")
    executors.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cluster")
    wait_for(lambda: not executors.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"],
             60, 0.5, "the ColoniesExecutor gone")
    states = [colony.client.get_process(p.processid, colony.user_prvkey) for p in processes]
    assert [s.state for s in states] == [ProcessState.WAITING] * 20, [(s.state, s.errors) for s in states]
    wait_for(lambda: not client.BatchV1Api(kube_api).list_namespaced_job(namespace).items, 60, 0.5, "no Job left")


def test_a_restart_among_more_than_100_running_processes_of_the_type_adopts_all_of_its_own(
        operator, executors, colony, kube_api, namespace):
    # Another executor of the same type holds 110 RUNNING processes (it never runs them).
    other_key = crypto.generate_prvkey()
    colony.client.add_executor(Executor(executorid=crypto.prvkey_to_id(other_key), executorname="other",
                                        executortype="container-executor", colonyname=colony.name),
                               colony.colony_prvkey)
    colony.client.approve_executor(colony.name, "other", colony.colony_prvkey)
    held = tutorial_spec(colony, conditions={"executornames": ["other"]})
    for _ in range(110):
        colony.client.submit(held, colony.user_prvkey)
    while colony.client.assign(colony.name, -1, other_key) is not None:
        pass
    executors.create_ready("cluster", maxConcurrentProcesses=5)
    resource_key = base64.b64decode(client.CoreV1Api(kube_api).read_namespaced_secret(
        "cluster-executor-key", namespace).data["executorPrvKey"]).decode()
    cmd = 'i=0; while [ $i -lt 40 ]; do echo "$COLONIES_PROCESS_ID $i"; i=$((i+1)); sleep 0.25; done'
    spec = tutorial_spec(colony, cmd=cmd, conditions={"executornames": ["cluster"], "cpu": "10m", "mem": "16Mi"})
    mine = [colony.client.submit(spec, colony.user_prvkey) for _ in range(5)]
    wait_for(lambda: all(pods_running(kube_api, namespace, p.processid) for p in mine), 90, 0.5, "mine running")
    operator.kill()
    # One more is assigned while the operator is down: it has no Job yet.
    late = colony.client.submit(tutorial_spec(colony, cmd="echo late", conditions={"executornames": ["cluster"]}),
                                colony.user_prvkey)
    executor_client = ColoniesClient(colony.server.host, colony.server.port)
    wait_for(lambda: executor_client.assign(colony.name, -1, resource_key), 10, 0.5, "the late process assigned")
    operator.start()
    for process in mine + [late]:
        final = wait_final(colony, process.processid, timeout=120)
        assert final.state == ProcessState.SUCCESS, final.errors
        assert len(jobs_of(kube_api, namespace, process.processid)) == 1
    for process in mine:
        lines = log_text(colony, process.processid).splitlines()
        assert lines == [f"{process.processid} {i}" for i in range(40)], "each line once, none lost"


def test_deleting_an_admin_registered_executor_fails_its_processes_saying_why(operator, executors, colony,
                                                                              kube_api, namespace):
    # An executor an admin registered cannot remove itself from Colonies (only the colony owner can), so its
    # running processes cannot be queued again: they are failed with the reason, never left RUNNING.
    name, prvkey = colony.new_executor(executortype="container-executor", name="admin-made")
    client.CoreV1Api(kube_api).create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="admin-key"), string_data={"executorPrvKey": prvkey}))
    executors.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ColoniesExecutor", "metadata": {"name": "admin-made"},
        "spec": {"server": {"host": colony.server.host, "port": colony.server.port}, "colonyName": colony.name,
                 "executorName": name, "credentials": {"executorKeySecret": {"name": "admin-key"}}}})
    executors.wait_ready("admin-made")
    processes = [colony.client.submit(tutorial_spec(colony, cmd="sleep 300", conditions={"cpu": "10m", "mem": "16Mi"}),
                                      colony.user_prvkey) for _ in range(2)]
    wait_for(lambda: all(pods_running(kube_api, namespace, p.processid) for p in processes), 60, 0.5, "both running")
    executors.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "admin-made")
    for process in processes:
        final = wait_final(colony, process.processid, timeout=60)
        assert final.state == ProcessState.FAILED and "executor removed" in final.errors[0], final.errors
    wait_for(lambda: not client.BatchV1Api(kube_api).list_namespaced_job(namespace).items, 60, 0.5, "no Job left")
