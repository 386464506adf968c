#!/usr/bin/env python3
"""Scale: N processes submitted at once to Colonies, run by the operator as Jobs on M fake nodes (kwok), next
to the same N Jobs created directly by a client as fast as it can, in the same run on the same nodes. Not a
test: it prints figures, and exits non-zero if a process was lost, duplicated or did not succeed.

Figures: processes/s from the first submit to the last SUCCESS (and Jobs/s from the first create to the last
Complete for the direct client), the time to the last SUCCESS, the peak number of pods running at once, the
operator's peak RSS and mean CPU during the burst and once idle again, and the Colonies RPCs and Kubernetes
API requests the operator made (from its own metrics, when it exports them).

With --gpu, the GPU variant instead: processes ask for 1-8 GPUs of a model (nvidia-a100 nodes have 8, nvidia-t4
nodes 4; hack/cluster/kwok.sh), plus a few that fit nowhere (8 nvidia-t4); it checks that every pod ran on a
node of its model with room for it, and that the misfits were never scheduled and failed as unschedulable.

usage: python bench/scale.py [--processes 2000] [--nodes 200] [--seconds 30] [--gpu] ...
       (KUBECONFIG, or the local cluster started with hack/cluster/up.sh; fake nodes are removed at the end)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from harness import OPERATOR_ENV, REPO, cpu_seconds, exists, kubeconfig_path, rss_mib, status_mib, wait_until
from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from colonies_operator.colonies import ColoniesError, ProcessState
from devtools.colonies_client import ColoniesClient
from devtools.colonies_server import ColoniesServer
from devtools.kube import delete_namespace
from devtools.kwok import (FAKE_NODE_SELECTOR, FAKE_NODE_TOLERATION, GPU_MODEL_LABEL, GPU_MODELS,
                                 kwok_sh)

IMAGE = "busybox:1.35"
MEMORY = "64Mi"
GPU = "nvidia.com/gpu"
RPC_METRIC = "colonies_operator_colonies_rpcs"
KUBE_METRIC = "colonies_operator_kube_requests"
NOT_EXPORTED = "n/a (not exported by this operator version)"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- watching pods and Jobs ----------------------------------------------------------------------------------


class PodWatch(threading.Thread):
    """Counts the namespace's pods in phase Running through one watch; remembers the peak."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True, name=f"pods-{namespace}")
        self.core, self.namespace = client.CoreV1Api(api), namespace
        self.running: set[str] = set()
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                listed = self.core.list_namespaced_pod(self.namespace)
                self.running = {p.metadata.name for p in listed.items if p.status.phase == "Running"}
                self.peak = max(self.peak, len(self.running))
                stream = watch.Watch().stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=60,
                                              resource_version=listed.metadata.resource_version)
                for event in stream:
                    pod = event["object"]
                    if event["type"] != "DELETED" and pod.status.phase == "Running":
                        self.running.add(pod.metadata.name)
                    else:
                        self.running.discard(pod.metadata.name)
                    self.peak = max(self.peak, len(self.running))
                    if self.stopped.is_set():
                        return
            except Exception as err:  # an expired resource version or a broken stream: list again
                log(f"pod watch: {err!r}; listing again")
                time.sleep(1)


class JobWatch(threading.Thread):
    """Records when each Job of the namespace was seen Complete or Failed."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True, name=f"jobs-{namespace}")
        self.batch, self.namespace = client.BatchV1Api(api), namespace
        self.finished: dict[str, tuple[str, float]] = {}
        self.stopped = threading.Event()

    def _see(self, job: client.V1Job) -> None:
        for condition in job.status.conditions or []:
            if condition.type in ("Complete", "Failed") and condition.status == "True":
                self.finished.setdefault(job.metadata.name, (condition.type, time.time()))

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                listed = self.batch.list_namespaced_job(self.namespace)
                for job in listed.items:
                    self._see(job)
                for event in watch.Watch().stream(self.batch.list_namespaced_job, self.namespace, timeout_seconds=60,
                                                  resource_version=listed.metadata.resource_version):
                    self._see(event["object"])
                    if self.stopped.is_set():
                        return
            except Exception as err:
                log(f"job watch: {err!r}; listing again")
                time.sleep(1)


# -- the operator process: CPU, memory, metrics --------------------------------------------------------------


def scrape(port: int) -> dict[str, dict[tuple, float]] | None:
    """Counter samples by metric family and label set, or None when the metrics endpoint does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except OSError:
        return None
    families: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total") or family.type == "gauge":
                families.setdefault(family.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return families


def apiserver_log_requests(kubeconfig: str) -> float | None:
    """pods/log requests the API server has answered (all clients; in the operator's burst, the operator's)."""
    try:
        text = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"], check=True,
                              capture_output=True, text=True, timeout=60).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "apiserver_request":
            total += sum(s.value for s in family.samples if s.name == "apiserver_request_total"
                         and s.labels.get("resource") == "pods" and s.labels.get("subresource") == "log")
    return total


def counter_delta(before: dict | None, after: dict | None, name: str) -> dict[tuple, float] | None:
    if not after or name not in after:
        return None
    old = (before or {}).get(name, {})
    return {labels: value - old.get(labels, 0.0) for labels, value in after[name].items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- what runs -----------------------------------------------------------------------------------------------


def command_for(seconds: int) -> str:
    return f"sleep {seconds}; exit 0"


def gpu_requests(count: int, misfits: int) -> list[tuple[str, int]]:
    """(model, GPUs) per process: 1-8 nvidia-a100 and 1-4 nvidia-t4 in turn, then the misfits (8 nvidia-t4)."""
    a100, t4 = GPU_MODELS["nvidia-a100"], GPU_MODELS["nvidia-t4"]
    wanted = [("nvidia-a100", 1 + (i // 2) % a100) if i % 2 == 0 else ("nvidia-t4", 1 + (i // 2) % t4)
              for i in range(count)]
    return wanted + [("nvidia-t4", a100)] * misfits


def direct_job(name: str, cmd: str, cpu: str) -> dict[str, Any]:
    """The Job the operator would create for the same process (jobs.py), minus its labels."""
    resources = {"cpu": cpu, "memory": MEMORY}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "completionMode": "Indexed", "completions": 1, "parallelism": 1,
                     "template": {"spec": {
                         "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
                         "tolerations": [FAKE_NODE_TOLERATION], "nodeSelector": FAKE_NODE_SELECTOR,
                         "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                         "command": ["sh", "-c", cmd],
                                         "resources": {"requests": resources, "limits": resources}}]}}}}


def new_namespace(api: client.ApiClient, prefix: str) -> str:
    core = client.CoreV1Api(api)
    name = f"{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name}})
    wait_until(lambda: exists(lambda: core.read_namespaced_service_account("default", name)), 60,
               f"the default ServiceAccount of {name}", 0.2)
    return name


def job_to_running(api: client.ApiClient, namespace: str) -> tuple[float, float]:
    """Median and max seconds from a Job's creation to its pod's start (the cluster's share: Job controller,
    scheduler, kwok), at the API's one-second precision."""
    jobs = {j.metadata.name: j.metadata.creation_timestamp for j in client.BatchV1Api(api).list_namespaced_job(
        namespace).items}
    delays = sorted((p.status.start_time - jobs[p.metadata.labels["job-name"]]).total_seconds()
                    for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items
                    if p.status.start_time and p.metadata.labels.get("job-name") in jobs)
    return (delays[len(delays) // 2], delays[-1]) if delays else (math.nan, math.nan)


def start_colonies_server() -> ColoniesServer:
    """A Colonies server; tried again if another test run took the same network namespace at the same moment."""
    for attempt in range(5):
        try:
            return ColoniesServer().start()
        except subprocess.CalledProcessError as err:
            log(f"starting the Colonies server failed ({err}); trying again")
            time.sleep(1 + attempt + secrets.randbelow(1000) / 1000)
    return ColoniesServer().start()


# -- the direct client ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class DirectResult:
    count: int
    create_seconds: float
    to_last_complete: float
    peak_running: int
    failed: int
    job_to_running: tuple[float, float]


def run_direct(api: client.ApiClient, args: argparse.Namespace) -> DirectResult:
    namespace = new_namespace(api, "bench-scale-direct")
    pods, jobs = PodWatch(api, namespace), JobWatch(api, namespace)
    pods.start()
    jobs.start()
    try:
        body = [direct_job(f"direct-{i}", command_for(args.seconds), args.cpu) for i in range(args.processes)]
        local = threading.local()

        def create(job: dict[str, Any]) -> None:
            if not hasattr(local, "batch"):
                local.batch = client.BatchV1Api(config.new_client_from_config(args.kubeconfig))
            local.batch.create_namespaced_job(namespace, job)

        log(f"direct: creating {args.processes} Jobs with {args.threads} threads")
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(create, body))
        created = time.time()
        log(f"direct: created in {created - started:.1f} s; waiting for every Job to finish")
        wait_until(lambda: len(jobs.finished) >= args.processes, args.timeout,
                   f"{args.processes} Jobs to finish (now {len(jobs.finished)})", 0.5)
        last = max(t for _, t in jobs.finished.values())
        failed = sum(1 for kind, _ in jobs.finished.values() if kind != "Complete")
        return DirectResult(args.processes, created - started, last - started, pods.peak, failed,
                            job_to_running(api, namespace))
    finally:
        pods.stopped.set()
        jobs.stopped.set()
        log(f"direct: deleting namespace {namespace}")
        delete_namespace(api, namespace, timeout=600)


# -- through the operator ------------------------------------------------------------------------------------


@dataclasses.dataclass
class OperatorResult:
    count: int
    executors: int
    submit_seconds: float
    to_last_success: float
    states: Counter
    lost: list[str]
    duplicated: list[str]
    peak_running: int
    peak_rss_mib: float
    burst_cpu_cores: float
    idle_rss_mib: float
    idle_cpu_percent: float
    idle_seconds: float
    rpcs: dict[tuple, float] | None
    kube_requests: dict[tuple, float] | None
    burst_seconds: float
    gpu_report: list[str]
    job_to_running: tuple[float, float]
    log_requests: float | None


def executor_cap() -> int:
    crd = yaml.safe_load((REPO / "crds" / "coloniesexecutor.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return int(schema["maxConcurrentProcesses"].get("maximum", 1000))


def run_operator(api: client.ApiClient, args: argparse.Namespace) -> OperatorResult:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    kubectl = ["kubectl", "--kubeconfig", args.kubeconfig]
    subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-f",
                              str(REPO / "crds" / "coloniesexecutor.yaml")], check=True, stdout=subprocess.DEVNULL)
    namespace = new_namespace(api, "bench-scale-operator")
    server = operator = None
    pods = PodWatch(api, namespace)
    try:
        server = start_colonies_server()
        colony = server.new_colony()
        core.create_namespaced_secret(namespace, {"metadata": {"name": "key"},
                                                  "stringData": {"colonyPrvKey": colony.colony_prvkey}})
        wanted = gpu_requests(args.processes, args.gpu_misfits) if args.gpu else [("", 0)] * args.processes
        # One executor takes at most the CRD's maxConcurrentProcesses at once: as many as needed for all at once.
        cap = executor_cap()
        executors = math.ceil(len(wanted) / cap)
        jobs_spec: dict[str, Any] = {"tolerations": [FAKE_NODE_TOLERATION], "nodeSelector": FAKE_NODE_SELECTOR}
        if args.gpu:
            jobs_spec["pendingTimeoutSeconds"] = args.pending_timeout
        for index in range(executors):
            custom.create_namespaced_custom_object("colonyos.io", "v1alpha1", namespace, "coloniesexecutors", {
                "apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor",
                "metadata": {"name": f"bench-{index}"},
                "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": colony.name,
                         "credentials": {"colonyKeySecret": {"name": "key"}},
                         "maxConcurrentProcesses": math.ceil(len(wanted) / executors), "jobs": jobs_spec}})
        port = free_port()
        log_path = Path(tempfile.gettempdir()) / f"colonies-operator-{namespace}.log"
        log(f"operator: starting it (log {log_path}, metrics on 127.0.0.1:{port}), {executors} executor(s)")
        operator = subprocess.Popen(
            [sys.executable, "-m", "colonies_operator.cli", "run", "-n", namespace, "--metrics-port", str(port),
             "--metrics-address", "127.0.0.1"],
            env=dict(os.environ, KUBECONFIG=args.kubeconfig, **OPERATOR_ENV), stdout=open(log_path, "w"),
            stderr=subprocess.STDOUT)
        for index in range(executors):
            subprocess.run(kubectl + ["-n", namespace, "wait", "--for=condition=Ready", "--timeout=180s",
                                      f"coloniesexecutor/bench-{index}"], check=True, stdout=subprocess.DEVNULL)
        pods.start()
        time.sleep(2)  # the first assign calls are out
        before = scrape(port)
        logs_before = apiserver_log_requests(args.kubeconfig)
        cpu_before = cpu_seconds(operator.pid)

        specs = []
        for model, gpus in wanted:
            conditions: dict[str, Any] = {"colonyname": colony.name, "executortype": "container-executor",
                                          "nodes": 1, "processespernode": 1, "cpu": args.cpu, "mem": MEMORY,
                                          "walltime": args.seconds * 20 + 600}
            if gpus:
                conditions["gpu"] = {"count": gpus, "name": model}
            specs.append({"funcname": "execute", "kwargs": {"docker-image": IMAGE, "cmd": command_for(args.seconds)},
                          "conditions": conditions, "maxwaittime": -1, "maxexectime": -1, "maxretries": 0})
        local = threading.local()

        def submit(spec: dict[str, Any]) -> str:
            if not hasattr(local, "client"):
                local.client = ColoniesClient(server.host, server.port)
            return local.client.submit(spec, colony.user_prvkey).processid

        log(f"operator: submitting {len(specs)} processes with {args.threads} threads")
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            process_ids = list(pool.map(submit, specs))
        submitted = time.time()
        log(f"operator: submitted in {submitted - started:.1f} s; waiting for every process to finish")

        def finished() -> bool:
            try:
                stats = server.client.colony_stats(colony.name, colony.user_prvkey)
            except ColoniesError as err:  # a server too busy to answer in time: ask again
                log(f"operator: Colonies did not answer ({err})")
                return False
            done = stats.get("successfulprocesses", 0) + stats.get("failedprocesses", 0)
            if time.monotonic() - finished.last_report > 15:
                finished.last_report = time.monotonic()
                log(f"operator: {stats.get('successfulprocesses', 0)} succeeded, {stats.get('failedprocesses', 0)} "
                    f"failed, {stats.get('runningprocesses', 0)} running, {stats.get('waitingprocesses', 0)} waiting; "
                    f"{len(pods.running)} pods running; operator RSS "
                    f"{rss_mib(operator.pid):.0f} MiB")
            return done >= len(specs)
        finished.last_report = time.monotonic()
        wait_until(finished, args.timeout, f"{len(specs)} processes to finish", 0.5)
        burst_end = time.time()
        cpu_after = cpu_seconds(operator.pid)
        peak_rss = status_mib(operator.pid, "VmHWM")
        after = scrape(port)
        logs_after = apiserver_log_requests(args.kubeconfig)
        log_requests = None if logs_before is None or logs_after is None else logs_after - logs_before

        log("operator: reading every process and Job")
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            processes = list(pool.map(lambda pid: server.client.get_process(pid, colony.user_prvkey), process_ids))
        states = Counter(p.state_name for p in processes)
        endtimes = [p.endtime.timestamp() for p in processes if p.state == ProcessState.SUCCESS and p.endtime]
        last_success = max(endtimes) if endtimes else burst_end
        jobs = client.BatchV1Api(api).list_namespaced_job(namespace).items
        jobs_per_process = Counter(j.metadata.annotations.get("colonyos.io/process-id") for j in jobs)
        expected_success = set(process_ids[:args.processes]) if args.gpu else set(process_ids)
        lost = [p.processid for p in processes
                if p.processid in expected_success and p.state != ProcessState.SUCCESS]
        duplicated = [pid for pid, n in jobs_per_process.items() if n > 1]
        gpu_report = gpu_checks(api, namespace, processes, wanted, args) if args.gpu else []
        cluster_delay = job_to_running(api, namespace)

        log(f"operator: idle: letting it settle {args.idle_settle:g} s, then measuring {args.idle_seconds:g} s")
        time.sleep(args.idle_settle)
        idle_cpu_before, idle_started = cpu_seconds(operator.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_cpu = (cpu_seconds(operator.pid) - idle_cpu_before) / (time.monotonic() - idle_started)
        idle_rss = rss_mib(operator.pid)
        burst_seconds = burst_end - started
        return OperatorResult(
            count=len(specs), executors=executors, submit_seconds=submitted - started,
            to_last_success=last_success - started, states=states, lost=lost, duplicated=duplicated,
            peak_running=pods.peak, peak_rss_mib=peak_rss, burst_cpu_cores=(cpu_after - cpu_before) / burst_seconds,
            idle_rss_mib=idle_rss, idle_cpu_percent=100 * idle_cpu, idle_seconds=args.idle_seconds,
            rpcs=counter_delta(before, after, RPC_METRIC), kube_requests=counter_delta(before, after, KUBE_METRIC),
            burst_seconds=burst_seconds, gpu_report=gpu_report, job_to_running=cluster_delay,
            log_requests=log_requests)
    finally:
        pods.stopped.set()
        if operator:
            operator.terminate()
            try:
                operator.wait(60)
            except subprocess.TimeoutExpired:
                operator.kill()
        if server:
            server.close()
        log(f"operator: deleting namespace {namespace}")
        delete_namespace(api, namespace, timeout=600)


def gpu_checks(api: client.ApiClient, namespace: str, processes: list, wanted: list[tuple[str, int]],
               args: argparse.Namespace) -> list[str]:
    """Every pod on a node of its model with room for it at every moment; the misfits never scheduled."""
    core = client.CoreV1Api(api)
    nodes = {n.metadata.name: n for n in core.list_node(label_selector="type=kwok").items}
    pods = core.list_namespaced_pod(namespace).items
    by_process = {p.metadata.annotations.get("colonyos.io/process-id"): p for p in pods}
    problems, events = [], []
    misfits = {p.processid for p, (model, gpus) in zip(processes, wanted) if gpus > GPU_MODELS[model]}
    for process, (model, gpus) in zip(processes, wanted):
        pod = by_process.get(process.processid)
        if process.processid in misfits:
            if pod is not None and pod.spec.node_name:
                problems.append(f"{process.processid[:12]} ({gpus} x {model}) was scheduled on {pod.spec.node_name}")
            if process.state != ProcessState.FAILED:
                problems.append(f"{process.processid[:12]} ({gpus} x {model}) ended {process.state_name}: "
                                f"{process.errors}")
            continue
        if pod is None or not pod.spec.node_name:
            problems.append(f"{process.processid[:12]} ({gpus} x {model}) never got a node ({process.state_name})")
            continue
        node = nodes[pod.spec.node_name]
        if node.metadata.labels.get(GPU_MODEL_LABEL) != model:
            problems.append(f"{pod.metadata.name} ({gpus} x {model}) ran on {node.metadata.name}, "
                            f"a {node.metadata.labels.get(GPU_MODEL_LABEL, 'GPU-less')} node")
        terminated = pod.status.container_statuses[0].state.terminated if pod.status.container_statuses else None
        if terminated:
            events.append((terminated.started_at.timestamp(), 1, node.metadata.name, gpus))
            events.append((terminated.finished_at.timestamp(), 0, node.metadata.name, -gpus))
    in_use: Counter = Counter()
    peak: Counter = Counter()
    for _, _, node, change in sorted(events):  # at equal times, ends (0) before starts (1)
        in_use[node] += change
        peak[node] = max(peak[node], in_use[node])
        capacity = int(nodes[node].status.capacity.get(GPU, "0"))
        if in_use[node] > capacity:
            problems.append(f"{node}: {in_use[node]} GPUs in use, capacity {capacity}")
    busiest = max(peak.values(), default=0)
    misfit_errors = next((p.errors for p in processes if p.processid in misfits), [])
    return [f"{len(wanted) - len(misfits)} fitting processes, {len(misfits)} that fit nowhere (8 x nvidia-t4); "
            f"most GPUs in use at once on one node: {busiest}",
            f"a misfit's errors: {' '.join(misfit_errors)[:300]}",
            f"GPU placement problems: {len(problems)}"] + [f"  {p}" for p in problems[:20]]


# -- the report ----------------------------------------------------------------------------------------------


def per_second(delta: dict[tuple, float] | None, seconds: float, count: int) -> str:
    if delta is None:
        return NOT_EXPORTED
    total = sum(delta.values())
    return f"{total / seconds:.1f}/s, {total / count:.2f} per process ({total:.0f} in all)"


def top_labels(delta: dict[tuple, float] | None, limit: int = 8) -> str:
    if not delta:
        return ""
    ranked = sorted(((v, ",".join(f"{k}={val}" for k, val in labels)) for labels, v in delta.items() if v),
                    reverse=True)[:limit]
    return "; ".join(f"{name}: {value:.0f}" for value, name in ranked)


def direct_line(direct: DirectResult) -> str:
    return (f"  direct Jobs:          created in {direct.create_seconds:.1f} s; last Complete after "
            f"{direct.to_last_complete:.1f} s; {direct.count / direct.to_last_complete:.1f} Jobs/s; peak running "
            f"{direct.peak_running}; failed {direct.failed}; Job created -> pod Running: median "
            f"{direct.job_to_running[0]:.0f} s, max {direct.job_to_running[1]:.0f} s")


def report(args: argparse.Namespace, direct: DirectResult | None, op: OperatorResult) -> int:
    print()
    title = "GPU variant: " if args.gpu else ""
    print(f"{title}{op.count} processes of {args.seconds} s, {args.cpu} CPU each, submitted at once; "
          f"{args.nodes} fake nodes (kwok); {os.cpu_count()} cores; operator with {op.executors} executor(s)")
    rate = op.count / op.to_last_success
    print(f"  through the operator: submitted in {op.submit_seconds:.1f} s; last SUCCESS after "
          f"{op.to_last_success:.1f} s; {rate:.1f} processes/s; peak running {op.peak_running}")
    print(f"  final states: {dict(op.states)}; lost (not SUCCESS): {len(op.lost)}; with more than one Job: "
          f"{len(op.duplicated)}; Job created -> pod Running: median {op.job_to_running[0]:.0f} s, "
          f"max {op.job_to_running[1]:.0f} s")
    if direct:
        print(direct_line(direct))
        print(f"  throughput ratio (operator / direct): {rate / (direct.count / direct.to_last_complete):.2f}")
    print(f"  operator during the burst ({op.burst_seconds:.0f} s): peak RSS {op.peak_rss_mib:.0f} MiB, "
          f"mean CPU {op.burst_cpu_cores:.2f} cores")
    print(f"  operator idle again ({op.idle_seconds:.0f} s, {args.idle_settle:.0f} s after the burst): RSS "
          f"{op.idle_rss_mib:.0f} MiB, CPU {op.idle_cpu_percent:.1f} % of a core")
    print(f"  Colonies RPCs by the operator:   {per_second(op.rpcs, op.burst_seconds, op.count)}")
    if op.rpcs:
        print(f"    {top_labels(op.rpcs)}")
    print(f"  Kubernetes API requests by it:   {per_second(op.kube_requests, op.burst_seconds, op.count)}")
    if op.kube_requests:
        print(f"    {top_labels(op.kube_requests)}")
    if op.log_requests is not None:
        print(f"  pods/log requests the API server answered meanwhile (all clients): {op.log_requests:.0f}, "
              f"{op.log_requests / op.count:.1f} per process (fake nodes serve no log: each one fails)")
    for line in op.gpu_report:
        print(f"  {line}")
    bad = bool(op.lost or op.duplicated or (direct and direct.failed))
    bad = bad or any(line.startswith("GPU placement problems: ") and not line.endswith(": 0") for line in op.gpu_report)
    if bad:
        print("FAILED: processes lost, duplicated or misplaced (see above)")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=200, help="fake nodes (kwok)")
    parser.add_argument("--seconds", type=int, help="how long each process runs (default 30; 10 with --gpu)")
    parser.add_argument("--cpu", default="1000m", help="each process's CPU (default 1000m)")
    parser.add_argument("--gpu", action="store_true", help="the GPU variant (no direct Jobs)")
    parser.add_argument("--gpu-misfits", type=int, default=2, help="GPU processes that fit no node (default 2)")
    parser.add_argument("--pending-timeout", type=int, default=60,
                        help="spec.jobs.pendingTimeoutSeconds in the GPU variant (default 60)")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct Jobs")
    parser.add_argument("--threads", type=int, default=16, help="client threads submitting or creating (default 16)")
    parser.add_argument("--idle-settle", type=float, default=30)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for each burst")
    parser.add_argument("--keep-nodes", action="store_true", help="leave the fake nodes (and kwok) running")
    args = parser.parse_args()
    args.seconds = args.seconds or (10 if args.gpu else 30)
    if args.gpu and args.processes == parser.get_default("processes"):
        args.processes = 2 * args.nodes
    args.kubeconfig = kubeconfig_path()
    api = config.new_client_from_config(args.kubeconfig)
    log(f"adding {args.nodes} fake nodes")
    kwok_sh(args.kubeconfig, "add", str(args.nodes))
    try:
        direct = None if args.gpu or args.no_direct else run_direct(api, args)
        if direct:
            log(direct_line(direct).strip())  # now: should the operator's burst fail, this stays
        op = run_operator(api, args)
    finally:
        if not args.keep_nodes:
            log("removing the fake nodes")
            kwok_sh(args.kubeconfig, "remove")
    return report(args, direct, op)


if __name__ == "__main__":
    sys.exit(main())
