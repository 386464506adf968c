"""The local demo: cluster, Colonies server, the operator, and the Colonies tutorial's echo, end to end.

Run by `make demo`. Each step prints a progress line; the Colonies server and the operator stop at the
end, and the cluster too unless KEEP_CLUSTER=1.
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
sys.path.insert(0, str(REPO))

from colonies_operator.colonies import ProcessState  # noqa: E402
from tests.fixtures.colonies_server import ColoniesServer  # noqa: E402

NAMESPACE = "colonies-demo"


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], input=stdin, check=True,
                          capture_output=True, text=True).stdout


def main() -> int:
    started = time.monotonic()
    if os.environ.get("KUBECONFIG"):
        kubeconfig, local = os.environ["KUBECONFIG"], False
        step(f"using the cluster in KUBECONFIG ({kubeconfig})")
    else:
        step("starting the local Kubernetes cluster (hack/cluster/up.sh; the first run builds it)")
        kubeconfig, local = subprocess.run([str(REPO / "hack/cluster/up.sh")], check=True, stdout=subprocess.PIPE,
                                           text=True).stdout.strip().splitlines()[-1], True
    step("starting a Colonies server (private PostgreSQL, colony and user with fresh keys)")
    server = ColoniesServer().start()
    operator = None
    try:
        colony = server.new_colony()
        step(f"Colonies {server.client.url}: colony {colony.name}")
        step("applying the ColoniesExecutor CRD")
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds/coloniesexecutor.yaml"))
        kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/coloniesexecutors.colonyos.io")
        kubectl(kubeconfig, "apply", "-f", "-", stdin=kubectl(kubeconfig, "create", "namespace", NAMESPACE,
                                                             "--dry-run=client", "-o", "yaml"))
        step("creating the colony key Secret and a ColoniesExecutor")
        secret = kubectl(kubeconfig, "-n", NAMESPACE, "create", "secret", "generic", "colonies-colony-key",
                         f"--from-literal=colonyPrvKey={colony.colony_prvkey}", "--dry-run=client", "-o", "yaml")
        kubectl(kubeconfig, "apply", "-f", "-", stdin=secret)
        executor = {"apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor",
                    "metadata": {"name": "demo", "namespace": NAMESPACE},
                    "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": colony.name,
                             "credentials": {"colonyKeySecret": {"name": "colonies-colony-key"}}}}
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(executor))
        step("starting the operator (colonies-operator run)")
        log_file = open(Path(tempfile.gettempdir()) / "colonies-operator-demo.log", "w")
        operator = subprocess.Popen([sys.executable, "-m", "colonies_operator.cli", "run", "-n", NAMESPACE],
                                    env=dict(os.environ, KUBECONFIG=kubeconfig), stdout=log_file,
                                    stderr=subprocess.STDOUT)
        kubectl(kubeconfig, "-n", NAMESPACE, "wait", "--for=condition=Ready", "--timeout=120s",
                "coloniesexecutor/demo")
        print(kubectl(kubeconfig, "-n", NAMESPACE, "get", "coloniesexecutors"), end="")
        step("submitting examples/echo.json: colonies function submit --spec echo.json --follow")
        spec = json.loads((REPO / "examples/echo.json").read_text())
        spec["conditions"]["colonyname"] = colony.name
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(spec, handle)
        result = subprocess.run([server.binary, "function", "submit", "--spec", handle.name, "--follow"],
                                env=colony.cli_env(), capture_output=True, text=True, timeout=180)
        print(result.stdout, end="")
        processes = server.client.get_processes(colony.name, ProcessState.SUCCESS, colony.user_prvkey) + \
            server.client.get_processes(colony.name, ProcessState.FAILED, colony.user_prvkey)
        for process in processes:
            logs = "".join(e.message for e in server.client.all_logs(colony.name, process.processid,
                                                                   colony.user_prvkey))
            step(f"process {process.processid[:12]}… ended {process.state_name}; its log in Colonies:")
            print(logs, end="")
        ok = any(p.state == ProcessState.SUCCESS for p in processes)
        step(f"demo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.0f}s")
        return 0 if ok else 1
    finally:
        if operator:
            operator.terminate()
            operator.wait(30)
        server.close()
        if local and os.environ.get("KEEP_CLUSTER") != "1":
            step("stopping the local cluster (KEEP_CLUSTER=1 keeps it)")
            subprocess.run([str(REPO / "hack/cluster/down.sh")], check=False)


if __name__ == "__main__":
    sys.exit(main())
