"""What the benchmarks share: a cluster, a Colonies server, and the operator serving one ColoniesExecutor."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config  # noqa: E402

from colonies_operator.dev.colonies_server import Colony, ColoniesServer  # noqa: E402


@dataclasses.dataclass
class Setup:
    kubeconfig: str
    server: ColoniesServer
    colony: Colony
    operator: subprocess.Popen


def kubeconfig_path() -> str:
    """KUBECONFIG, or the local cluster (started if needed)."""
    return os.environ.get("KUBECONFIG") or subprocess.run(
        [str(REPO / "hack/cluster/up.sh")], check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def operator_serving(namespace: str, **spec: Any) -> Iterator[Setup]:
    """A fresh namespace with a ready ColoniesExecutor named "bench"; everything is removed afterwards."""
    kubeconfig = kubeconfig_path()
    config.load_kube_config(kubeconfig)
    core, custom = client.CoreV1Api(), client.CustomObjectsApi()
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-f",
                              str(REPO / "crds/coloniesexecutor.yaml")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(kubectl + ["delete", "namespace", namespace, "--ignore-not-found"], check=True,
                   stdout=subprocess.DEVNULL)
    core.create_namespace({"metadata": {"name": namespace}})
    server = ColoniesServer().start()
    operator = None
    try:
        while True:
            try:
                core.read_namespaced_service_account("default", namespace)
                break
            except client.ApiException:
                time.sleep(0.2)
        colony = server.new_colony()
        core.create_namespaced_secret(namespace, {"metadata": {"name": "key"},
                                                  "stringData": {"colonyPrvKey": colony.colony_prvkey}})
        custom.create_namespaced_custom_object("colonyos.io", "v1alpha1", namespace, "coloniesexecutors", {
            "apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor", "metadata": {"name": "bench"},
            "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": colony.name,
                     "credentials": {"colonyKeySecret": {"name": "key"}}, **spec}})
        log = open(Path(tempfile.gettempdir()) / f"colonies-operator-{namespace}.log", "w")
        operator = subprocess.Popen([sys.executable, "-m", "colonies_operator.cli", "run", "-n", namespace],
                                    env=dict(os.environ, KUBECONFIG=kubeconfig), stdout=log, stderr=subprocess.STDOUT)
        subprocess.run(kubectl + ["-n", namespace, "wait", "--for=condition=Ready", "--timeout=120s",
                                  "coloniesexecutor/bench"], check=True, stdout=subprocess.DEVNULL)
        yield Setup(kubeconfig, server, colony, operator)
    finally:
        if operator:
            operator.terminate()
            operator.wait(60)
        server.close()
        subprocess.run(kubectl + ["patch", "-n", namespace, "coloniesexecutor", "bench", "--type", "merge", "-p",
                                  '{"metadata":{"finalizers":null}}'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(kubectl + ["delete", "namespace", namespace, "--wait=false"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def trivial_spec(colony: Colony, cmd: str, **conditions: Any) -> dict[str, Any]:
    return {"funcname": "execute", "kwargs": {"docker-image": "busybox:1.35", "cmd": cmd},
            "conditions": {"colonyname": colony.name, "executortype": "container-executor", "nodes": 1,
                           "processespernode": 1, "cpu": "100m", "mem": "64Mi", "walltime": 60, **conditions},
            "maxwaittime": -1, "maxexectime": -1, "maxretries": 0}
