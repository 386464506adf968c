"""The demo, `make demo`: a Colonies server, the operator, a ColoniesExecutor, and the Colonies tutorial's
`echo hello world` submitted with the colonies CLI and run as a Kubernetes Job, end to end.

Without KUBECONFIG it starts the project's local cluster (and stops it at the end unless KEEP_CLUSTER=1). With
KUBECONFIG it uses that cluster, neither starting nor stopping it, and leaves it as it found it; on a cluster other
than the project's, the operator runs on this machine against it (devtools/devenv.py says why). Each step prints a
progress line. Settings (environment): COLONIES_DEMO_NAMESPACE (default colonies-demo), COLONIES_OPERATOR_RUN.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from colonies_operator.colonies import ProcessState
from devtools import devenv
from devtools.colonies_server import ColoniesServer
from devtools.devenv import REPO, step

NAMESPACE = os.environ.get("COLONIES_DEMO_NAMESPACE") or "colonies-demo"
CREATED_BY = "make-demo"
EXECUTOR = "dev"


def main() -> int:
    cluster = devenv.find_cluster("make demo")
    made = devenv.Made(kubeconfig=cluster.kubeconfig, operator_run=cluster.operator_run)
    step("starting a Colonies server (private PostgreSQL; colony dev and a user, with fresh keys)")
    server = ColoniesServer().start()
    log_dir = Path(tempfile.mkdtemp(prefix="colonies-demo-"))
    operator = None
    try:
        colony = server.new_colony("dev")
        step(f"Colonies server at {server.client.url}, colony {colony.name}")
        devenv.ensure_crd(cluster, made)
        devenv.ensure_namespace(cluster, made, NAMESPACE, CREATED_BY)
        if cluster.operator_run == devenv.IN_CLUSTER:
            devenv.install_operator(cluster, made)
        else:
            operator = devenv.start_operator_outside(cluster, made, log_dir / "operator.log")
        step(f"the colony key Secret and the ColoniesExecutor {EXECUTOR} (examples/executor-colony-key.yaml's "
             "shape)")
        secret = json.loads(devenv.run(*cluster.kubectl, "create", "secret", "generic", "colonies-colony-key",
                                       f"--from-literal=colonyPrvKey={colony.colony_prvkey}", "--dry-run=client",
                                       "-o", "json"))
        devenv.apply(cluster, made, secret, CREATED_BY)
        devenv.apply(cluster, made, {
            "apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor", "metadata": {"name": EXECUTOR},
            "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": colony.name,
                     "credentials": {"colonyKeySecret": {"name": "colonies-colony-key"}}}}, CREATED_BY)
        devenv.wait_ready(cluster, NAMESPACE, EXECUTOR)
        print(devenv.run(*cluster.kubectl, "-n", NAMESPACE, "get", "coloniesexecutors"), end="")
        step("colonies function submit --spec examples/echo.json --follow")
        result = subprocess.run([server.binary, "function", "submit", "--spec", str(REPO / "examples/echo.json"),
                                 "--follow"], env=colony.cli_env(), capture_output=True, text=True, timeout=180)
        print(result.stdout, end="")
        processes = [p for state in (ProcessState.SUCCESS, ProcessState.FAILED)
                     for p in server.client.get_processes(colony.name, state, colony.user_prvkey)]
        for process in processes:
            logs = "".join(e.message for e in server.client.all_logs(colony.name, process.processid,
                                                                   colony.user_prvkey))
            step(f"process {process.processid[:12]}… is {process.state_name}; its log in Colonies:")
            print(logs, end="")
            for error in process.errors or []:
                print(f"error: {error}")
        ok = bool(processes) and all(p.state == ProcessState.SUCCESS for p in processes)
        if not ok and operator is not None:
            print(f"--- the operator's log ---\n{(log_dir / 'operator.log').read_text(errors='replace')[-5000:]}")
        step(f"demo {'succeeded' if ok else 'FAILED'}")
        return 0 if ok else 1
    finally:
        step("cleaning up: what the demo made in the cluster, then the Colonies server")
        devenv.remove_made(cluster, made)
        server.close()
        shutil.rmtree(log_dir, ignore_errors=True)
        if not cluster.from_env and os.environ.get("KEEP_CLUSTER") != "1":
            step("stopping the local cluster (KEEP_CLUSTER=1 keeps it)")
            subprocess.run([str(REPO / "hack/cluster/down.sh")], check=False)


if __name__ == "__main__":
    sys.exit(main())
