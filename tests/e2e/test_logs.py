"""Process logs on the real components: each line exactly once across a kubelet rotation and an operator killed
and restarted, an addlog answer lost after Colonies stored the batch, a line of a mebibyte, a Job near the size
cap beside another executor's work, more running containers than the stream cap, and a TTL of 0."""

from __future__ import annotations

import re
import time

import pytest
from kubernetes import client

from colonies_operator.colonies import LogEntry, ProcessState
from colonies_operator.core.loglines import CONTINUED
from devtools.colonies_server import Colony
from devtools.waiting import wait_for
from tests.e2e.conftest import OperatorProcess, log_text, tutorial_spec, wait_final
from tests.fixtures.fault_proxy import fault_proxy

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

NUMBERED = re.compile(r"^line (\d+)\b")


def numbers(text: str) -> list[int]:
    """The numbers of the numbered lines of a log, in order (other lines, such as the operator's, left out)."""
    return [int(m.group(1)) for line in text.splitlines() if (m := NUMBERED.match(line))]


def newest_entry(colony: Colony, process_id: str) -> LogEntry | None:
    payload = {"colonyname": colony.name, "processid": process_id, "executorname": "", "count": 1, "since": 0,
               "latest": True}
    entries = colony.client.rpc("getlogsmsg", payload, colony.user_prvkey)
    return LogEntry.from_dict(entries[-1]) if entries else None


def pod_of(kube_api, namespace: str, process_id: str) -> str | None:
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items
    return pods[0].metadata.name if pods and pods[0].status.phase == "Running" else None


def operator_with(kube_cluster, namespace: str, tmp_path, *args: str) -> OperatorProcess:
    return OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log", list(args)).start()


# 60,000 lines of 200 bytes (12 MiB: the kubelet rotates at 10 MiB) at once, then a slow trickle.
BURST, TRICKLE = 60_000, 400
PAD = "x" * 189
ROTATING_CMD = (f"awk 'BEGIN {{ for (i = 0; i < {BURST}; i++) printf \"line %05d {PAD}\\n\", i }}'; "
                f"i={BURST}; while [ $i -lt {BURST + TRICKLE} ]; do echo \"line $i {PAD}\"; i=$((i+1)); "
                "sleep 0.1; done")


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug lines"])
def test_a_log_the_kubelet_rotated_is_shipped_exactly_once_across_an_operator_kill(
        operator, executors, colony, kube_api, namespace, debug):
    executors.create_ready("cluster")
    kwargs = {"debug": True} if debug else {}
    process = colony.client.submit(tutorial_spec(colony, cmd=ROTATING_CMD, kwargs=kwargs, maxexectime=600,
                                                 conditions={"cpu": "500m", "mem": "64Mi", "walltime": 600}),
                                   colony.user_prvkey)
    pid = process.processid
    core = client.CoreV1Api(kube_api)

    def first_served() -> int:
        """The number of the first line of the file the kubelet serves (0 until it rotated the log)."""
        pod = pod_of(kube_api, namespace, pid)
        return numbers(core.read_namespaced_pod_log(pod, namespace, limit_bytes=64))[0] if pod else 0
    first = wait_for(first_served, 120, 1, "the kubelet to rotate the container's log (its current file no longer "
                     "starts with line 0)")

    def shipped_past_rotation() -> bool:
        # Every line before the current file's first was shipped: what the kubelet no longer serves is not the
        # operator's to recover.
        newest = newest_entry(colony, pid)
        return newest is not None and max(numbers(newest.message), default=-1) >= max(first, BURST) + 10
    wait_for(shipped_past_rotation, 120, 0.5, "the lines up to the rotation and the first of the trickle shipped")
    operator.kill()
    time.sleep(3)  # the operator is down for a while, as after a crash; the container keeps writing
    operator.start()
    final = wait_final(colony, pid, timeout=240)
    assert final.state == ProcessState.SUCCESS, final.errors
    text = log_text(colony, pid)
    got = numbers(text)
    assert got == list(range(BURST + TRICKLE)), \
        f"{len(got)} numbered lines, {len(set(got))} distinct, of {BURST + TRICKLE}"
    assert "may be missing" not in text
    if debug:
        assert text.startswith("ColonyOS: Job "), text[:200]


def test_a_batch_whose_answer_was_lost_after_colonies_stored_it_is_not_sent_again(
        kube_cluster, crd, namespace, colony, executors, tmp_path):
    with fault_proxy(colony.server.host, colony.server.port) as proxy:
        operator = operator_with(kube_cluster, namespace, tmp_path, "--colonies-timeout", "3")
        try:
            executors.create_ready("cluster", server={"host": proxy.host, "port": proxy.port})
            proxy.delay_answer("addlogmsg", 6)  # the first batch is stored; its answer comes after the timeout
            cmd = 'i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done'
            process = colony.client.submit(tutorial_spec(colony, cmd=cmd), colony.user_prvkey)
            final = wait_final(colony, process.processid, timeout=120)
            assert final.state == ProcessState.SUCCESS, final.errors
            assert proxy.delayed == ["addlogmsg"]
            assert log_text(colony, process.processid).splitlines() == [f"line {i}" for i in range(300)]
        finally:
            operator.stop()


def test_a_line_of_a_mebibyte_is_shipped_whole_and_in_order(operator, executors, colony):
    executors.create_ready("cluster")
    cmd = ('i=0; while [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); done; '
           "head -c 1048576 /dev/zero | tr '\\000' y; echo; "
           'while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done')
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    entries = colony.client.all_logs(colony.name, process.processid, colony.user_prvkey)
    assert all(len(e.message.encode()) <= 512 * 1024 for e in entries), "every entry one Colonies stores"
    lines, pieces = [], []
    for line in "".join(e.message for e in entries).splitlines():
        pieces.append(line.removesuffix(CONTINUED))
        if not line.endswith(CONTINUED):
            lines.append("".join(pieces))
            pieces = []
    assert lines == [f"line {i}" for i in range(50)] + ["y" * 1048576] + [f"line {i}" for i in range(50, 100)]


def test_a_job_near_the_size_cap_leaves_another_executors_work_in_its_namespace_running(
        operator, executors, colony, kube_api, namespace):
    executors.create_ready("big", executor_type="big-executor")
    executors.create_ready("small", executor_type="small-executor")
    # Six containers, each with a command of 120 KiB: a Job (and pod) of about 720 KiB, which the cluster stores,
    # and whose every watch event is one line of that size.
    cmd = "echo big; sleep 30 #" + "x" * 120_000
    big = colony.client.submit(tutorial_spec(colony, cmd=cmd, executor_type="big-executor",
                                             conditions={"processespernode": 6, "cpu": "10m", "mem": "16Mi"}),
                               colony.user_prvkey)
    wait_for(lambda: pod_of(kube_api, namespace, big.processid), 90, 0.5, "the big Job's pod running")
    for _ in range(3):
        started = time.monotonic()
        small = colony.client.submit(tutorial_spec(colony, cmd="echo small", executor_type="small-executor"),
                                     colony.user_prvkey)
        final = wait_final(colony, small.processid, timeout=60)
        assert final.state == ProcessState.SUCCESS and log_text(colony, small.processid) == "small\n", final.errors
        assert time.monotonic() - started < 45
    final = wait_final(colony, big.processid, timeout=120)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert sorted(log_text(colony, big.processid).splitlines()) == [f"[0/proc-{i}] big" for i in range(6)]
    assert "listing again" not in operator.log_text() and "is not synced" not in operator.log_text()


def test_processes_beyond_the_stream_cap_still_get_their_whole_log(
        kube_cluster, crd, namespace, colony, executors, kube_api, tmp_path):
    operator = operator_with(kube_cluster, namespace, tmp_path, "--max-log-streams", "2")
    try:
        executors.create_ready("cluster", maxConcurrentProcesses=10)
        spec = {"conditions": {"cpu": "10m", "mem": "16Mi"}}
        long_cmd = 'i=0; while [ $i -lt 60 ]; do echo "line $i"; i=$((i+1)); sleep 1; done'
        longs = [colony.client.submit(tutorial_spec(colony, cmd=long_cmd, **spec), colony.user_prvkey)
                 for _ in range(3)]
        wait_for(lambda: sum(1 for p in longs if colony.client.get_logs(colony.name, p.processid,
                                                                         colony.user_prvkey, count=1)) == 2,
                 90, 0.5, "two long processes streaming (the cap), the third waiting")
        short_cmd = 'i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done'
        shorts = [colony.client.submit(tutorial_spec(colony, cmd=short_cmd, **spec), colony.user_prvkey)
                  for _ in range(3)]
        for process in shorts:
            final = wait_final(colony, process.processid, timeout=120)
            assert final.state == ProcessState.SUCCESS, final.errors
            assert numbers(log_text(colony, process.processid)) == list(range(100)), "a short process's log"
        assert all(colony.client.get_process(p.processid, colony.user_prvkey).state == ProcessState.RUNNING
                   for p in longs), "the short ones closed while the long ones held the streams"
        for process in longs:
            assert wait_final(colony, process.processid, timeout=120).state == ProcessState.SUCCESS
            assert numbers(log_text(colony, process.processid)) == list(range(60)), "a long process's log"
    finally:
        operator.stop()


def test_a_ttl_of_zero_loses_no_output_exit_code_or_line(operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster", jobs={"ttlSecondsAfterFinished": 0}, maxConcurrentProcesses=10)
    spec = {"conditions": {"cpu": "10m", "mem": "16Mi"}}
    good_cmd = 'echo "line 1"; sleep 10; echo "line 2"; printf \'["done"]\' > /dev/termination-log'
    good = [colony.client.submit(tutorial_spec(colony, cmd=good_cmd, **spec), colony.user_prvkey) for _ in range(2)]
    bad_cmd = 'echo "line 1"; sleep 10; echo "line 2"; exit 3'
    bad = [colony.client.submit(tutorial_spec(colony, cmd=bad_cmd, **spec), colony.user_prvkey) for _ in range(2)]
    wait_for(lambda: all(colony.client.get_logs(colony.name, p.processid, colony.user_prvkey, count=1)
                         for p in good + bad), 90, 0.5, "the first line of every process in Colonies")
    # The processes end while no operator runs: their Jobs finish, and the TTL controller sees them first.
    operator.kill()
    batch = client.BatchV1Api(kube_api)
    wait_for(lambda: all(any(c.type in ("Complete", "Failed") and c.status == "True"
                             for c in (j.status.conditions or [])) for j in batch.list_namespaced_job(namespace).items),
             60, 0.5, "every Job finished")
    time.sleep(5)  # the operator stays down a little longer: what a TTL of 0 would delete is deleted by then
    operator.start()
    for process in good:
        final = wait_final(colony, process.processid)
        assert final.state == ProcessState.SUCCESS and final.output == ["done"], (final.state, final.output,
                                                                                  final.errors)
        assert log_text(colony, process.processid) == "line 1\nline 2\n"
    for process in bad:
        final = wait_final(colony, process.processid)
        errors = wait_for(lambda: colony.client.get_process(process.processid, colony.user_prvkey).errors, 5, 0.2,
                          "Colonies' errors on the failed process")
        assert final.state == ProcessState.FAILED and "exited with code 3" in errors[0], errors
        assert log_text(colony, process.processid) == "line 1\nline 2\n"
    # Once the processes are closed, the TTL of 0 applies: Kubernetes deletes the Jobs.
    wait_for(lambda: not batch.list_namespaced_job(namespace).items, 60, 1,
             "the closed processes' Jobs deleted by their TTL")
