"""The local demo: cluster, Colonies server, the operator installed with its Helm chart, and the Colonies
tutorial's `echo hello world` submitted with the colonies CLI, end to end.

Run by `make demo`. Each step prints a progress line; the demo removes what it installed at the end, and
stops the cluster too unless KEEP_CLUSTER=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from colonies_operator.colonies import ProcessState
from devtools.colonies_server import ColoniesServer

NAMESPACE = "colonies-demo"
RELEASE = "colonies-operator"
started = time.monotonic()


def step(text: str) -> None:
    print(f"==> [{time.monotonic() - started:5.0f}s] {text}", flush=True)


def run(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"demo: {' '.join(args[:4])} … failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def script(name: str, *args: str) -> str:
    """A hack/ script; its progress goes to the terminal, its last line of output is returned."""
    return subprocess.run([str(REPO / "hack" / name), *args], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip().splitlines()[-1]


def main() -> int:
    if os.environ.get("KUBECONFIG"):
        raise SystemExit("make demo runs on the project's own cluster; unset KUBECONFIG (see the README for "
                         "your own cluster)")
    step("starting the local Kubernetes cluster (hack/cluster/up.sh; the first run builds it)")
    kubeconfig = script("cluster/up.sh")
    kubectl = ("kubectl", "--kubeconfig", kubeconfig)
    step("building the operator image from the Dockerfile (buildah) and loading it into the cluster")
    image = script("load-image.sh", "operator")
    step("building helm from the Go module proxy (cached after the first run)")
    helm = (script("build-helm.sh"), "--kubeconfig", kubeconfig)
    step("starting a Colonies server (private PostgreSQL; a colony and a user with fresh keys)")
    server = ColoniesServer().start()
    installed = False
    try:
        colony = server.new_colony()
        step(f"Colonies server at {server.client.url}, colony {colony.name}")
        step(f"helm install {RELEASE} charts/colonies-operator (image {image})")
        repository, tag = image.rsplit(":", 1)
        run(*helm, "upgrade", "--install", RELEASE, str(REPO / "charts/colonies-operator"), "--namespace", NAMESPACE,
            "--create-namespace", "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never", "--wait", "--timeout", "180s")
        installed = True
        step("creating the colony key Secret and a ColoniesExecutor (examples/executor.yaml's shape)")
        run(*kubectl, "apply", "-f", "-", stdin=run(
            *kubectl, "-n", NAMESPACE, "create", "secret", "generic", "colonies-colony-key",
            f"--from-literal=colonyPrvKey={colony.colony_prvkey}", "--dry-run=client", "-o", "yaml"))
        executor = {"apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor",
                    "metadata": {"name": "demo", "namespace": NAMESPACE},
                    "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": colony.name,
                             "credentials": {"colonyKeySecret": {"name": "colonies-colony-key"}}}}
        run(*kubectl, "apply", "-f", "-", stdin=json.dumps(executor))
        run(*kubectl, "-n", NAMESPACE, "wait", "--for=condition=Ready", "--timeout=120s", "coloniesexecutor/demo")
        print(run(*kubectl, "-n", NAMESPACE, "get", "coloniesexecutors"), end="")
        step("colonies function submit --spec examples/echo.json --follow")
        spec = json.loads((REPO / "examples/echo.json").read_text())
        spec["conditions"]["colonyname"] = colony.name
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(spec, handle)
        result = subprocess.run([server.binary, "function", "submit", "--spec", handle.name, "--follow"],
                                env=colony.cli_env(), capture_output=True, text=True, timeout=180)
        print(result.stdout, end="")
        processes = [p for state in (ProcessState.SUCCESS, ProcessState.FAILED)
                     for p in server.client.get_processes(colony.name, state, colony.user_prvkey)]
        for process in processes:
            logs = "".join(e.message for e in server.client.all_logs(colony.name, process.processid,
                                                                   colony.user_prvkey))
            step(f"process {process.processid[:12]}… is {process.state_name}; its log in Colonies:")
            print(logs, end="")
        ok = bool(processes) and all(p.state == ProcessState.SUCCESS for p in processes)
        step(f"demo {'succeeded' if ok else 'FAILED'}")
        return 0 if ok else 1
    finally:
        if installed:
            step("cleaning up: the ColoniesExecutor, then helm uninstall")
            subprocess.run([*kubectl, "-n", NAMESPACE, "delete", "coloniesexecutor", "demo", "--timeout=60s"],
                           capture_output=True)
            subprocess.run([*helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"], capture_output=True)
            subprocess.run([*kubectl, "delete", "namespace", NAMESPACE, "--wait=false"], capture_output=True)
        server.close()
        if os.environ.get("KEEP_CLUSTER") != "1":
            step("stopping the local cluster (KEEP_CLUSTER=1 keeps it)")
            subprocess.run([str(REPO / "hack/cluster/down.sh")], check=False)


if __name__ == "__main__":
    sys.exit(main())
