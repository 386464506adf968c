"""Colonies v1.9 conventions, end to end on the real cluster and server: capabilities, locations, documented
functions, paused colonies, the executor log, the official executors' kwargs, workflows and ColonyFS."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from kubernetes import client

from colonies_operator.core.capabilities import capabilities_for
from colonies_operator.colonies import FunctionSpec, ProcessState
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.functions import EXECUTE_DESCRIPTION, function_doc
from tests.e2e.conftest import job_of, log_text, tutorial_spec, wait_final
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def cli(colony, *args: str, timeout: float = 60) -> str:
    """The colonies CLI as the colony's user; fails the test with its output when it fails."""
    result = subprocess.run([colony.server.binary, *args], env=colony.cli_env(), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"colonies {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def nodes_json(kube_api: client.ApiClient) -> list[dict[str, Any]]:
    response = client.CoreV1Api(kube_api).list_node(_preload_content=False)
    return json.loads(response.data)["items"]


def no_job(kube_api: client.ApiClient, namespace: str, process_id: str) -> bool:
    jobs = client.BatchV1Api(kube_api).list_namespaced_job(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}")
    return not jobs.items


# -- capabilities --------------------------------------------------------------------------------------------

def test_the_executor_reports_the_clusters_hardware_and_refreshes_it_when_nodes_change(
        operator, executors, colony, kube_api, namespace):
    resource = executors.create_ready("cluster")
    config = config_from_spec(resource["spec"], namespace=namespace, name="cluster")

    def reported_matches_nodes():
        expected = capabilities_for(nodes_json(kube_api), config)["hardware"]
        reported = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).hardware
        return expected and reported == expected and reported
    hardware = wait_for(reported_matches_nodes, 30, 0.5, "getexecutor's hardware == the cluster's nodes")
    assert sum(h["nodes"] for h in hardware) >= 1 and all(h["cpu"].endswith("m") and h["cores"] for h in hardware)

    details = cli(colony, "executor", "get", "--name", "cluster")
    for entry in hardware:
        assert entry["cpu"] in details and entry["mem"] in details and entry["architecture"] in details
    assert "cluster" in cli(colony, "executor", "ls")

    # A node changes (here: its instance type label): the capabilities follow, through updateexecutormsg.
    core = client.CoreV1Api(kube_api)
    node_name = nodes_json(kube_api)[0]["metadata"]["name"]
    label = "node.kubernetes.io/instance-type"
    before = nodes_json(kube_api)[0]["metadata"].get("labels", {}).get(label)
    marker = f"colonies-test-{namespace[-6:]}"
    core.patch_node(node_name, {"metadata": {"labels": {label: marker}}})
    try:
        wait_for(lambda: any(h["model"] == marker for h in
                             colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).hardware),
                 60, 0.5, f"the hardware's model to become {marker} after the node's label changed")
    finally:
        core.patch_node(node_name, {"metadata": {"labels": {label: before}}})


def test_a_process_asking_for_a_gpu_model_the_cluster_lacks_is_not_run(operator, executors, colony, kube_api,
                                                                       namespace):
    executors.create_ready("cluster")
    spec = tutorial_spec(colony, conditions={"gpu": {"count": 1, "name": "no-such-gpu-model"}})
    process = colony.client.submit(spec, colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=60)
    assert final.state == ProcessState.FAILED
    assert "no node of this cluster has that GPU model" in " ".join(final.errors), final.errors
    assert no_job(kube_api, namespace, process.processid)


# -- locations -----------------------------------------------------------------------------------------------

def test_two_executors_in_two_locations_get_only_their_locations_processes(operator, executors, colony, kube_api,
                                                                           namespace):
    lab_a = executors.create_ready("lab-a", locationName="lab-a")
    lab_b = executors.create_ready("lab-b", locationName="lab-b")
    ids = {"lab-a": lab_a["status"]["executorId"], "lab-b": lab_b["status"]["executorId"]}
    for name in ids:
        assert colony.client.get_executor(colony.name, name, colony.user_prvkey).locationname == name
    table = cli(colony, "executor", "ls")
    assert "lab-a" in table and "lab-b" in table

    submitted = []
    for location in ("lab-a", "lab-b", "lab-a", "lab-b"):
        spec = tutorial_spec(colony, cmd=f"echo in {location}", conditions={"locationname": location})
        submitted.append((colony.client.submit(spec, colony.user_prvkey), location))
    anywhere = colony.client.submit(tutorial_spec(colony, cmd="echo anywhere"), colony.user_prvkey)
    for process, location in submitted:
        final = wait_final(colony, process.processid)
        assert final.state == ProcessState.SUCCESS, final.errors
        assert final.assignedexecutorid == ids[location], f"a process for {location} ran elsewhere"
    final = wait_final(colony, anywhere.processid)
    assert final.state == ProcessState.SUCCESS and final.assignedexecutorid in ids.values()


# -- documented functions --------------------------------------------------------------------------------------

def test_execute_is_documented_in_colonies_function_ls_and_stays_registered_once(operator, executors, colony):
    executors.create_ready("cluster")
    listing = cli(colony, "function", "ls")
    assert "execute" in listing and EXECUTE_DESCRIPTION[:40] in listing
    assert "docker-image* (string)" in listing and "cmd* (string)" in listing and "args (array)" in listing

    operator.stop()
    operator.start()
    executors.wait_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    assert wait_final(colony, process.processid).state == ProcessState.SUCCESS
    functions = colony.client.get_functions(colony.name, "cluster", colony.user_prvkey)
    doc = function_doc("execute")
    assert [(f.funcname, f.description, f.args) for f in functions] == \
        [("execute", doc.description, [dict(a) for a in doc.args])]


# -- paused colonies --------------------------------------------------------------------------------------------

def paused_condition(executors, name: str) -> dict[str, Any] | None:
    for condition in (executors.get(name).get("status") or {}).get("conditions") or []:
        if (condition["type"] == "Paused" and condition["status"] == "True") or condition.get("reason") == "Paused":
            return condition
    return None


def test_a_paused_colony_shows_paused_and_resumes_by_itself(operator, executors, colony):
    resource = executors.create_ready("cluster")
    executor_id = resource["status"]["executorId"]
    colony.client.pause_assignments(colony.name, colony.colony_prvkey)
    try:
        condition = wait_for(lambda: paused_condition(executors, "cluster"), 60, 0.5,
                             "the ColoniesExecutor to show Paused")
        assert "paused" in condition["message"].lower()
        process = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
        # While paused, nothing is assigned (observed for a few assign periods).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert colony.client.get_process(process.processid, colony.user_prvkey).state == ProcessState.WAITING
            time.sleep(0.5)
    finally:
        colony.client.resume_assignments(colony.name, colony.colony_prvkey)
    assert wait_final(colony, process.processid).state == ProcessState.SUCCESS
    wait_for(lambda: paused_condition(executors, "cluster") is None and executors.wait_ready("cluster"), 60, 0.5,
             "Paused to clear and Ready to come back")
    status = executors.get("cluster")["status"]
    assert status["executorId"] == executor_id, "the executor was registered anew"
    assert colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).executorid == executor_id
    assert status.get("failedProcesses", 0) == 0
    reachable = next(c for c in status["conditions"] if c["type"] == "ColoniesReachable")
    assert reachable["status"] == "True"


# -- executor log -------------------------------------------------------------------------------------------------

def test_registration_and_refusals_are_in_the_executors_own_colonies_log(operator, executors, colony, kube_api,
                                                                         namespace):
    executors.create_ready("cluster")
    wait_for(lambda: "cluster" in cli(colony, "log", "get", "-e", "cluster", "--first"), 30, 1,
             "a registration or adoption line in the executor log")
    refused = colony.client.submit(tutorial_spec(colony, funcname="no-such-function"), colony.user_prvkey)
    assert wait_final(colony, refused.processid).state == ProcessState.FAILED
    text = wait_for(lambda: (t := cli(colony, "log", "get", "-e", "cluster", "--count", "500"))
                    and refused.processid[:12] in t and t, 30, 1, "the refusal in the executor log")
    assert "no-such-function" in text
    entries = colony.client.get_executor_logs(colony.name, "cluster", colony.user_prvkey)
    assert any(refused.processid[:12] in e.message and e.processid == "" for e in entries)


# -- kwargs of the official executors ------------------------------------------------------------------------------

def test_rebuild_image_pulls_again(operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, kwargs={"rebuild-image": True}), colony.user_prvkey)
    job = wait_for(lambda: job_of(kube_api, namespace, process.processid), 60, 0.5, "the Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    colony.client.cancel(process.processid, colony.user_prvkey)  # the test cluster cannot pull: nothing to wait for


def test_debug_and_kwargs_the_operator_does_not_use_never_fail_a_process(operator, executors, colony):
    executors.create_ready("cluster")
    kwargs = {"debug": True, "rebuild-image": False, "keep_snapshots": True, "priority-hint": 3,
              "labels": {"team": ["a", 1]}, "nothing": None}
    process = colony.client.submit(tutorial_spec(colony, cmd="echo still runs", kwargs=kwargs), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    text = log_text(colony, process.processid)
    assert "still runs" in text and "ColonyOS: Job" in text


# -- workflows ------------------------------------------------------------------------------------------------------

def test_a_three_step_workflow_passes_values_from_parent_to_child(operator, executors, colony):
    executors.create_ready("cluster")
    append = 'in="$COLONIES_PROCESS_INPUT"; echo "got $in"; printf \'%s,"{value}"]\' "${{in%]}}" > /dev/termination-log'

    def step(name: str, cmd: str, after: list[str]) -> dict[str, Any]:
        spec = tutorial_spec(colony, cmd=cmd, nodename=name)
        spec["conditions"]["dependencies"] = after
        return spec

    specs = [step("first", "printf '[\"1\"]' > /dev/termination-log", []),
             step("second", append.format(value="2"), ["first"]),
             step("third", append.format(value="3"), ["second"])]
    graph = colony.client.submit_workflow(colony.name, [FunctionSpec.from_dict(s) for s in specs],
                                          colony.user_prvkey)
    finals = {p.spec.nodename: p for p in (wait_final(colony, pid, timeout=180) for pid in graph.processids)}
    assert {n: p.state for n, p in finals.items()} == {n: ProcessState.SUCCESS for n in ("first", "second", "third")}
    assert finals["first"].output == ["1"]
    assert finals["second"].inputs == ["1"] and finals["second"].output == ["1", "2"]
    assert finals["third"].inputs == ["1", "2"] and finals["third"].output == ["1", "2", "3"]
    assert 'got ["1","2"]' in log_text(colony, finals["third"].processid)


# -- ColonyFS -------------------------------------------------------------------------------------------------------

def test_a_process_asking_for_colonyfs_of_an_executor_without_spec_fs_fails_at_once_and_never_runs(
        operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster")  # no spec.fs: tests/e2e/test_colonyfs.py has the executors with it
    fs = {"mount": "/cfs", "snapshots": [{"snapshotid": "", "label": "data", "dir": "/data", "keepfiles": False,
                                           "keepsnapshot": False}], "dirs": []}
    process = colony.client.submit(tutorial_spec(colony, cmd="echo should not run", fs=fs), colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=60)
    assert final.state == ProcessState.FAILED
    assert "ColonyFS" in " ".join(final.errors) and "has no spec.fs" in " ".join(final.errors)
    assert "without its files" in " ".join(final.errors)
    assert no_job(kube_api, namespace, process.processid)
    assert "should not run" not in log_text(colony, process.processid)


# -- the tutorial's dev environment: make up, the ColonyOS Python tutorial, make down --------------------------------

# The ColonyOS Python tutorial's scripts (github.com/colonyos/tutorials, 03-python), as they are, except the image:
# the local cluster pulls nothing, and busybox:1.35 is the image it has where the tutorial says ubuntu:20.04.
TUTORIAL_ECHO = '''
from pycolonies import FuncSpec, Conditions, Gpu
from pycolonies import colonies_client

colonies, colonyname, colony_prvkey, executor_name, prvkey = colonies_client()

func_spec = FuncSpec(
    funcname="execute",
    kwargs={
        "cmd": "echo hello world",
        "docker-image": "busybox:1.35"
    },
    conditions = Conditions(
        colonyname=colonyname,
        executortype="container-executor",
        executornames=["dev-docker"],
        processespernode=1,
        nodes=1,
        walltime=60,
        cpu="1000m",
        mem="1Gi",
        gpu=Gpu(count=0)
    ),
    maxexectime=55,
    maxretries=3
)

process = colonies.submit_func_spec(func_spec, prvkey)
print("Process", process.processid, "submitted")

# wait for the process to be executed, timeout after 10 seconds
process = colonies.wait(process, 10, prvkey)

print("Output:")
log = colonies.get_process_log(colonyname, process.processid, 100, -1, prvkey)
for l in log:
    print(l["message"], end="")
'''

TUTORIAL_EXECUTOR = '''
from pycolonies import Crypto
from pycolonies import colonies_client
import signal
import os

class PythonExecutor:
    def __init__(self):
        colonies, colonyname, colony_prvkey, _, _ = colonies_client()
        self.colonies = colonies
        self.colonyname = colonyname
        self.colony_prvkey = colony_prvkey
        self.executorname = "helloworld-executor"
        self.executortype = "helloworld-executor"

        crypto = Crypto()
        self.executor_prvkey = crypto.prvkey()
        self.executorid = crypto.id(self.executor_prvkey)

        self.register()

    def register(self):
        executor = {
            "executorname": self.executorname,
            "executorid": self.executorid,
            "colonyname": self.colonyname,
            "executortype": self.executortype
        }

        try:
            executor = self.colonies.add_executor(executor, self.colony_prvkey)
            self.colonies.approve_executor(self.colonyname, self.executorname, self.colony_prvkey)

            self.colonies.add_function(self.colonyname,
                                       self.executorname,
                                       "helloworld",
                                       self.executor_prvkey)
        except Exception as err:
            print(err)
            os._exit(0)

        print("Executor", self.executorname, "registered")

    def start(self):
        while (True):
            try:
                process = self.colonies.assign(self.colonyname, 10, self.executor_prvkey)
                print("Process", process.processid, "is assigned to executor")
                self.colonies.add_log(process.processid, "Hello from executor\\n", self.executor_prvkey)
                if process.spec.funcname == "helloworld":
                    self.colonies.close(process.processid, ["helloworld"], self.executor_prvkey)
            except Exception as err:
                print(err)
                pass

    def unregister(self):
        self.colonies.remove_executor(self.colonyname, self.executorname, self.colony_prvkey)
        print("Executor", self.executorname, "unregistered")
        os._exit(0)

def sigint_handler(signum, frame):
    executor.unregister()

if __name__ == '__main__':
    signal.signal(signal.SIGINT, sigint_handler)
    executor = PythonExecutor()
    executor.start()
'''

TUTORIAL_SUBMIT = '''
from pycolonies import func_spec
from pycolonies import colonies_client

colonies, colonyname, colony_prvkey, executor_name, prvkey = colonies_client()

func_spec = func_spec(func="helloworld",
                      args=[],
                      colonyname=colonyname,
                      executortype="helloworld-executor")

# submit the function spec to the colonies server
process = colonies.submit_func_spec(func_spec, prvkey)
print("Process", process.processid, "submitted")

# wait for the process to be executed
process = colonies.wait(process, 10, prvkey)
print(process.output[0])
'''

TUTORIAL_SPEC = {"conditions": {"executortype": "helloworld-executor"}, "funcname": "helloworld"}

# The variables of the tutorial's docker-compose.env that the env file must set (the rest configure parts this
# environment does not have: the database, the monitor, MinIO/S3 for ColonyFS).
COMPOSE_VARIABLES = {"COLONIES_SERVER_HOST", "COLONIES_SERVER_PORT", "COLONIES_TLS", "COLONIES_COLONY_NAME",
                     "COLONIES_COLONY_ID", "COLONIES_COLONY_PRVKEY", "COLONIES_ID", "COLONIES_PRVKEY",
                     "COLONIES_SERVER_ID", "COLONIES_SERVER_PRVKEY", "COLONIES_EXECUTOR_NAME", "TZ", "LANG",
                     "COLONIES_EXCLUSIVE_ASSIGN", "COLONIES_ALLOW_EXECUTOR_REREGISTER", "COLONIES_CLI_ASCII",
                     "AWS_S3_ENDPOINT", "AWS_S3_ACCESSKEY", "AWS_S3_SECRETKEY", "AWS_S3_REGION", "AWS_S3_TLS",
                     "AWS_S3_BUCKET", "AWS_S3_SKIPVERIFY"}
# The kube executor's own ColonyFS example (colonyos/executors, kube/README.md), with the image the cluster has.
TUTORIAL_FS_SPEC = {
    "conditions": {"executortype": "container-executor", "nodes": 1, "processespernode": 1, "mem": "64Mi",
                   "cpu": "100m", "walltime": 90},
    "funcname": "execute",
    "kwargs": {"cmd": "cat", "docker-image": "busybox:1.35", "args": ["/cfs/hello/hello.txt"]},
    "fs": {"mount": "/cfs", "dirs": [{"label": "/hello", "dir": "/hello", "keepfiles": True, "onconflicts": {
        "onstart": {"keeplocal": False}, "onclose": {"keeplocal": True}}}]},
    "maxexectime": 80, "maxretries": 0,
}


def sourced(env_file, base: dict[str, str]) -> dict[str, str]:
    """The environment after `source env_file` in bash."""
    out = subprocess.run(["bash", "-c", 'source "$1" && env -0', "bash", str(env_file)], env=base,
                         capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_make_up_twice_then_the_python_tutorial_runs_as_written_then_make_down(kube_cluster, crd, tmp_path,
                                                                              kube_api):
    import os
    import re
    import secrets
    import signal
    import sys

    from devtools.colonies_client import ColoniesClient
    from tests.fixtures.kube import REPO

    import socket

    if not kube_cluster.project_cluster:
        pytest.skip("make up runs on the project's own local cluster")
    namespace = f"dev-env-{secrets.token_hex(3)}"
    env_file = tmp_path / "colonies-dev.env"
    base = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    with socket.socket() as probe:  # a port of its own for the S3 server (a developer's make up may hold 9000)
        probe.bind(("127.0.0.1", 0))
        s3_port = str(probe.getsockname()[1])
    script_env = dict(base, COLONIES_DEV_ENV_FILE=str(env_file), COLONIES_DEV_NAMESPACE=namespace,
                      COLONIES_DEV_STATE=str(tmp_path / "state"), COLONIES_DEV_S3_PORT=s3_port)

    def dev_env(command: str) -> str:
        result = subprocess.run([sys.executable, str(REPO / "hack" / "dev-env.py"), command], env=script_env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"dev-env.py {command}:\n{result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    helper = None
    try:
        first = dev_env("up")
        assert f"source {env_file}" in first and "make down" in first
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        env = sourced(env_file, base)
        assert COMPOSE_VARIABLES <= set(env), COMPOSE_VARIABLES - set(env)
        assert env["COLONIES_COLONY_NAME"] == "dev" and env["COLONIES_EXECUTOR_NAME"] == "dev-docker"
        for secret in ("COLONIES_PRVKEY", "COLONIES_COLONY_PRVKEY", "COLONIES_SERVER_PRVKEY", "AWS_S3_SECRETKEY"):
            assert env[secret] not in first, f"{secret} was printed"
        users = ColoniesClient(env["COLONIES_SERVER_HOST"], int(env["COLONIES_SERVER_PORT"]))
        executor = users.get_executor("dev", "dev-docker", env["COLONIES_PRVKEY"])
        assert executor.executortype == "container-executor"

        second = dev_env("up")  # idempotent: same server, keys and executor
        assert sourced(env_file, base) == env
        assert users.get_executor("dev", "dev-docker", env["COLONIES_PRVKEY"]).executorid == executor.executorid
        assert "ready" in second

        def python(code: str, timeout: float = 90) -> str:
            path = tmp_path / "script.py"
            path.write_text(code)
            result = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True,
                                    timeout=timeout, cwd=tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        def colonies(*args: str) -> str:
            result = subprocess.run(["colonies", *args], env=env, capture_output=True, text=True, timeout=120,
                                    cwd=tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout + result.stderr

        # 1. execute with the CLI, then with pycolonies (whose script gives the process 10 s), run by the operator.
        assert "hello world" in colonies("function", "submit", "--spec", str(REPO / "examples" / "echo.json"),
                                         "--follow")
        echo = python(TUTORIAL_ECHO)
        assert re.search(r"Process [0-9a-f]{64} submitted", echo) and "hello world" in echo.split("Output:", 1)[1]

        # 2. A Python executor registered next to the operator.
        (tmp_path / "helloworld_executor.py").write_text(TUTORIAL_EXECUTOR)
        helper = subprocess.Popen([sys.executable, "-u", str(tmp_path / "helloworld_executor.py")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        assert "Executor helloworld-executor registered" in helper.stdout.readline()
        table = colonies("executor", "ls")
        assert "helloworld-executor" in table and "dev-docker" in table and "container-executor" in table

        # 3. A function submitted to it with pycolonies, then looked up with the CLI.
        submitted = python(TUTORIAL_SUBMIT)
        process_id = re.search(r"Process ([0-9a-f]{64}) submitted", submitted).group(1)
        assert submitted.strip().endswith("helloworld")
        assert process_id in colonies("process", "get", "-p", process_id) and \
            "helloworld" in colonies("process", "get", "-p", process_id)

        # 4. The CLI's submit --follow.
        (tmp_path / "helloworld.json").write_text(json.dumps(TUTORIAL_SPEC))
        assert "Hello from executor" in colonies("function", "submit", "--spec", "helloworld.json", "--follow")

        # 5. ColonyFS, as the kube executor's README shows it: a folder synced to a label, read by a process.
        (tmp_path / "hello").mkdir()
        (tmp_path / "hello" / "hello.txt").write_text("Hello from ColonyFS\n")
        colonies("fs", "sync", "-l", "/hello", "-d", "hello", "--yes")
        (tmp_path / "hellofs.json").write_text(json.dumps(TUTORIAL_FS_SPEC))
        assert "Hello from ColonyFS" in colonies("function", "submit", "--spec", "hellofs.json", "--follow")
    finally:
        if helper is not None and helper.poll() is None:
            helper.send_signal(signal.SIGINT)  # the tutorial's executor unregisters itself
            try:
                helper.wait(20)
            except subprocess.TimeoutExpired:
                helper.kill()
        down = dev_env("down")
    assert "removed" in down and not env_file.exists()
    core = client.CoreV1Api(kube_api)

    def namespace_gone() -> bool:
        return namespace not in {n.metadata.name for n in core.list_namespace().items}
    wait_for(namespace_gone, 120, 1, f"namespace {namespace} to be deleted by make down")
    assert not ColoniesClient(env["COLONIES_SERVER_HOST"], int(env["COLONIES_SERVER_PORT"]),
                              connect_timeout=2).health(), "the Colonies server still runs after make down"
    assert subprocess.run([str(REPO / "hack" / "cluster" / "status.sh")], capture_output=True).returncode == 0, \
        "make down stopped the cluster without STOP_CLUSTER=1"
