"""The operator end to end: ColoniesExecutor -> Colonies executor; processes -> Jobs -> outcomes and logs."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client

from colonies_operator.colonies import ExecutorState, ProcessState, crypto
from tests.e2e.conftest import job_of, log_text, tutorial_spec, wait_final
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def test_a_coloniesexecutor_becomes_an_approved_executor_and_is_ready(operator, executors, colony, kube_cluster,
                                                                     namespace):
    executors.create("cluster")
    resource = executors.wait_ready("cluster")
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
    executors.create("cluster")
    executors.wait_ready("cluster")
    first_id = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).executorid
    operator.stop()
    operator.start()
    wait_for(lambda: "adopted" in operator.log_text() or operator.log_text().count("Registered") >= 0, 5)
    executors.wait_ready("cluster")
    # A process still runs after the restart: the executor was not registered anew (which re-queues work).
    process = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    assert wait_final(colony, process.processid).state == ProcessState.SUCCESS
    assert colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).executorid == first_id
    assert [f.funcname for f in colony.client.get_functions(colony.name, "cluster", colony.user_prvkey)] == ["execute"]


def test_the_tutorial_spec_submitted_with_pycolonies_succeeds_with_its_log(operator, executors, colony):
    from model import Conditions, FuncSpec, Gpu  # pycolonies
    from pycolonies import Colonies

    executors.create("cluster")
    executors.wait_ready("cluster")
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
    executors.create("cluster")
    executors.wait_ready("cluster")
    spec_file = tmp_path / "f.json"
    spec_file.write_text(json.dumps(tutorial_spec(colony, cmd="echo hello from the cli; echo second line")))
    result = subprocess.run([colony.server.binary, "function", "submit", "--spec", str(spec_file), "--follow"],
                            env=colony.cli_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from the cli" in result.stdout and "second line" in result.stdout


def test_output_comes_from_the_termination_message(operator, executors, colony):
    executors.create("cluster")
    executors.wait_ready("cluster")
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
    executors.create("cluster", jobs={"pendingTimeoutSeconds": 5, "imagePullGracePeriodSeconds": 3})
    executors.wait_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd, conditions=conditions, kwargs=kwargs),
                                   colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=120)
    assert final.state == ProcessState.FAILED
    assert expected in " ".join(final.errors), final.errors


def test_exit_code_failure_carries_the_last_lines_of_the_log(operator, executors, colony):
    executors.create("cluster")
    executors.wait_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd="echo about to fail; exit 7"), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.FAILED
    assert "exited with code 7" in final.errors[0] and "about to fail" in final.errors[-1]
    assert "about to fail" in log_text(colony, process.processid)


def test_status_counts_processes(operator, executors, colony):
    executors.create("cluster")
    executors.wait_ready("cluster")
    ok = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    bad = colony.client.submit(tutorial_spec(colony, cmd="exit 1"), colony.user_prvkey)
    wait_final(colony, ok.processid), wait_final(colony, bad.processid)
    status = wait_for(lambda: (s := executors.get("cluster")["status"])["succeededProcesses"] == 1
                      and s["failedProcesses"] == 1 and s["activeProcesses"] == 0 and s, 20,
                      description="status counts 1 succeeded, 1 failed, 0 active")
    assert status["lastAssignmentTime"]


def test_two_executors_in_two_namespaces_do_not_cross(kube_cluster, crd, colony, tmp_path, kube_api):
    from tests.e2e.conftest import Executors, OperatorProcess
    from tests.fixtures.kube import delete_namespace

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
