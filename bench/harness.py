"""What the benchmarks share: a cluster, a Colonies server, the operator (from this tree or another one, for
an old-versus-new comparison in the same run), ColoniesExecutors, Jobs created directly, and the operator
process's CPU, memory and thread figures read from /proc."""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from kubernetes import client, config, watch

from colonies_operator.colonies import Process
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.jobs import build_job
from colonies_operator.core.names import GROUP, JOB_FINALIZER, PLURAL, VERSION
from colonies_operator.core.plan import plan_job
from devtools.colonies_server import Colony, ColoniesServer

REPO = Path(__file__).resolve().parents[1]

IMAGE = "busybox:1.35"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
API_WORKERS = 16  # threads creating objects at once (and the Kubernetes client's connection pool)


# -- arguments and the cluster ------------------------------------------------------------------------

def arguments(description: str, **options: tuple[Any, str]) -> argparse.Namespace:
    """The command line: `--NAME value` for every option (default, help), plus --operator-src and --kubeconfig."""
    parser = argparse.ArgumentParser(description=description)
    for name, (default, help_text) in options.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                            help=f"{help_text} (default {default})")
    parser.add_argument("--operator-src", metavar="DIR", help="run the operator from this source tree (its "
                        "operator/ directory), e.g. a worktree of an older commit; default: this tree")
    parser.add_argument("--kubeconfig", help="default: KUBECONFIG, else the local cluster (hack/cluster/up.sh)")
    return parser.parse_args()


def kubeconfig_path(given: str | None = None) -> str:
    """The kubeconfig given, KUBECONFIG, or the local cluster's (started if needed)."""
    return given or os.environ.get("KUBECONFIG") or subprocess.run(
        [str(REPO / "hack/cluster/up.sh")], check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]


@dataclasses.dataclass
class Kube:
    kubeconfig: str
    core: client.CoreV1Api
    batch: client.BatchV1Api
    custom: client.CustomObjectsApi

    def kubectl(self, *args: str, check: bool = True) -> None:
        subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], check=check, stdout=subprocess.DEVNULL,
                       stderr=None if check else subprocess.DEVNULL)


def kube(kubeconfig: str | None = None) -> Kube:
    """Clients with a connection pool big enough for API_WORKERS threads; the CRD applied."""
    path = kubeconfig_path(kubeconfig)
    configuration = client.Configuration()
    config.load_kube_config(path, client_configuration=configuration)
    configuration.connection_pool_maxsize = API_WORKERS * 2
    api = client.ApiClient(configuration)
    client.Configuration.set_default(configuration)  # for code that builds its own API objects
    result = Kube(path, client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api))
    result.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds/coloniesexecutor.yaml"))
    result.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}")
    return result


@contextlib.contextmanager
def bench_namespace(k: Kube, name: str) -> Iterator[str]:
    """A fresh namespace (an old one of that name is deleted first); deleted afterwards, with whatever
    finalizers the operator left on its Jobs and executors removed so nothing holds the deletion."""
    k.kubectl("delete", "namespace", name, "--ignore-not-found", "--timeout=900s")
    k.core.create_namespace({"metadata": {"name": name}})
    try:
        wait_until(lambda: exists(lambda: k.core.read_namespaced_service_account("default", name)), 60,
                   "the namespace's default ServiceAccount")
        yield name
    finally:
        strip_finalizers(k, name)
        k.kubectl("delete", "namespace", name, "--wait=false", check=False)


def strip_finalizers(k: Kube, namespace: str) -> None:
    try:
        for executor in k.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
            if executor["metadata"].get("finalizers"):
                k.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                        executor["metadata"]["name"],
                                                        {"metadata": {"finalizers": None}})
        held = [j.metadata.name for j in k.batch.list_namespaced_job(namespace).items
                if JOB_FINALIZER in (j.metadata.finalizers or [])]
        in_parallel(lambda name: k.batch.patch_namespaced_job(name, namespace, {"metadata": {"finalizers": None}}),
                    held)
    except client.ApiException as err:
        print(f"(cleanup of namespace {namespace}: {err.status} {err.reason})", file=sys.stderr)


def exists(read: Callable[[], Any]) -> bool:
    try:
        read()
        return True
    except client.ApiException as err:
        if err.status == 404:
            return False
        raise


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
    return result


def in_parallel(call: Callable[[Any], Any], items: Iterable[Any], workers: int = API_WORKERS) -> list[Any]:
    """call(item) for every item, `workers` at a time; the results in order (the first error is raised)."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(call, items))


# -- the operator ---------------------------------------------------------------------------------------

def source_label(operator_src: str | None) -> str:
    """Which operator runs: this tree or the one given, with its commit when git can tell."""
    tree = Path(operator_src).resolve() if operator_src else REPO
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True).stdout.strip()
    return f"{'this tree' if not operator_src else operator_src}{f' (commit {commit})' if commit else ''}"


def operator_pythonpath(operator_src: str | None) -> str:
    tree = Path(operator_src).resolve() if operator_src else REPO
    if not (tree / "operator" / "colonies_operator").is_dir():
        raise SystemExit(f"--operator-src {operator_src}: no operator/colonies_operator in it")
    return str(tree / "operator")


# The allocator the image runs the operator with (Dockerfile; operator/colonies_operator/heap.py says why).
OPERATOR_ENV = {"PYTHONMALLOC": "malloc"}


def start_operator(k: Kube, namespaces: list[str], operator_src: str | None = None,
                   extra_args: Iterable[str] = (), *, restart: bool = False) -> subprocess.Popen:
    """`colonies-operator run` watching the namespaces, from this tree or `operator_src`, with `extra_args`; its
    log goes to a file in the temporary directory, named after the first namespace (a restart appends to it)."""
    log_path = Path(tempfile.gettempdir()) / f"colonies-operator-{namespaces[0]}.log"
    command = [sys.executable, "-m", "colonies_operator.cli", "run"]
    for namespace in namespaces:
        command += ["-n", namespace]
    command += list(extra_args)
    env = dict(os.environ, KUBECONFIG=k.kubeconfig, PYTHONPATH=operator_pythonpath(operator_src),
               PYTHONUNBUFFERED="1", **OPERATOR_ENV)
    print(f"operator: {source_label(operator_src)}; its log: {log_path}", flush=True)
    with open(log_path, "a" if restart else "w") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_operator(operator: subprocess.Popen) -> None:
    if operator.poll() is None:
        operator.terminate()
        try:
            operator.wait(60)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()


def key_secret(k: Kube, namespace: str, colony: Colony, name: str = "key") -> str:
    k.core.create_namespaced_secret(namespace, {"metadata": {"name": name},
                                                "stringData": {"colonyPrvKey": colony.colony_prvkey}})
    return name


def create_executor(k: Kube, namespace: str, name: str, server: ColoniesServer, colony: Colony, secret: str,
                    **spec: Any) -> None:
    k.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ColoniesExecutor", "metadata": {"name": name},
        "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": colony.name,
                 "credentials": {"colonyKeySecret": {"name": secret}}, **spec}})


def ready_executors(k: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    """The ColoniesExecutors of the namespace that are Ready, by name."""
    ready = {}
    for executor in k.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        conditions = (executor.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready[executor["metadata"]["name"]] = executor
    return ready


def wait_ready(k: Kube, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    return wait_until(lambda: ready_executors(k, namespace).get(name), timeout,
                      f"ColoniesExecutor {namespace}/{name} Ready", interval=0.1)


@dataclasses.dataclass
class Setup:
    kube: Kube
    namespace: str
    server: ColoniesServer
    colony: Colony
    operator: subprocess.Popen

    @property
    def executor(self) -> dict[str, Any]:
        return self.kube.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, "bench")


@contextlib.contextmanager
def colonies_server() -> Iterator[tuple[ColoniesServer, Colony]]:
    server = ColoniesServer().start()
    try:
        yield server, server.new_colony()
    finally:
        server.close()


@contextlib.contextmanager
def operator_serving(namespace: str, operator_src: str | None = None, kubeconfig: str | None = None,
                     extra_args: Iterable[str] = (), **spec: Any) -> Iterator[Setup]:
    """A fresh namespace with a Ready ColoniesExecutor named "bench" served by the operator (run with
    `extra_args`); everything is removed afterwards. A benchmark may replace `setup.operator` (a restart)."""
    k = kube(kubeconfig)
    with bench_namespace(k, namespace), colonies_server() as (server, colony):
        create_executor(k, namespace, "bench", server, colony, key_secret(k, namespace, colony), **spec)
        setup = Setup(k, namespace, server, colony, start_operator(k, [namespace], operator_src, extra_args))
        try:
            wait_ready(k, namespace, "bench")
            yield setup
        finally:
            stop_operator(setup.operator)


# -- processes and Jobs ---------------------------------------------------------------------------------

def trivial_spec(colony: Colony, cmd: str, **conditions: Any) -> dict[str, Any]:
    """A process running `cmd` in busybox. The walltime (the Job's activeDeadlineSeconds) is generous: on a
    loaded cluster a pod may start a minute after its Job, and a benchmark measures time, not deadlines."""
    return {"funcname": "execute", "kwargs": {"docker-image": IMAGE, "cmd": cmd},
            "conditions": {"colonyname": colony.name, "executortype": "container-executor", "nodes": 1,
                           "processespernode": 1, "cpu": "100m", "mem": "64Mi", "walltime": 600, **conditions},
            "maxwaittime": -1, "maxexectime": -1, "maxretries": 0}


def operator_job(namespace: str, spec: dict[str, Any], process_id: str, executor_id: str,
                 executor_name: str = "bench") -> dict[str, Any]:
    """The Job the operator of this tree makes for one attempt of a process with this function spec."""
    process = Process.from_dict({"processid": process_id, "spec": spec})
    executor_config = config_from_spec({"server": {"host": "unused", "port": 1}, "colonyName": "unused",
                                        "credentials": {"colonyKeySecret": {"name": "unused"}}},
                                       namespace=namespace, name=executor_name)
    return build_job(process, plan_job(process, executor_config), executor_config, executor_id)


def direct_job(namespace: str, name: str, spec: dict[str, Any], label: str) -> dict[str, Any]:
    """The same Job the operator makes for `spec` (image, command, resources, pod settings), with none of the
    operator's labels, annotations or finalizer: what a user would create by hand. Labelled bench=<label>."""
    job = operator_job(namespace, spec, secrets.token_hex(32), secrets.token_hex(32))
    job["metadata"] = {"name": name, "namespace": namespace, "labels": {"bench": label}}
    job["spec"]["template"]["metadata"] = {"labels": {"bench": label}}
    return job


def job_finished(job: Any) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or []))


def job_failed(job: Any) -> bool:
    return any(c.type == "Failed" and c.status == "True" for c in (job.status.conditions or []))


def watch_jobs_finished(k: Kube, namespace: str, label: str, count: int, timeout: float) -> tuple[float, int]:
    """Watches the Jobs labelled bench=<label> until `count` of them finished; returns (the monotonic time the
    last one was seen finished, how many failed)."""
    finished: dict[str, bool] = {}
    deadline = time.monotonic() + timeout
    version = None
    while len(finished) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(finished)} of {count} Jobs finished within {timeout:g}s")
        if version is None:
            listed = k.batch.list_namespaced_job(namespace, label_selector=f"bench={label}")
            for job in listed.items:
                if job_finished(job):
                    finished[job.metadata.name] = job_failed(job)
            version = listed.metadata.resource_version
            continue
        w = watch.Watch()
        try:
            for event in w.stream(k.batch.list_namespaced_job, namespace, label_selector=f"bench={label}",
                                  resource_version=version, timeout_seconds=30):
                job = event["object"]
                version = job.metadata.resource_version
                if job_finished(job):
                    finished[job.metadata.name] = job_failed(job)
                    if len(finished) >= count:
                        w.stop()
                        break
        except client.ApiException as err:
            if err.status != 410:
                raise
            version = None
    return time.monotonic(), sum(finished.values())


def watch_in_thread(list_call: Callable[..., Any], namespace: str, on_object: Callable[[Any, float], None],
                    name: str) -> None:
    """Calls `on_object(object, time.monotonic())` for every watch event of the namespace's objects of one kind,
    from a daemon thread, for as long as the benchmark runs."""
    def run() -> None:
        version = None
        while True:
            try:
                for event in watch.Watch().stream(list_call, namespace, resource_version=version, timeout_seconds=60):
                    version = event["object"].metadata.resource_version
                    on_object(event["object"], time.monotonic())
            except client.ApiException as err:
                if err.status == 410:
                    version = None
            except Exception:  # the namespace is going, or the API server restarts: try again
                time.sleep(1)
    threading.Thread(target=run, name=name, daemon=True).start()


class JobClock:
    """A watch of the namespace's Jobs in a thread: when each Job was first seen, and first seen finished
    (time.monotonic()), by name."""

    def __init__(self, k: Kube, namespace: str) -> None:
        self.created: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        watch_in_thread(k.batch.list_namespaced_job, namespace, self._note, "job-clock")

    def _note(self, job: Any, now: float) -> None:
        self.created.setdefault(job.metadata.name, now)
        if job_finished(job):
            self.finished.setdefault(job.metadata.name, now)


POD_PHASES = ("pod created", "scheduled", "started", "exited", "pod finished")


class PodClock:
    """A watch of the namespace's pods in a thread: when the pod of each Job (by the Job's name) was first seen
    created, bound to a node, with its container running, with its container terminated, and Succeeded or
    Failed (time.monotonic()). Tells where the time between a Job's creation and its completion goes."""

    def __init__(self, k: Kube, namespace: str) -> None:
        self.seen: dict[str, dict[str, float]] = {}
        watch_in_thread(k.core.list_namespaced_pod, namespace, self._note, "pod-clock")

    def _note(self, pod: Any, now: float) -> None:
        job = (pod.metadata.labels or {}).get("batch.kubernetes.io/job-name")
        if not job:
            return
        seen = self.seen.setdefault(job, {})
        seen.setdefault("pod created", now)
        if pod.spec.node_name:
            seen.setdefault("scheduled", now)
        for status in pod.status.container_statuses or []:
            if status.state.running or status.state.terminated:
                seen.setdefault("started", now)
            if status.state.terminated:
                seen.setdefault("exited", now)
        if pod.status.phase in ("Succeeded", "Failed"):
            seen.setdefault("pod finished", now)


def delete_jobs(k: Kube, namespace: str, label: str, timeout: float = 300) -> None:
    """Deletes the Jobs labelled bench=<label> and waits until their pods are gone."""
    k.batch.delete_collection_namespaced_job(namespace, label_selector=f"bench={label}",
                                             propagation_policy="Background")
    wait_until(lambda: not k.core.list_namespaced_pod(namespace, label_selector=f"bench={label}").items, timeout,
               f"the pods of the Jobs labelled bench={label} to go", interval=1)


# -- the operator process's figures --------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def status_mib(pid: int, key: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS, VmHWM: the peak RSS, ...) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    return status_mib(pid, "VmRSS")


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@dataclasses.dataclass
class Usage:
    """The process's mean CPU (% of one core) over a window, and its RSS and threads (medians of samples)."""

    cpu_percent: float
    rss_mib: float
    threads: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.cpu_percent:6.2f} % of a core, {self.rss_mib:6.1f} MiB RSS, {self.threads:3d} threads"


def measure(pid: int, seconds: float) -> Usage:
    """Watches the process for `seconds`: CPU from utime+stime at both ends, RSS and threads sampled each second."""
    rss, threads = [], []
    started, cpu_before = time.monotonic(), cpu_seconds(pid)
    while (elapsed := time.monotonic() - started) < seconds:
        rss.append(rss_mib(pid))
        threads.append(thread_count(pid))
        time.sleep(min(1.0, max(0.0, seconds - elapsed)))
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu_before
    return Usage(100 * cpu / elapsed, statistics.median(rss), int(statistics.median(threads)), elapsed)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator else "n/a"
