"""End-to-end fixtures: the operator as users run it, on the real cluster and the real Colonies server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client

from colonies_operator.colonies import Process, ProcessState
from devtools.colonies_client import ColoniesClient
from devtools.colonies_server import Colony
from devtools.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "coloniesexecutor.yaml"
GROUP, VERSION, PLURAL = "colonyos.io", "v1alpha1", "coloniesexecutors"
FINAL_STATES = {ProcessState.SUCCESS, ProcessState.FAILED, ProcessState.CANCELLED}


@pytest.fixture(scope="session")
def crd(kube_cluster) -> None:
    """The ColoniesExecutor CRD, applied the way users apply it."""
    subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "apply", "--server-side", "--force-conflicts",
                    "-f", str(CRD_PATH)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "wait", "--for=condition=Established",
                    "--timeout=60s", "crd/coloniesexecutors.colonyos.io"], check=True, stdout=subprocess.DEVNULL)


# Leader election for the tests: an operator restarted after a SIGKILL waits out its predecessor's Lease, so the tests
# use shorter timings than the defaults (15 / 10 / 2 s).
LEASE_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_SECONDS = 8.0, 6.0, 1.0
LEASE_ARGS = ["--lease-duration", str(LEASE_SECONDS), "--renew-deadline", str(RENEW_DEADLINE_SECONDS),
              "--retry-period", str(RETRY_SECONDS)]


class OperatorProcess:
    """`colonies-operator run` in a subprocess, watching one or more namespaces."""

    def __init__(self, kubeconfig: str, namespaces: list[str], log_path: Path, extra_args: list[str] = ()) -> None:
        self.kubeconfig, self.namespaces, self.log_path = kubeconfig, namespaces, log_path
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OperatorProcess":
        command = [sys.executable, "-m", "colonies_operator.cli", "run"]
        for ns in self.namespaces:
            command += ["--namespace", ns]
        command += LEASE_ARGS + self.extra_args
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, PYTHONUNBUFFERED="1", PYTHONMALLOC="malloc")  # as the image
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, as in a node failure or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def operator(kube_cluster, crd, namespace, tmp_path, request) -> Iterator[OperatorProcess]:
    """The operator, watching the test's namespace."""
    running = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
    try:
        yield running
    finally:
        running.stop()
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(f"--- operator log ---\n{running.log_text()[-20000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


class Executors:
    """Creates ColoniesExecutor resources (and their key Secrets) in a namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, colony: Colony) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace, self.colony = namespace, colony

    def create(self, name: str = "cluster", executor_type: str = "container-executor",
               colony: Colony | None = None, **spec: Any) -> dict[str, Any]:
        colony = colony or self.colony
        secret_name = f"{name}-colony-key"
        self.core.create_namespaced_secret(self.namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=secret_name), string_data={"colonyPrvKey": colony.colony_prvkey}))
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ColoniesExecutor",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"server": {"host": colony.server.host, "port": colony.server.port},
                     "colonyName": colony.name, "executorType": executor_type,
                     "credentials": {"colonyKeySecret": {"name": secret_name}}, **spec},
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def create_ready(self, name: str = "cluster", **kwargs: Any) -> dict[str, Any]:
        """Creates the resource and waits until it is Ready; returns it."""
        self.create(name, **kwargs)
        return self.wait_ready(name)

    def get(self, name: str = "cluster") -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        for condition in (self.get(name).get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                return condition
        return None

    def wait_ready(self, name: str = "cluster", timeout: float = 60) -> dict[str, Any]:
        def ready():
            condition = self.condition(name, "Ready")
            return condition if condition and condition["status"] == "True" else None
        wait_for(ready, timeout, 0.5, f"ColoniesExecutor {self.namespace}/{name} Ready "
                 f"(conditions now: {(self.get(name).get('status') or {}).get('conditions')})")
        return self.get(name)


@pytest.fixture
def executors(kube_cluster, crd, namespace, colony) -> Iterator[Executors]:
    with kube_cluster.api_client() as api:
        yield Executors(api, namespace, colony)


@pytest.fixture
def kube_api(kube_cluster) -> Iterator[client.ApiClient]:
    with kube_cluster.api_client() as api:
        yield api


def tutorial_spec(colony: Colony, cmd: str = "echo hello world", executor_type: str = "container-executor",
                  **overrides: Any) -> dict[str, Any]:
    """The Colonies tutorial's spec, as JSON."""
    spec = {
        "funcname": "execute",
        "kwargs": {"docker-image": "busybox:1.35", "cmd": cmd},
        "conditions": {"colonyname": colony.name, "executortype": executor_type, "nodes": 1,
                       "processespernode": 1, "cpu": "100m", "mem": "64Mi", "gpu": {"count": 0}, "walltime": 120},
        "maxwaittime": -1, "maxexectime": 110, "maxretries": 0,
    }
    for key, value in overrides.items():
        if key in ("kwargs", "conditions"):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def wait_final(colony: Colony, process_id: str, timeout: float = 120) -> Process:
    """The process once it is closed. Colonies stores a failed process's state before its errors, so a FAILED one
    is read again until its errors are there too."""
    client_: ColoniesClient = colony.client

    def final() -> Process | None:
        process = client_.get_process(process_id, colony.user_prvkey)
        if process.state not in FINAL_STATES or (process.state == ProcessState.FAILED and not process.errors):
            return None
        return process
    return wait_for(final, timeout, 0.3, f"process {process_id} to finish")


def log_text(colony: Colony, process_id: str) -> str:
    return "".join(e.message for e in colony.client.all_logs(colony.name, process_id, colony.user_prvkey))


def job_names(kube_api: client.ApiClient, namespace: str, process_id: str) -> list[str]:
    """The names of the process's Jobs in the namespace."""
    jobs = client.BatchV1Api(kube_api).list_namespaced_job(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items
    return sorted(j.metadata.name for j in jobs)


def attempt_job(process_id: str, attempt: int) -> re.Pattern:
    """The name of a Job of the process's attempt (the rest of the name is its executor and assignment)."""
    return re.compile(rf"colonies-{process_id[:32]}-{attempt}-[0-9a-f]{{6}}")


def job_of(kube_api: client.ApiClient, namespace: str, process_id: str) -> dict[str, Any]:
    jobs = client.BatchV1Api(kube_api).list_namespaced_job(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}", _preload_content=False)
    items = yaml.safe_load(jobs.data)["items"]
    assert len(items) == 1, f"expected one Job for process {process_id}, found {len(items)}"
    return items[0]
