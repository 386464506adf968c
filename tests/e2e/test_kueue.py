"""Jobs handed to the real Kueue (spec.jobs.queueName): a ClusterQueue smaller than the work admits them one after
another; none fails for the time it waited, each log says it was queued, and the resource counts the queued. A Job
Kueue preempts goes back to the queue and runs again."""

from __future__ import annotations

import datetime as dt

import pytest
from kubernetes import client

from colonies_operator.colonies import ProcessState
from devtools.waiting import wait_for
from tests.e2e.conftest import FINAL_STATES, job_of, log_text, tutorial_spec, wait_final
from tests.fixtures.kueue import (  # noqa: F401 (kueue and kueue_queue are fixtures)
    GROUP,
    PRIORITY_CLASS_LABEL,
    QUEUE_LABEL,
    VERSION,
    condition,
    kueue,
    kueue_queue,
    workload_of,
)

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

PENDING_TIMEOUT = 8  # seconds: far less than the last process waits for the quota
RUNS_FOR = 5  # seconds each process runs


def test_four_one_cpu_processes_on_a_one_cpu_queue_run_one_after_another_and_all_succeed(
        operator, executors, colony, kube_api, namespace, kueue_queue):
    queue = kueue_queue(cpu="1")
    executors.create_ready("cluster", maxConcurrentProcesses=4,
                           jobs={"queueName": queue, "pendingTimeoutSeconds": PENDING_TIMEOUT})
    # 1000m: Colonies reads millicores only ("1" would be one millicore).
    spec = tutorial_spec(colony, cmd=f"echo start; sleep {RUNS_FOR}; echo done",
                         conditions={"cpu": "1000m", "mem": "32Mi"})
    processes = [colony.client.submit(spec, colony.user_prvkey) for _ in range(4)]

    queued_seen = 0

    def all_final():
        nonlocal queued_seen
        queued_seen = max(queued_seen, (executors.get().get("status") or {}).get("queuedProcesses") or 0)
        return all(colony.client.get_process(p.processid, colony.user_prvkey).state in FINAL_STATES
                   for p in processes)
    wait_for(all_final, 4 * (RUNS_FOR + 15) + 30, 0.5, "the four processes to finish")

    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    runs = []
    for process in processes:
        final = colony.client.get_process(process.processid, colony.user_prvkey)
        assert final.state == ProcessState.SUCCESS, final.errors
        log = log_text(colony, process.processid)
        assert "start\n" in log and "done\n" in log, log
        assert "queued" in log and f"LocalQueue {queue}" in log, log
        job = batch.read_namespaced_job(job_of(kube_api, namespace, process.processid)["metadata"]["name"], namespace)
        assert job.metadata.labels[QUEUE_LABEL] == queue
        workload = workload_of(kube_api, namespace, job.metadata.uid)
        assert workload and (condition(workload, "Finished") or {}).get("status") == "True", workload
        (pod,) = core.list_namespaced_pod(namespace, label_selector=f"job-name={job.metadata.name}").items
        terminated = pod.status.container_statuses[0].state.terminated
        runs.append((terminated.started_at, terminated.finished_at))
    runs.sort()
    for (_, end), (start, _) in zip(runs, runs[1:]):
        assert start >= end - dt.timedelta(seconds=1), f"two processes ran at once on a 1-CPU queue: {runs}"
    assert queued_seen >= 1, "the resource's status never counted a queued process"
    wait_for(lambda: (executors.get().get("status") or {}).get("queuedProcesses") == 0, 15, 0.5,
             "no process counted as queued once all are done")


def test_a_job_kueue_preempts_is_queued_again_not_failed_and_then_runs_to_success(
        operator, executors, colony, kube_api, namespace, kueue_queue):
    queue = kueue_queue(cpu="1")
    custom = client.CustomObjectsApi(kube_api)
    urgent = f"urgent-{namespace[-6:]}"
    custom.create_cluster_custom_object(GROUP, VERSION, "workloadpriorityclasses", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadPriorityClass", "metadata": {"name": urgent},
        "value": 1000, "description": "preempts the test's other work"})
    try:
        executors.create_ready("routine", jobs={"queueName": queue})
        executors.create_ready("urgent", jobs={"queueName": queue, "labels": {PRIORITY_CLASS_LABEL: urgent}})
        conditions = {"cpu": "1000m", "mem": "32Mi"}  # Colonies reads millicores only
        # Its pod ends at SIGTERM (Kueue's preemption deletes it), not after the grace period.
        cmd = 'trap "exit 143" TERM; echo start; i=0; while [ $i -lt 12 ]; do sleep 1; i=$((i+1)); done; echo done'
        routine = colony.client.submit(tutorial_spec(colony, cmd=cmd, conditions={
            **conditions, "executornames": ["routine"]}), colony.user_prvkey)
        wait_for(lambda: "start\n" in log_text(colony, routine.processid), 60, 0.3, "the routine process running")
        rushed = colony.client.submit(tutorial_spec(colony, cmd="echo urgent; sleep 2", conditions={
            **conditions, "executornames": ["urgent"]}), colony.user_prvkey)
        final_rushed = wait_final(colony, rushed.processid, timeout=90)
        final_routine = wait_final(colony, routine.processid, timeout=90)
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "workloadpriorityclasses", urgent)
    assert final_rushed.state == ProcessState.SUCCESS, final_rushed.errors
    assert final_routine.state == ProcessState.SUCCESS, final_routine.errors
    assert final_rushed.endtime < final_routine.endtime
    log = log_text(colony, routine.processid)
    assert "Kueue stopped the Job's pods (Preempted" in log, log
    # It started over once re-admitted: two starts, one end, each of its pods' lines once.
    assert log.count("start\n") == 2 and log.count("done\n") == 1, log
    assert "continues in pod" in log, log
