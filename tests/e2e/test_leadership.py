"""Two instances of the operator on the same resources, as a person would start a second one by hand with the same
kubeconfig: one leads and works, the other stands by; when the leader dies or stops, the other takes over and
nothing is lost or done twice."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from colonies_operator.colonies import ProcessState
from tests.e2e.conftest import (
    LEASE_SECONDS,
    OperatorProcess,
    attempt_job,
    job_names,
    log_text,
    tutorial_spec,
    wait_final,
)
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

LEASE = "colonies-operator"
PROCESSES = 10
LINES = 100
# Each process prints LINES numbered lines over about 30 s: the hand-over happens while they run.
NUMBERED = f'i=0; while [ $i -lt {LINES} ]; do echo "$COLONIES_PROCESS_ID line $i"; i=$((i+1)); sleep 0.3; done'


def holder(kube_api, namespace: str) -> str:
    try:
        lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(LEASE, namespace)
    except ApiException as err:
        if err.status == 404:
            return ""
        raise
    return lease.spec.holder_identity or ""


def take_lease(coordination: client.CoordinationV1Api, namespace: str) -> None:
    """Another holder, "someone-else", writes itself into the Lease for an hour, as an instance that took over would."""
    lease = coordination.read_namespaced_lease(LEASE, namespace)
    lease.spec.holder_identity, lease.spec.lease_duration_seconds = "someone-else", 3600
    coordination.replace_namespaced_lease(LEASE, namespace, lease)


def identity(operator: OperatorProcess) -> str:
    """The instance's identity in the Lease, from its log."""
    found = re.search(r"leading: (\S+) holds|this instance \((\S+)\) takes no work", operator.log_text())
    return (found.group(1) or found.group(2)) if found else ""


class Pair:
    """Two instances started one after the other: the first leads, the second stands by."""

    def __init__(self, kube_cluster, namespace: str, tmp_path: Path, kube_api) -> None:
        self.kube_api, self.namespace = kube_api, namespace
        self.first = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "first.log").start()
        wait_for(lambda: "leading:" in self.first.log_text(), 60, 0.2, "the first instance to lead")
        self.second = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "second.log").start()
        wait_for(lambda: "standing by" in self.second.log_text(), 60, 0.2, "the second instance to stand by")

    def stop(self) -> None:
        self.first.stop()
        self.second.stop()

    def logs(self) -> str:
        return f"--- first ---\n{self.first.log_text()[-8000:]}\n--- second ---\n{self.second.log_text()[-8000:]}"


@pytest.fixture
def pair(kube_cluster, crd, namespace, tmp_path, kube_api, request):
    running = Pair(kube_cluster, namespace, tmp_path, kube_api)
    try:
        yield running
    finally:
        running.stop()
        if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
            print(running.logs())


def run_and_hand_over(pair: Pair, executors, colony, kube_api, namespace, stop_leader) -> float:
    """Ten processes printing numbered lines; `stop_leader(first)` while they run. Returns the seconds from then to
    the second instance holding the Lease. Asserts every process ended SUCCESS with every line once, one Job each."""
    executors.create_ready("cluster", maxConcurrentProcesses=PROCESSES)
    assert "created Job" not in pair.second.log_text(), "the stand-by took work"
    spec = tutorial_spec(colony, cmd=NUMBERED, conditions={"cpu": "10m", "mem": "16Mi"})
    processes = [colony.client.submit(spec, colony.user_prvkey) for _ in range(PROCESSES)]
    wait_for(lambda: all(colony.client.get_logs(colony.name, p.processid, colony.user_prvkey, count=1)
                         for p in processes), 120, 0.5, "lines of every process in Colonies")
    second = identity(pair.second)
    stopped = time.monotonic()
    stop_leader(pair.first)
    wait_for(lambda: holder(kube_api, namespace) == second, LEASE_SECONDS + 30, 0.1, "the second instance to lead")
    took_over = time.monotonic() - stopped
    for process in processes:
        final = wait_final(colony, process.processid, timeout=180)
        assert final.state == ProcessState.SUCCESS and final.retries == 0, final.errors
        lines = log_text(colony, process.processid).splitlines()
        assert lines == [f"{process.processid} line {i}" for i in range(LINES)], \
            f"process {process.processid}: {len(lines)} lines, duplicates or gaps"
        names = job_names(kube_api, namespace, process.processid)
        assert len(names) == 1 and attempt_job(process.processid, 0).fullmatch(names[0]), names
    return took_over


def test_the_leader_killed_mid_run_is_replaced_within_the_lease_and_nothing_is_lost_or_doubled(
        pair, executors, colony, kube_api, namespace):
    took_over = run_and_hand_over(pair, executors, colony, kube_api, namespace, lambda first: first.kill())
    print(f"SIGKILL: the stand-by led {took_over:.1f}s after the leader died (lease {LEASE_SECONDS:g}s)")
    assert took_over <= LEASE_SECONDS + 5


def test_the_leader_stopped_hands_over_in_under_five_seconds_and_nothing_is_lost_or_doubled(
        pair, executors, colony, kube_api, namespace):
    def terminate(first: OperatorProcess) -> None:
        first.proc.send_signal(signal.SIGTERM)

    took_over = run_and_hand_over(pair, executors, colony, kube_api, namespace, terminate)
    print(f"SIGTERM: the stand-by led {took_over:.1f}s after the signal")
    assert took_over < 5
    assert pair.first.proc.wait(5) == 0 and "handed over" in pair.first.log_text()


def test_a_leader_whose_lease_is_taken_stops_at_once_and_starts_over_as_a_stand_by_in_the_same_process(
        pair, kube_api, namespace):
    coordination = client.CoordinationV1Api(kube_api)
    take_lease(coordination, namespace)
    pid = pair.first.proc.pid

    def started_over() -> str:
        after = pair.first.log_text().partition("lost the leadership")[2]
        found = re.search(r"standing by: someone-else holds .* this instance \((\S+)\) takes no work", after)
        return found.group(1) if found else ""

    new_identity = wait_for(started_over, 30, 0.2, "the first instance to stand by again")
    assert "starting over as a stand-by" in pair.first.log_text()
    assert pair.first.proc.poll() is None and pair.first.proc.pid == pid, "the same process runs on"
    assert pair.second.proc.poll() is None and holder(kube_api, namespace) == "someone-else"
    # When the Lease is free again, one of the two leads: the first is a candidate like any other.
    lease = coordination.read_namespaced_lease(LEASE, namespace)
    lease.spec.holder_identity, lease.spec.lease_duration_seconds = None, 1
    coordination.replace_namespaced_lease(LEASE, namespace, lease)
    leader = wait_for(lambda: holder(kube_api, namespace), LEASE_SECONDS + 30, 0.2, "an instance to lead")
    assert leader in (new_identity, identity(pair.second))


def test_with_exit_on_lost_lease_a_leader_whose_lease_is_taken_exits_non_zero(kube_cluster, crd, namespace, tmp_path,
                                                                                kube_api, request):
    leader = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                             ["--exit-on-lost-lease"]).start()
    try:
        wait_for(lambda: "leading:" in leader.log_text(), 60, 0.2, "the instance to lead")
        take_lease(client.CoordinationV1Api(kube_api), namespace)
        code = wait_for(lambda: leader.proc.poll(), 10, 0.2, "the instance to exit")
        assert code == 1 and "lost the leadership" in leader.log_text() and "starting over" not in leader.log_text()
    finally:
        leader.stop()
        if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
            print(f"--- operator log ---\n{leader.log_text()[-8000:]}")
