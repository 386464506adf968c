"""Processes that wait for nodes: a GPU model the resource declares (spec.gpu.models, a pool that scales from zero)
waits for the autoscaler instead of failing; a cordoned node still provides its model; an unknown model fails at
once; and walltime counts the time the containers run, not the time the pod waited for a node."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from colonies_operator.colonies import ProcessState
from devtools.kwok import FAKE_NODE_SELECTOR, FAKE_NODE_TOLERATION, GPU_MODEL_LABEL, fake_node
from devtools.waiting import wait_for
from tests.e2e.conftest import log_text, tutorial_spec, wait_final
from tests.fixtures.kwok import fake_nodes  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

PENDING_TIMEOUT = 5  # seconds; the processes below wait for a node longer than this
FAKE_JOBS = {"tolerations": [FAKE_NODE_TOLERATION], "nodeSelector": FAKE_NODE_SELECTOR,
             "pendingTimeoutSeconds": PENDING_TIMEOUT}


@pytest.fixture
def add_node(kube_api: client.ApiClient) -> Iterator[Callable[..., str]]:
    """`add_node(labels=..., gpus=..., unschedulable=...)` creates a fake node (what an autoscaler would add) and
    returns its name; the nodes are deleted after the test."""
    core, made = client.CoreV1Api(kube_api), []

    def add(**kwargs) -> str:
        name = f"kwok-test-{secrets.token_hex(4)}"
        core.create_node(fake_node(name, **kwargs))
        made.append(name)
        wait_for(lambda: any(c.type == "Ready" and c.status == "True"
                             for c in core.read_node(name).status.conditions or []), 60, 0.3, f"node {name} Ready")
        return name

    yield add
    for name in made:
        try:
            core.delete_node(name)
        except ApiException as err:
            if err.status != 404:
                raise


def unique_model() -> str:
    return f"test-gpu-{secrets.token_hex(3)}"


def pods_of(kube_api, namespace: str, process_id: str) -> list[client.V1Pod]:
    return client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items


def hold_pending(colony, kube_api, namespace: str, process_id: str, seconds: float) -> None:
    """Polls until the process's pod has been pending for `seconds`, checking all along that it is still
    RUNNING in Colonies (not failed for the wait)."""
    def long_enough():
        state = colony.client.get_process(process_id, colony.user_prvkey).state
        assert state == ProcessState.RUNNING, f"the process ended ({state}) while waiting for a node"
        pods = pods_of(kube_api, namespace, process_id)
        if not pods:
            return False
        assert pods[0].status.phase == "Pending", pods[0].status
        age = dt.datetime.now(dt.timezone.utc) - pods[0].metadata.creation_timestamp
        return age.total_seconds() >= seconds
    wait_for(long_enough, seconds + 60, 0.5, f"the pod pending for {seconds}s")


def test_a_process_for_a_declared_gpu_model_no_node_has_waits_for_a_node_and_runs(
        fake_nodes, operator, executors, colony, kube_api, namespace, add_node):
    model = unique_model()
    executors.create_ready("cluster", gpu={"models": [model]},
                           jobs={**FAKE_JOBS, "scaleUpTimeoutSeconds": 120})
    process = colony.client.submit(tutorial_spec(colony, cmd="sleep 2", conditions={
        "gpu": {"count": 2, "name": model}}), colony.user_prvkey)
    hold_pending(colony, kube_api, namespace, process.processid, PENDING_TIMEOUT + 5)
    node = add_node(labels={GPU_MODEL_LABEL: model}, gpus=4)
    final = wait_final(colony, process.processid, timeout=60)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert pods_of(kube_api, namespace, process.processid)[0].spec.node_name == node
    log = log_text(colony, process.processid)
    assert f"GPU model {model}" in log and "scaleUpTimeoutSeconds" in log, log


def test_a_gpu_model_neither_in_the_cluster_nor_declared_fails_at_once(
        fake_nodes, operator, executors, colony, kube_api, namespace):
    declared = unique_model()
    executors.create_ready("cluster", gpu={"models": [declared]}, jobs=FAKE_JOBS)
    process = colony.client.submit(tutorial_spec(colony, cmd="sleep 2", conditions={
        "gpu": {"count": 1, "name": unique_model()}}), colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=30)
    assert final.state == ProcessState.FAILED
    assert "no node of this cluster has that GPU model" in final.errors[0] and declared in final.errors[0], \
        final.errors
    assert not pods_of(kube_api, namespace, process.processid)


def test_a_cordoned_node_still_provides_its_gpu_model(
        fake_nodes, operator, executors, colony, kube_api, namespace, add_node):
    model = unique_model()
    executors.create_ready("cluster", jobs={**FAKE_JOBS, "pendingTimeoutSeconds": 60})
    node = add_node(labels={GPU_MODEL_LABEL: model}, gpus=4)

    def advertised() -> bool:
        hardware = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey).hardware
        return any(h["gpu"]["name"] == model for h in hardware)
    wait_for(advertised, 30, 0.5, f"the executor's capabilities showing {model}")
    core = client.CoreV1Api(kube_api)
    core.patch_node(node, {"spec": {"unschedulable": True}})  # kubectl cordon
    wait_for(lambda: not advertised(), 30, 0.5, "the cordoned node gone from the capabilities")

    process = colony.client.submit(tutorial_spec(colony, cmd="sleep 1", conditions={
        "gpu": {"count": 1, "name": model}}), colony.user_prvkey)
    wait_for(lambda: pods_of(kube_api, namespace, process.processid), 30, 0.3, "its pod, waiting for the node")
    core.patch_node(node, {"spec": {"unschedulable": False}})  # kubectl uncordon: maintenance is over
    final = wait_final(colony, process.processid, timeout=60)
    assert final.state == ProcessState.SUCCESS, final.errors


def test_walltime_counts_running_time_not_the_time_the_pod_waited_for_a_node(
        operator, executors, colony, kube_api, namespace):
    # On the real node, once it gets a label that no node has now (as a node pool scaling up would bring).
    core = client.CoreV1Api(kube_api)
    node = next(n.metadata.name for n in core.list_node().items if "type" not in (n.metadata.labels or {}))
    key = "colonies-operator.test/pool"
    executors.create_ready("cluster", jobs={"nodeSelector": {key: namespace}, "pendingTimeoutSeconds": 120})
    # SIGTERM (the deadline's) ends it within a second, as a well-behaved program does.
    cmd = 'trap "exit 143" TERM; echo started; i=0; while [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; echo not reached'
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd, conditions={"walltime": 20}), colony.user_prvkey)
    try:
        hold_pending(colony, kube_api, namespace, process.processid, 30)
        core.patch_node(node, {"metadata": {"labels": {key: namespace}}})

        def started():
            pods = pods_of(kube_api, namespace, process.processid)
            statuses = (pods[0].status.container_statuses or []) if pods else []
            state = statuses[0].state if statuses else None
            return state and state.running and state.running.started_at
        started_at = wait_for(started, 60, 0.2, "the container running")
        final = wait_final(colony, process.processid, timeout=60)
    finally:
        core.patch_node(node, {"metadata": {"labels": {key: None}}})
    assert final.state == ProcessState.FAILED
    assert "walltime of 20s exceeded" in final.errors[0], final.errors
    ran = (final.endtime - started_at).total_seconds()
    assert 19 <= ran <= 30, f"the container ran {ran:.1f}s for a walltime of 20s"
    # (Container start times are whole seconds.)
    assert (started_at - final.starttime).total_seconds() >= 29, "the pod waited 30s before it ran"
    log = log_text(colony, process.processid)
    assert "started\n" in log and "not reached" not in log, log
