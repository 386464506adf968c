"""The operator on fake nodes (kwok): 20 processes at once, with exit codes, a GPU model and a cancellation.
A smoke test of the scale test bed (bench/scale.py runs the same at 2,000 processes on 200 nodes)."""

from __future__ import annotations

import datetime as dt

import pytest
from kubernetes import client

from colonies_operator.colonies import ProcessState
from devtools.kwok import FAKE_NODE_PREFIX, FAKE_NODE_SELECTOR, FAKE_NODE_TOLERATION, GPU_MODEL_LABEL
from devtools.waiting import wait_for
from tests.e2e.conftest import FINAL_STATES, tutorial_spec
from tests.fixtures.kwok import fake_nodes  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def pods_of(core: client.CoreV1Api, namespace: str, process_id: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items


def seconds_between(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds()


def test_twenty_processes_on_fake_nodes_run_for_their_sleep_and_end_with_their_exit_code(
        fake_nodes, operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster", maxConcurrentProcesses=20,
                           jobs={"tolerations": [FAKE_NODE_TOLERATION], "nodeSelector": FAKE_NODE_SELECTOR})
    submit = lambda **overrides: colony.client.submit(tutorial_spec(colony, **overrides), colony.user_prvkey)  # noqa
    succeeding = [submit(kwargs={"cmd": "sleep 3; exit 0"}, conditions={"cpu": "1000m"}) for _ in range(16)]
    failing = [submit(kwargs={"cmd": "sleep 2; exit 3"}) for _ in range(2)]
    gpu = submit(kwargs={"cmd": "sleep 1"}, conditions={"gpu": {"count": 4, "name": "nvidia-t4"}})
    cancelled = submit(kwargs={"cmd": "sleep 300"})
    core = client.CoreV1Api(kube_api)

    wait_for(lambda: any(p.status.phase == "Running" for p in pods_of(core, namespace, cancelled.processid)), 90,
             0.5, "the long process's pod Running on a fake node")
    colony.client.cancel(cancelled.processid, colony.user_prvkey)
    wait_for(lambda: not pods_of(core, namespace, cancelled.processid), 30, 0.5,
             "the cancelled process's pod deleted from its fake node")

    def all_final():
        return all(colony.client.get_process(p.processid, colony.user_prvkey).state in FINAL_STATES
                   for p in succeeding + failing + [gpu])
    wait_for(all_final, 120, 1.0, "the 19 other processes to finish")

    def final(process):
        return colony.client.get_process(process.processid, colony.user_prvkey)
    for process in succeeding + [gpu]:
        assert final(process).state == ProcessState.SUCCESS, final(process).errors
    for process in failing:
        closed = final(process)
        assert closed.state == ProcessState.FAILED
        assert "exited with code 3" in " ".join(closed.errors), closed.errors
    assert final(cancelled).state == ProcessState.CANCELLED

    # One Job and one pod per successful process, all on fake nodes; each ran for its sleep. A failed process
    # keeps nothing running: its Job is gone.
    jobs = client.BatchV1Api(kube_api).list_namespaced_job(namespace).items
    by_process = {}
    for job in jobs:
        by_process.setdefault(job.metadata.labels["colonyos.io/process-id"], []).append(job.metadata.name)
    assert sorted(len(names) for names in by_process.values()) == [1] * 17, by_process
    for process in failing:
        assert process.processid[:63] not in by_process, "a failed process's Job must be deleted"
    for process, least in [(p, 3) for p in succeeding] + [(gpu, 1)]:
        pods = pods_of(core, namespace, process.processid)
        assert len(pods) == 1, [p.metadata.name for p in pods]
        pod = pods[0]
        assert pod.spec.node_name.startswith(FAKE_NODE_PREFIX), pod.spec.node_name
        terminated = pod.status.container_statuses[0].state.terminated
        assert seconds_between(terminated.started_at, terminated.finished_at) >= least, terminated
    gpu_node = core.read_node(pods_of(core, namespace, gpu.processid)[0].spec.node_name)
    assert gpu_node.metadata.labels.get(GPU_MODEL_LABEL) == "nvidia-t4"
    assert gpu_node.status.capacity["nvidia.com/gpu"] == "4"
