"""Submit -> SUCCESS latency of a trivial process through the operator, next to creating the same Job
directly (create -> Complete), interleaved in the same run on the same cluster. Not a test: it prints figures.

usage: python bench/submit_latency.py [N]     (KUBECONFIG, or the local cluster started with hack/cluster/up.sh)
"""

from __future__ import annotations

import statistics
import sys
import time

from harness import operator_serving, trivial_spec
from kubernetes import client

from colonies_operator.colonies import ProcessState

NAMESPACE = "bench-submit-latency"
CMD = "echo hello world"


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"median {statistics.median(values) * 1000:6.0f} ms   p90 {p90 * 1000:6.0f} ms   max {values[-1] * 1000:6.0f} ms"


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
    with operator_serving(NAMESPACE) as setup:
        batch = client.BatchV1Api()
        server, colony = setup.server, setup.colony
        spec = trivial_spec(colony, CMD)
        through_operator, direct = [], []
        for i in range(count):
            direct.append(direct_job(batch, i))  # interleaved, so both see the same load
            started = time.monotonic()
            process = server.client.submit(spec, colony.user_prvkey)
            while (p := server.client.get_process(process.processid, colony.user_prvkey)).state < ProcessState.SUCCESS:
                time.sleep(0.05)
            assert p.state == ProcessState.SUCCESS, p.errors
            through_operator.append(time.monotonic() - started)
    print(f"trivial process, {count} runs, one at a time:")
    print(f"  Colonies submit -> SUCCESS via the operator: {percentiles(through_operator)}")
    print(f"  the same Job created directly -> Complete:    {percentiles(direct)}")
    print(f"  ratio of medians (operator / direct): {statistics.median(through_operator) / statistics.median(direct):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
