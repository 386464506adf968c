"""The operator under faults, cancellation, pressure and bad input: nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from kubernetes import client

from colonies_operator.colonies import ExecutorState, ProcessState, crypto
from tests.e2e.conftest import GROUP, PLURAL, VERSION, attempt_job, log_text, tutorial_spec, wait_final
from devtools.colonies_server import private_colonies_server
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def jobs_and_pods(kube_api, namespace, process_id):
    selector = f"colonyos.io/process-id={process_id[:63]}"
    jobs = client.BatchV1Api(kube_api).list_namespaced_job(namespace, label_selector=selector).items
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector=selector).items
    return jobs, pods


def running_pod(kube_api, namespace, process_id):
    _, pods = jobs_and_pods(kube_api, namespace, process_id)
    return any(p.status.phase == "Running" for p in pods)


def test_a_cancelled_process_loses_its_job_and_pods_within_five_seconds(operator, executors, colony, kube_api,
                                                                         namespace):
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd="sleep 300"), colony.user_prvkey)
    wait_for(lambda: running_pod(kube_api, namespace, process.processid), 60, 0.5, "the process's pod running")
    colony.client.cancel(process.processid, colony.user_prvkey)
    wait_for(lambda: jobs_and_pods(kube_api, namespace, process.processid) == ([], []), 5, 0.2,
             "the Job and its pods gone within 5 s of the cancellation")
    assert colony.client.get_process(process.processid, colony.user_prvkey).state == ProcessState.CANCELLED


def test_a_process_failed_or_requeued_by_colonies_loses_its_job(operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster")
    # maxexectime 6 with one retry: Colonies re-queues the first attempt, then fails the second.
    process = colony.client.submit(tutorial_spec(colony, cmd="sleep 300", maxexectime=6, maxretries=1),
                                   colony.user_prvkey)
    first_job = attempt_job(process.processid, 0)
    wait_for(lambda: running_pod(kube_api, namespace, process.processid), 60, 0.5, "the first attempt running")
    wait_for(lambda: not [j for j in jobs_and_pods(kube_api, namespace, process.processid)[0]
                          if first_job.fullmatch(j.metadata.name)],
             20, 0.3, "the first attempt's Job deleted after Colonies re-queued it")
    final = wait_final(colony, process.processid, timeout=60)  # its errors included
    assert final.state == ProcessState.FAILED and final.retries == 1
    assert "Maximum execution time limit exceeded" in final.errors
    wait_for(lambda: jobs_and_pods(kube_api, namespace, process.processid) == ([], []), 10, 0.3,
             "no Job left once Colonies failed the process")


def test_sigkill_mid_run_loses_and_duplicates_nothing(operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster", maxConcurrentProcesses=10)
    # 10 processes, each printing numbered lines for about 20 seconds.
    cmd = 'i=0; while [ $i -lt 100 ]; do echo "$COLONIES_PROCESS_ID line $i"; i=$((i+1)); sleep 0.2; done'
    processes = [colony.client.submit(tutorial_spec(colony, cmd=cmd, conditions={"cpu": "10m", "mem": "16Mi"}),
                                      colony.user_prvkey) for _ in range(10)]
    wait_for(lambda: all(running_pod(kube_api, namespace, p.processid) for p in processes), 90, 1,
             "all 10 pods running")
    wait_for(lambda: all(colony.client.get_logs(colony.name, p.processid, colony.user_prvkey, count=1)
                         for p in processes), 30, 0.5, "lines of every process in Colonies")
    operator.kill()
    time.sleep(3)  # the operator is down for a while, as after a crash; the pods keep running
    operator.start()
    for process in processes:
        final = wait_final(colony, process.processid, timeout=120)
        assert final.state == ProcessState.SUCCESS, final.errors
        lines = log_text(colony, process.processid).splitlines()
        assert lines == [f"{process.processid} line {i}" for i in range(100)], \
            f"process {process.processid}: {len(lines)} lines, duplicates or gaps"
        jobs, _ = jobs_and_pods(kube_api, namespace, process.processid)
        assert len(jobs) == 1 and attempt_job(process.processid, 0).fullmatch(jobs[0].metadata.name), \
            "one Job per process"
    assert "adopted 10 running processes" in operator.log_text()


def test_a_process_assigned_just_before_a_crash_gets_its_job_after_the_restart(
        kube_cluster, crd, namespace, colony, executors, operator, kube_api):
    executors.create_ready("cluster")
    executor_name = "cluster"
    operator.kill()
    # Play the crash window: the process is assigned to this executor, but no Job was created.
    secret = client.CoreV1Api(kube_api).read_namespaced_secret("cluster-executor-key", namespace)
    import base64
    prvkey = base64.b64decode(secret.data["executorPrvKey"]).decode()
    colony.client.submit(tutorial_spec(colony, cmd="echo made it"), colony.user_prvkey)
    process = colony.client.assign(colony.name, 5, prvkey)
    assert process is not None and colony.client.get_executor(colony.name, executor_name,
                                                              prvkey).executorid == process.assignedexecutorid
    operator.start()
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS and "made it" in log_text(colony, process.processid)


def test_the_executor_is_never_removed_as_stale_while_at_its_cap(kube_cluster, crd, namespace, tmp_path):
    from tests.e2e.conftest import Executors, OperatorProcess

    # Colonies removes executors silent for 12 s here (10 minutes by default), checking every 2 s.
    with private_colonies_server(stale_executor_seconds=12, cleanup_interval_seconds=2) as server, \
            kube_cluster.api_client() as api:
        colony = server.new_colony()
        executors = Executors(api, namespace, colony)
        operator = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
        try:
            executors.create_ready("cluster", maxConcurrentProcesses=1, assignTimeoutSeconds=2)
            long_one = colony.client.submit(tutorial_spec(colony, cmd="sleep 40; echo done"), colony.user_prvkey)
            waiting = colony.client.submit(tutorial_spec(colony, cmd="echo next"), colony.user_prvkey)
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:  # three stale periods at the cap
                executor = colony.client.get_executor(colony.name, "cluster", colony.user_prvkey)
                assert executor.state == ExecutorState.APPROVED, "the executor was removed as stale"
                process = colony.client.get_process(long_one.processid, colony.user_prvkey)
                assert process.retries == 0, "the running process was re-queued"
                if process.state != ProcessState.RUNNING:
                    break
                time.sleep(1)
            assert wait_final(colony, long_one.processid).state == ProcessState.SUCCESS
            assert wait_final(colony, waiting.processid).state == ProcessState.SUCCESS
        finally:
            operator.stop()


def test_the_cap_holds_under_a_burst_of_200_submissions(operator, executors, colony, kube_api, namespace):
    cap = 8
    executors.create_ready("cluster", maxConcurrentProcesses=cap)
    executor_id = executors.get("cluster")["status"]["executorId"]
    spec = tutorial_spec(colony, cmd="true", conditions={"cpu": "10m", "mem": "8Mi"})
    pids = [colony.client.submit(spec, colony.user_prvkey).processid for _ in range(200)]
    most_running, most_jobs = 0, 0
    batch = client.BatchV1Api(kube_api)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        running = [p for p in colony.client.get_processes(colony.name, ProcessState.RUNNING, colony.user_prvkey)
                   if p.assignedexecutorid == executor_id]
        unfinished_jobs = [j for j in batch.list_namespaced_job(namespace).items
                           if not any(c.type in ("Complete", "Failed") and c.status == "True"
                                      for c in (j.status.conditions or []))]
        most_running, most_jobs = max(most_running, len(running)), max(most_jobs, len(unfinished_jobs))
        stats = colony.client.colony_stats(colony.name, colony.user_prvkey)
        if stats["successfulprocesses"] + stats["failedprocesses"] == 200:
            break
        time.sleep(0.5)
    assert most_running <= cap and most_jobs <= cap, (most_running, most_jobs)
    assert most_running == cap, "the burst should fill the cap"
    states = [colony.client.get_process(pid, colony.user_prvkey).state for pid in pids]
    assert states.count(ProcessState.SUCCESS) == 200


def test_deleting_the_resource_deletes_its_jobs_unregisters_and_requeues(operator, executors, colony, kube_api,
                                                                         namespace):
    executors.create_ready("cluster")
    process = colony.client.submit(tutorial_spec(colony, cmd="sleep 300"), colony.user_prvkey)
    wait_for(lambda: running_pod(kube_api, namespace, process.processid), 60, 0.5, "the pod running")
    executors.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cluster")
    wait_for(lambda: not executors.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"],
             60, 0.5, "the ColoniesExecutor gone (finalizer released)")
    wait_for(lambda: jobs_and_pods(kube_api, namespace, process.processid) == ([], []), 30, 0.5, "its Job gone")
    requeued = colony.client.get_process(process.processid, colony.user_prvkey)
    assert requeued.state == ProcessState.WAITING and not requeued.isassigned
    # Another executor of the type now gets it.
    _, other_key = colony.new_executor(executortype="container-executor")
    taken = colony.client.assign(colony.name, 5, other_key)
    assert taken is not None and taken.processid == process.processid


BAD_INPUTS = [
    ({"funcname": "train"}, "unsupported function 'train'"),
    ({"kwargs": {"docker-image": None}}, "'docker-image' is required"),
    ({"kwargs": {"cmd": ""}}, "'cmd' is required"),
    ({"kwargs": {"args": ["fine", 42]}}, "'args' must be a list of strings"),
    # Colonies turns cpu "2" into 0 and refuses "1.5Gi" itself; a negative amount reaches the executor.
    ({"conditions": {"cpu": "-500m"}}, "conditions.cpu '-500m'"),
    ({"conditions": {"mem": "-64Mi"}}, "conditions.mem"),
    ({"conditions": {"walltime": -5}}, "non-negative"),
    ({"conditions": {"walltime": 100_000_000}}, "more than a year"),
    ({"kwargs": {"cmd": "echo " + "x" * 300_000}}, "exceed 128 KiB"),
    ({"kwargs": {"cmd": "echo a\u0000b"}}, "NUL"),
    ({"env": {"BAD NAME": "x"}}, "env name 'BAD NAME' is invalid"),
]


def test_bad_input_fails_the_process_with_a_message_and_creates_no_job(operator, executors, colony, kube_api,
                                                                        namespace):
    executors.create_ready("cluster")
    submitted = []
    for change, message in BAD_INPUTS:
        spec = tutorial_spec(colony, **{k: v for k, v in change.items() if k in ("kwargs", "conditions")})
        for key in ("funcname", "env"):
            if key in change:
                spec[key] = change[key]
        try:
            submitted.append((colony.client.submit(spec, colony.user_prvkey), message))
        except Exception as err:  # the Colonies server itself refuses some input at submit time
            pytest.fail(f"Colonies refused {change}: {err}")
    for process, message in submitted:
        final = wait_final(colony, process.processid)
        assert final.state == ProcessState.FAILED and message in final.errors[0], (message, final.errors)
        assert final.errors[0].startswith("invalid process: "), final.errors
    assert client.BatchV1Api(kube_api).list_namespaced_job(namespace).items == []
    good = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    assert wait_final(colony, good.processid).state == ProcessState.SUCCESS


def test_a_bad_resource_is_refused_by_the_schema(kube_cluster, crd, namespace):
    bad = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ColoniesExecutor", "metadata": {"name": "bad"},
           "spec": {"server": {"host": "h", "port": 70000}, "colonyName": "c",
                    "credentials": {"colonyKeySecret": {"name": "s"}, "executorKeySecret": {"name": "t"}}}}
    result = subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "-n", namespace, "apply", "-f", "-"],
                            input=json.dumps(bad), capture_output=True, text=True)
    assert result.returncode != 0
    assert "spec.server.port" in result.stderr and "exactly one of" in result.stderr.lower()


@pytest.mark.parametrize("case", ["missing-secret", "wrong-colony-key", "unreachable", "tls-mismatch"])
def test_configuration_problems_show_as_actionable_conditions(operator, executors, colony, case):
    spec = {}
    if case == "unreachable":
        spec["server"] = {"host": "127.0.0.1", "port": 9}
    if case == "tls-mismatch":
        spec["server"] = {"host": colony.server.host, "port": colony.server.port, "tls": True}
    wrong_colony = colony.server.new_colony() if case == "wrong-colony-key" else None
    if wrong_colony:
        # the key of another colony: not the owner of this one
        wrong_colony.name = colony.name
    executors.create("cluster", colony=wrong_colony or colony, **spec)
    if case == "missing-secret":
        executors.core.delete_namespaced_secret("cluster-colony-key", executors.namespace)
    expected = {"missing-secret": ("Registered", "KeySecretMissing", "kubectl"),
                "wrong-colony-key": ("Registered", "WrongColonyKey", "not the owner"),
                "unreachable": ("ColoniesReachable", "Unreachable", "check spec.server.host"),
                "tls-mismatch": ("ColoniesReachable", "TLSError", "spec.server.tls")}[case]
    kind, reason, hint = expected

    def shows_problem():
        condition = executors.condition("cluster", kind)
        ready = executors.condition("cluster", "Ready")
        return condition and condition["reason"] == reason and ready["status"] == "False" and condition
    condition = wait_for(shows_problem, 60, 0.5, f"condition {kind} with reason {reason}")
    assert hint in condition["message"]
    assert operator.proc.poll() is None, "the operator must keep running"


def test_private_keys_appear_in_no_log_event_or_status(operator, executors, colony, kube_api, namespace):
    executors.create_ready("cluster")
    ok = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    bad = colony.client.submit(tutorial_spec(colony, cmd="exit 2"), colony.user_prvkey)
    wait_final(colony, ok.processid), wait_final(colony, bad.processid)
    import base64
    secret = client.CoreV1Api(kube_api).read_namespaced_secret("cluster-executor-key", namespace)
    executor_key = base64.b64decode(secret.data["executorPrvKey"]).decode()
    assert crypto.prvkey_to_id(executor_key) == executors.get("cluster")["status"]["executorId"]
    events = client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    haystacks = {
        "operator log": operator.log_text(),
        "events": json.dumps([e.to_dict() for e in events], default=str),
        "status": json.dumps(executors.get("cluster")),
        "process errors": json.dumps([colony.client.get_process(p.processid, colony.user_prvkey).errors
                                      for p in (ok, bad)]),
    }
    for where, text in haystacks.items():
        for key in (colony.colony_prvkey, executor_key):
            assert key not in text, f"a private key appears in the {where}"
    # Job pods get no service account token unless the resource asks for one.
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="colonyos.io/process-id").items
    assert pods and all(p.spec.automount_service_account_token is False for p in pods)
    assert all(not any(v.projected for v in (p.spec.volumes or [])) for p in pods)


def test_a_colonies_server_restart_is_survived(kube_cluster, crd, namespace, tmp_path):
    from tests.e2e.conftest import Executors, OperatorProcess

    with private_colonies_server() as server, kube_cluster.api_client() as api:
        colony = server.new_colony()
        executors = Executors(api, namespace, colony)
        operator = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
        try:
            executors.create_ready("cluster")
            cmd = 'i=0; while [ $i -lt 60 ]; do echo "line $i"; i=$((i+1)); sleep 0.25; done'
            process = colony.client.submit(tutorial_spec(colony, cmd=cmd), colony.user_prvkey)
            wait_for(lambda: colony.client.get_logs(colony.name, process.processid, colony.user_prvkey, count=1),
                     60, 0.5, "first lines in Colonies")
            server.stop()
            condition = wait_for(lambda: (c := executors.condition("cluster", "ColoniesReachable"))
                                 and c["status"] == "False" and c, 40, 0.5,
                                 "ColoniesReachable=False while the server is down")
            assert "retrying" in condition["message"]
            server.restart()
            final = wait_final(colony, process.processid)
            assert final.state == ProcessState.SUCCESS, final.errors
            assert log_text(colony, process.processid).splitlines() == [f"line {i}" for i in range(60)]
            executors.wait_ready("cluster")
        finally:
            operator.stop()


def test_a_kube_apiserver_restart_is_survived(operator, executors, colony, kube_cluster, kube_api, namespace):
    if not kube_cluster.local:
        pytest.skip("restarting the API server needs the suite's own cluster")
    from pathlib import Path
    import os
    import signal

    executors.create_ready("cluster")
    cmd = 'i=0; while [ $i -lt 120 ]; do echo "line $i"; i=$((i+1)); sleep 0.25; done'
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd), colony.user_prvkey)
    wait_for(lambda: colony.client.get_logs(colony.name, process.processid, colony.user_prvkey, count=1), 60, 0.5,
             "first lines in Colonies")
    run_dir = Path(os.environ.get("COLONIES_OPERATOR_CLUSTER_DIR", "/var/lib/colonies-operator-cluster")) / "run"
    os.kill(int((run_dir / "kube-apiserver.pid").read_text()), signal.SIGKILL)
    time.sleep(8)  # the API server stays down for a while
    subprocess.run([str(Path(__file__).resolve().parents[2] / "hack/cluster/up.sh")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    final = wait_final(colony, process.processid, timeout=120)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert log_text(colony, process.processid).splitlines() == [f"line {i}" for i in range(120)]
    # And the operator still serves new work.
    after = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    assert wait_final(colony, after.processid).state == ProcessState.SUCCESS
