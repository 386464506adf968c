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
