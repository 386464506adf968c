"""Pods the cluster stops (an eviction through the Eviction API, as a node drain or a spot reclaim does) are
replaced by Kubernetes without failing the process; a container's own failure still fails it at once; and a
process disrupted more than spec.jobs.maxDisruptions times fails, listing the disruptions."""

from __future__ import annotations

import pytest
from kubernetes import client

from colonies_operator.colonies import ProcessState
from devtools.waiting import wait_for
from tests.e2e.conftest import log_text, tutorial_spec, wait_final

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

# Each line names the pod that printed it (its host name); SIGTERM (the eviction's) ends the loop within half a
# second, so an evicted pod does not wait out its grace period.
COUNTING = ('trap "exit 143" TERM; h=$(hostname); i=1; while [ $i -le {lines} ]; do echo "$h line $i"; '
            'i=$((i+1)); sleep 0.5; done')


def pods_of(kube_api: client.ApiClient, namespace: str, process_id: str) -> list[client.V1Pod]:
    return client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items


def running_pod(kube_api, namespace: str, process_id: str, other_than: set[str] = frozenset()) -> str:
    """The name of the process's pod that runs now (and is not one of `other_than`), once there is one."""
    def find():
        for pod in pods_of(kube_api, namespace, process_id):
            if pod.metadata.name not in other_than and pod.status.phase == "Running" \
                    and not pod.metadata.deletion_timestamp:
                return pod.metadata.name
        return None
    return wait_for(find, 60, 0.2, f"a running pod of process {process_id} besides {sorted(other_than)}")


def evict(kube_api, namespace: str, pod: str) -> None:
    client.CoreV1Api(kube_api).create_namespaced_pod_eviction(pod, namespace, client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod, namespace=namespace)))


def lines_of(colony, process_id: str, pod: str) -> list[str]:
    return [line for line in log_text(colony, process_id).splitlines() if line.startswith(f"{pod} line ")]


def test_an_evicted_pod_is_replaced_and_the_process_succeeds_with_both_pods_lines_once(
        operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd=COUNTING.format(lines=16)), colony.user_prvkey)
    first = running_pod(kube_api, namespace, process.processid)
    wait_for(lambda: len(lines_of(colony, process.processid, first)) >= 3, 30, 0.2, "the first pod's lines shipped")
    evict(kube_api, namespace, first)
    second = running_pod(kube_api, namespace, process.processid, {first})

    final = wait_final(colony, process.processid, timeout=90)
    assert final.state == ProcessState.SUCCESS, final.errors
    log = log_text(colony, process.processid).splitlines()
    first_lines = [line for line in log if line.startswith(f"{first} line ")]
    # The first pod's lines up to the eviction, each once and in order; then all of the replacement's.
    assert first_lines == [f"{first} line {i}" for i in range(1, len(first_lines) + 1)] and len(first_lines) >= 3
    assert [line for line in log if line.startswith(f"{second} line ")] == \
        [f"{second} line {i}" for i in range(1, 17)]
    notes = [line for line in log if line.startswith("ColonyOS: ")]
    disrupted = [line for line in notes if first in line and "disrupted" in line]
    assert disrupted and "EvictionByEvictionAPI" in disrupted[0], notes
    assert any(second in line and first in line for line in notes), f"which pod replaced it: {notes}"
    # The notes sit between the two pods' lines.
    assert log.index(disrupted[0]) > log.index(first_lines[-1]) and log.index(disrupted[0]) < \
        log.index(f"{second} line 1")


def test_a_container_exiting_3_fails_its_process_at_once_without_a_second_pod(
        operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd="echo about to fail; sleep 1; exit 3"),
                                   colony.user_prvkey)
    seen: set[str] = set()  # every pod of the process, until it is closed (its Job is deleted then)

    def closed():
        seen.update(pod.metadata.name for pod in pods_of(kube_api, namespace, process.processid))
        found = colony.client.get_process(process.processid, colony.user_prvkey)
        return found if found.state in (ProcessState.SUCCESS, ProcessState.FAILED) else None
    final = wait_for(closed, 60, 0.2, "the process closed")
    assert final.state == ProcessState.FAILED
    assert "exited with code 3" in final.errors[0], final.errors
    assert len(seen) == 1, f"a failing container is not retried: {sorted(seen)}"
    assert "about to fail" in log_text(colony, process.processid)


def test_a_process_disrupted_four_times_with_max_disruptions_3_fails_listing_them(
        operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster", jobs={"maxDisruptions": 3})
    process = colony.client.submit(tutorial_spec(colony, cmd=COUNTING.format(lines=600)), colony.user_prvkey)
    evicted: list[str] = []
    for _ in range(4):
        pod = running_pod(kube_api, namespace, process.processid, set(evicted))
        evict(kube_api, namespace, pod)
        evicted.append(pod)
        if len(evicted) < 4:
            # Still running: three disruptions are within the limit.
            assert colony.client.get_process(process.processid, colony.user_prvkey).state == ProcessState.RUNNING
    final = wait_final(colony, process.processid, timeout=90)
    assert final.state == ProcessState.FAILED
    assert "disrupted 4 times" in final.errors[0] and "spec.jobs.maxDisruptions (3)" in final.errors[0], final.errors
    for pod in evicted:
        assert pod in final.errors[0], (pod, final.errors)
    wait_for(lambda: not pods_of(kube_api, namespace, process.processid), 60, 0.5, "nothing left running")
