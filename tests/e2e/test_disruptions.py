"""Pods the cluster stops (an eviction through the Eviction API, as a node drain or a spot reclaim does) are
replaced by Kubernetes without failing the process; a container's own failure still fails it at once; and a
process disrupted more than spec.jobs.maxDisruptions times fails, listing the disruptions."""

from __future__ import annotations

import re

import pytest
from kubernetes import client

from colonies_operator.colonies import ProcessState
from devtools.waiting import wait_for
from tests.e2e.conftest import log_text, tutorial_spec, wait_final

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

# Each line starts with a token drawn when the container starts (the pods of an Indexed Job share their host name),
# so the lines of each pod can be told apart; SIGTERM (the eviction's) ends the loop within half a second, so an
# evicted pod does not wait out its grace period.
COUNTING = ('trap "exit 143" TERM; t=$(cut -c1-8 /proc/sys/kernel/random/uuid); i=1; while [ $i -le {lines} ]; '
            'do echo "$t line $i"; i=$((i+1)); sleep 0.5; done')
COUNTED_LINE = re.compile(r"^([0-9a-f]{8}) line (\d+)$")


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


def runs_of(lines: list[str]) -> dict[str, list[int]]:
    """The numbers each container run printed, by its token, in the order the runs first appear."""
    runs: dict[str, list[int]] = {}
    for line in lines:
        match = COUNTED_LINE.match(line)
        if match:
            runs.setdefault(match.group(1), []).append(int(match.group(2)))
    return runs


def test_an_evicted_pod_is_replaced_and_the_process_succeeds_with_both_pods_lines_once(
        operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd=COUNTING.format(lines=16)), colony.user_prvkey)
    first = running_pod(kube_api, namespace, process.processid)
    wait_for(lambda: sum(len(n) for n in runs_of(log_text(colony, process.processid).splitlines()).values()) >= 3,
             30, 0.2, "the first pod's lines shipped")
    evict(kube_api, namespace, first)
    second = running_pod(kube_api, namespace, process.processid, {first})

    final = wait_final(colony, process.processid, timeout=90)
    assert final.state == ProcessState.SUCCESS, final.errors
    log = log_text(colony, process.processid).splitlines()
    runs = runs_of(log)
    assert len(runs) == 2, f"two container runs, one per pod: {log}"
    (first_token, first_run), (second_token, second_run) = runs.items()
    # The first pod's lines up to the eviction, each once and in order; then all of the replacement's.
    assert len(first_run) >= 3 and first_run == list(range(1, len(first_run) + 1)), log
    assert second_run == list(range(1, 17)), log
    notes = [line for line in log if line.startswith("ColonyOS: ")]
    disrupted = [line for line in notes if first in line and "disrupted" in line]
    assert disrupted and "EvictionByEvictionAPI" in disrupted[0], notes
    replaced = [line for line in notes if second in line and first in line]
    assert replaced, f"which pod replaced it: {notes}"
    # The notes sit between the two pods' lines.
    assert log.index(f"{first_token} line {first_run[-1]}") < log.index(disrupted[0]) < log.index(replaced[0]) \
        < log.index(f"{second_token} line 1"), log


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
