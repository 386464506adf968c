"""The operator end to end: ColoniesExecutor -> Colonies executor; processes -> Jobs -> outcomes and logs."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client

from colonies_operator.colonies import ExecutorState, ProcessState, crypto
from tests.e2e.conftest import job_of, log_text, tutorial_spec, wait_final
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def test_a_coloniesexecutor_becomes_an_approved_executor_and_is_ready(operator, executors, colony, kube_cluster,
                                                                     namespace):
    resource = executors.create_ready("cluster")
    status = resource["status"]
    executor = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey)
    assert executor.state == ExecutorState.APPROVED
    assert executor.executortype == "container-executor"
    assert status["executorId"] == executor.executorid
    functions = colony.client.get_functions(colony.name, "cluster", colony.user_prvkey)
    assert [f.funcname for f in functions] == ["execute"]
    # The executor key lives in a Secret the operator owns, never in the resource.
    secret = client.CoreV1Api(executors.core.api_client).read_namespaced_secret("cluster-executor-key", namespace)
    assert secret.metadata.owner_references[0].name == "cluster"
    assert "executorPrvKey" in secret.data
    table = subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "-n", namespace, "get",
                            "coloniesexecutors"], check=True, capture_output=True, text=True).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "READY", "TYPE"] and row.split()[:3] == ["cluster", "True",
                                                                                  "container-executor"]


def test_restarting_the_operator_reuses_the_executor_and_does_not_duplicate_functions(
        operator, executors, colony):
    executors.create_ready("cluster")
    first_id = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).executorid
    operator.stop()
    operator.start()
    executors.wait_ready("cluster")
    # A process still runs after the restart: the executor was not registered anew (which re-queues work).
    process = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    assert wait_final(colony, process.processid).state == ProcessState.SUCCESS
    assert colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).executorid == first_id
    assert [f.funcname for f in colony.client.get_functions(colony.name, "cluster", colony.user_prvkey)] == ["execute"]


def test_the_tutorial_spec_submitted_with_pycolonies_succeeds_with_its_log(operator, executors, colony):
    from model import Conditions, FuncSpec, Gpu  # pycolonies
    from pycolonies import Colonies

    executors.create_ready("cluster")
    users_client = Colonies(colony.server.host, colony.server.port)
    spec = FuncSpec(funcname="execute", kwargs={"docker-image": "busybox:1.35", "cmd": "echo hello world"},
                    maxwaittime=-1, maxexectime=55, maxretries=0,
                    conditions=Conditions(colonyname=colony.name, executortype="container-executor", nodes=1,
                                          processespernode=1, cpu="100m", mem="64Mi", gpu=Gpu(count=0), walltime=60))
    process = users_client.submit_func_spec(spec, colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert "hello world" in log_text(colony, process.processid)
    logs = users_client.get_process_log(colony.name, process.processid, 100, 0, colony.user_prvkey)
    assert "hello world" in "".join(entry["message"] for entry in logs)


def test_colonies_function_submit_follow_prints_the_containers_output(operator, executors, colony, tmp_path):
    executors.create_ready("cluster")
    spec_file = tmp_path / "f.json"
    spec_file.write_text(json.dumps(tutorial_spec(colony, cmd="echo hello from the cli; echo second line")))
    result = subprocess.run([colony.server.binary, "function", "submit", "--spec", str(spec_file), "--follow"],
                            env=colony.cli_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from the cli" in result.stdout and "second line" in result.stdout


def test_output_comes_from_the_termination_message(operator, executors, colony):
    executors.create_ready("cluster")
    cmd = "echo working; printf '[\"result\", 42]' > /dev/termination-log"
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS and final.output == ["result", 42]


@pytest.mark.parametrize("cmd, conditions, kwargs, expected", [
    ("exit 3", {}, {}, "exited with code 3 (Error)"),
    ("x=a; while true; do x=$x$x; done", {"mem": "16Mi"}, {}, "OOMKilled"),
    ("sleep 60", {"walltime": 3}, {}, "walltime of 3s exceeded"),
    ("echo never", {}, {"docker-image": "registry.invalid/nothing:1.0"}, "cannot be pulled"),
    ("echo never", {"gpu": {"count": 64}}, {}, "could not be scheduled"),
], ids=["exit-code", "oom", "walltime", "missing-image", "too-many-gpus"])
def test_failures_end_failed_with_the_real_reason(operator, executors, colony, kube_api, namespace, cmd, conditions,
                                                  kwargs, expected):
    executors.create_ready("cluster", jobs={"pendingTimeoutSeconds": 5, "imagePullGracePeriodSeconds": 3})
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd, conditions=conditions, kwargs=kwargs),
                                   colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=120)
    assert final.state == ProcessState.FAILED
    assert expected in " ".join(final.errors), final.errors


def test_exit_code_failure_carries_the_last_lines_of_the_log(operator, executors, colony):
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd="echo about to fail; exit 7"), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.FAILED
    assert "exited with code 7" in final.errors[0] and "about to fail" in final.errors[-1]
    assert "about to fail" in log_text(colony, process.processid)


def test_status_counts_processes(operator, executors, colony):
    executors.create_ready("cluster")
    ok = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    bad = colony.client.submit(tutorial_spec(colony, cmd="exit 1"), colony.user_prvkey)
    wait_final(colony, ok.processid), wait_final(colony, bad.processid)
    status = wait_for(lambda: (s := executors.get("cluster")["status"])["succeededProcesses"] == 1
                      and s["failedProcesses"] == 1 and s["activeProcesses"] == 0 and s, 20,
                      description="status counts 1 succeeded, 1 failed, 0 active")
    assert status["lastAssignmentTime"]


def test_two_executors_in_two_namespaces_do_not_cross(kube_cluster, crd, colony, tmp_path, kube_api):
    from tests.e2e.conftest import Executors, OperatorProcess
    from devtools.kube import delete_namespace

    core = client.CoreV1Api(kube_api)
    names = []
    for suffix in ("alpha", "beta"):
        name = f"two-executors-{suffix}-{crypto.generate_prvkey()[:6]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        names.append(name)
    operator = OperatorProcess(kube_cluster.kubeconfig, names, tmp_path / "operator.log").start()
    try:
        for name in names:
            wait_for(lambda: core.read_namespaced_service_account("default", name), 60)
        alpha, beta = Executors(kube_api, names[0], colony), Executors(kube_api, names[1], colony)
        alpha.create("alpha", executor_type="type-alpha")
        beta.create("beta", executor_type="type-beta")
        alpha.wait_ready("alpha"), beta.wait_ready("beta")
        processes = {}
        for executor_type in ("type-alpha", "type-beta"):
            for i in range(3):
                p = colony.client.submit(tutorial_spec(colony, cmd=f"echo {executor_type} {i}",
                                                       executor_type=executor_type), colony.user_prvkey)
                processes[p.processid] = executor_type
        for pid, executor_type in processes.items():
            final = wait_final(colony, pid)
            assert final.state == ProcessState.SUCCESS
            expected_executor = alpha if executor_type == "type-alpha" else beta
            name = "alpha" if executor_type == "type-alpha" else "beta"
            assert final.assignedexecutorid == expected_executor.get(name)["status"]["executorId"]
            assert job_of(kube_api, expected_executor.namespace, pid)["metadata"]["namespace"] == \
                expected_executor.namespace
    finally:
        operator.stop()
        for name in names:
            delete_namespace(kube_api, name)


MAPPING_CASES = [
    # conditions, expected (parallelism, containers, cpu, memory, gpus, node selector, deadline)
    ({"cpu": "250m", "mem": "32Mi", "walltime": 30}, (1, 1, "250m", "32Mi", None, None, 30)),
    # walltime 0: the default walltime (policy.defaults, a day) is the deadline.
    ({"cpu": "1000m", "mem": "1Gi", "walltime": 0}, (1, 1, "1", "1Gi", None, None, 86400)),
    ({"nodes": 3, "processespernode": 1, "cpu": "10m", "mem": "16Mi"}, (3, 1, "10m", "16Mi", None, None, 120)),
    ({"nodes": 2, "processespernode": 3, "cpu": "10m", "mem": "8Mi"}, (2, 3, "10m", "8Mi", None, None, 120)),
    # No cpu: the default cpu (policy.defaults, 100m).
    ({"gpu": {"count": 2}, "mem": "16Mi", "cpu": ""}, (1, 1, "100m", "16Mi", "2", None, 120)),
    # A GPU model selects nodes by spec.gpu.nodeLabel, and must be one the cluster has: the test node's GPUs
    # carry no product label, so the test selects its GPU "model" by architecture.
    ({"gpu": {"count": 1, "name": "amd64"}}, (1, 1, "100m", "64Mi", "1", {"kubernetes.io/arch": "amd64"}, 120)),
    # Colonies stores memory in whole Mi: 2 GB come back as 1907Mi, and that is what the Job asks for.
    ({"mem": "2G", "cpu": "1500m"}, (1, 1, "1500m", "1907Mi", None, None, 120)),
]


def test_jobs_match_the_conditions_as_stored_by_the_api_server(operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster", maxConcurrentProcesses=len(MAPPING_CASES),
                           gpu={"nodeLabel": "kubernetes.io/arch"})
    submitted = [(colony.client.submit(tutorial_spec(colony, cmd="true", conditions=conditions), colony.user_prvkey),
                  expected) for conditions, expected in MAPPING_CASES]
    for process, (parallelism, containers, cpu, memory, gpus, selector, deadline) in submitted:
        job = wait_for(lambda: job_of(kube_api, namespace, process.processid), 60, 0.5,
                       f"the Job of process {process.processid}")
        spec, pod = job["spec"], job["spec"]["template"]["spec"]
        case = f"conditions {process.spec.conditions.to_dict()}"
        assert spec["parallelism"] == spec["completions"] == parallelism, case
        assert spec["backoffLimit"] == 0, case
        # Walltime is running time, which the operator enforces: an annotation, not activeDeadlineSeconds.
        assert "activeDeadlineSeconds" not in spec, case
        assert job["metadata"]["annotations"].get("colonyos.io/walltime-seconds") == str(deadline), case
        assert len(pod["containers"]) == containers, case
        assert pod.get("nodeSelector") == selector, case
        for container in pod["containers"]:
            resources = container.get("resources") or {}
            limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
            assert limits.get("cpu") == requests.get("cpu") == cpu, case
            assert limits.get("memory") == requests.get("memory") == memory, case
            assert limits.get("nvidia.com/gpu") == gpus, case
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["COLONIES_PROCESS_ID"] == process.processid, case


def test_several_pods_and_containers_each_get_their_index_and_a_line_prefix(operator, executors, colony):
    executors.create_ready("cluster")
    cmd = 'echo "node $JOB_COMPLETION_INDEX process $COLONIES_PROCESS_INDEX of $COLONIES_NODES"'
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd, conditions={"nodes": 2, "processespernode": 2,
                                                                              "cpu": "10m", "mem": "16Mi"}),
                                   colony.user_prvkey)
    assert wait_final(colony, process.processid).state == ProcessState.SUCCESS
    lines = set(log_text(colony, process.processid).splitlines())
    assert lines == {f"[{node}/proc-{proc}] node {node} process {proc} of 2" for node in (0, 1) for proc in (0, 1)}


def test_twenty_thousand_lines_stream_while_running_each_once_in_order_in_few_rpcs(operator, executors, colony):
    executors.create_ready("cluster")
    # 20,000 numbered lines over about a minute.
    cmd = ('i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); '
           'if [ $((i % 350)) -eq 0 ]; then sleep 1; fi; done')
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd, conditions={"walltime": 300}, maxexectime=290),
                                   colony.user_prvkey)

    def visible_while_running():
        state = colony.client.get_process(process.processid, colony.user_prvkey).state
        assert state in (ProcessState.WAITING, ProcessState.RUNNING), "finished before any line was seen"
        entries = colony.client.get_logs(colony.name, process.processid, colony.user_prvkey, count=5)
        return state == ProcessState.RUNNING and entries
    wait_for(visible_while_running, 60, 0.5, "log lines in Colonies while the process runs")

    assert wait_final(colony, process.processid, timeout=240).state == ProcessState.SUCCESS
    entries = colony.client.all_logs(colony.name, process.processid, colony.user_prvkey)
    lines = "".join(e.message for e in entries).splitlines()
    assert lines == [f"line {i}" for i in range(20000)]
    # One addlog RPC stores one entry.
    assert len(entries) < 20000 / 50, f"{len(entries)} addlog RPCs for 20,000 lines"
