"""Submit -> SUCCESS latency of a trivial process through the operator, next to creating the same Job
directly (create -> Complete), measured in the same run on the same cluster. Not a test: it prints figures.

usage: python bench/submit_latency.py [N]     (KUBECONFIG, or the local cluster started with hack/cluster/up.sh)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config  # noqa: E402

from colonies_operator.colonies import ProcessState  # noqa: E402
from tests.fixtures.colonies_server import ColoniesServer  # noqa: E402

NAMESPACE = "bench-submit-latency"
CMD = "echo hello world"


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"median {statistics.median(values) * 1000:7.0f} ms   p90 {p90 * 1000:7.0f} ms   max {values[-1] * 1000:7.0f} ms"


def direct_job(batch: client.BatchV1Api, index: int) -> float:
    name = f"direct-{index}"
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 60, "template": {"spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [{
                    "name": "main", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", CMD],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"cpu": "100m", "memory": "64Mi"}}}]}}}}
    started = time.monotonic()
    batch.create_namespaced_job(NAMESPACE, body)
    while True:
        job = batch.read_namespaced_job_status(name, NAMESPACE)
        if any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or []):
            return time.monotonic() - started
        time.sleep(0.05)


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    kubeconfig = os.environ.get("KUBECONFIG") or subprocess.run(
        [str(REPO / "hack/cluster/up.sh")], check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    config.load_kube_config(kubeconfig)
    core, batch, custom = client.CoreV1Api(), client.BatchV1Api(), client.CustomObjectsApi()
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "--force-conflicts", "-f",
                    str(REPO / "crds/coloniesexecutor.yaml")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "delete", "namespace", NAMESPACE, "--ignore-not-found"],
                   check=True, stdout=subprocess.DEVNULL)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    while True:
        try:
            core.read_namespaced_service_account("default", NAMESPACE)
            break
        except client.ApiException:
            time.sleep(0.2)
    server = ColoniesServer().start()
    operator = None
    try:
        colony = server.new_colony()
        core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "key"},
                                                  "stringData": {"colonyPrvKey": colony.colony_prvkey}})
        custom.create_namespaced_custom_object("colonyos.io", "v1alpha1", NAMESPACE, "coloniesexecutors", {
            "apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor", "metadata": {"name": "bench"},
            "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": colony.name,
                     "credentials": {"colonyKeySecret": {"name": "key"}}}})
        log = open(Path(tempfile.gettempdir()) / "colonies-operator-bench.log", "w")
        operator = subprocess.Popen([sys.executable, "-m", "colonies_operator.cli", "run", "-n", NAMESPACE],
                                    env=dict(os.environ, KUBECONFIG=kubeconfig), stdout=log, stderr=subprocess.STDOUT)
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "-n", NAMESPACE, "wait", "--for=condition=Ready",
                        "--timeout=120s", "coloniesexecutor/bench"], check=True, stdout=subprocess.DEVNULL)
        spec = {"funcname": "execute", "kwargs": {"docker-image": "busybox:1.35", "cmd": CMD},
                "conditions": {"colonyname": colony.name, "executortype": "container-executor", "nodes": 1,
                               "processespernode": 1, "cpu": "100m", "mem": "64Mi", "walltime": 60},
                "maxwaittime": -1, "maxexectime": 55, "maxretries": 0}
        through_operator, direct = [], []
        for i in range(count):
            # Interleaved, so both see the same machine load.
            direct.append(direct_job(batch, i))
            started = time.monotonic()
            process = server.client.submit(spec, colony.user_prvkey)
            while (p := server.client.get_process(process.processid, colony.user_prvkey)).state < ProcessState.SUCCESS:
                time.sleep(0.05)
            assert p.state == ProcessState.SUCCESS, p.errors
            through_operator.append(time.monotonic() - started)
        print(f"trivial process, {count} runs, one at a time, on this machine:")
        print(f"  Colonies submit -> SUCCESS via the operator: {percentiles(through_operator)}")
        print(f"  the same Job created directly -> Complete:    {percentiles(direct)}")
        print(f"  ratio of medians (operator / direct): {statistics.median(through_operator) / statistics.median(direct):.2f}")
        return 0
    finally:
        if operator:
            operator.terminate()
            operator.wait(30)
        server.close()
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "patch", "-n", NAMESPACE, "coloniesexecutor", "bench",
                        "--type", "merge", "-p", json.dumps({"metadata": {"finalizers": None}})],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
