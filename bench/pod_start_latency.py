#!/usr/bin/env python3
"""Pod start latency: creates N Jobs (busybox, `sleep 5`) one after another and measures, for each, the time
from creating the Job to its pod being Running, as seen through the API (a watch). Prints each latency and
the median, p90 and max.

usage: python bench/pod_start_latency.py [--count 20] [--kubeconfig PATH]
Without --kubeconfig or KUBECONFIG it runs hack/cluster/up.sh (root) and leaves that cluster running.
"""

from __future__ import annotations

import argparse
import math
import secrets
import statistics
import sys
import time

from harness import IMAGE, exists, kubeconfig_path, wait_until
from kubernetes import client, config, watch


def start_job(batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str, index: int,
              timeout: float) -> float:
    """Creates one Job and returns the seconds until its pod is Running."""
    name = f"bench-{index:02d}"
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(backoff_limit=0, ttl_seconds_after_finished=0, template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", termination_grace_period_seconds=1, containers=[
                client.V1Container(name="main", image=IMAGE, image_pull_policy="IfNotPresent",
                                   command=["sleep", "5"])]))),
    )
    start = time.monotonic()
    batch.create_namespaced_job(namespace, job)
    # The watch starts with a list, so a pod that is already Running is seen too.
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, namespace, label_selector=f"job-name={name}",
                          timeout_seconds=int(timeout)):
        pod = event["object"]
        if pod.status.phase == "Running":
            w.stop()
            return time.monotonic() - start
        if pod.status.phase in ("Failed", "Succeeded"):
            w.stop()
            raise RuntimeError(f"pod {pod.metadata.name} ended ({pod.status.phase}) before it was seen Running")
    raise TimeoutError(f"Job {name}'s pod was not Running within {timeout:g}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--timeout", type=float, default=120, help="per Job, seconds")
    args = parser.parse_args()

    api = config.new_client_from_config(config_file=kubeconfig_path(args.kubeconfig))
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    namespace = f"bench-pod-start-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        wait_until(lambda: exists(lambda: core.read_namespaced_service_account("default", namespace)), 60,
                   "the default ServiceAccount")
        latencies = []
        for i in range(args.count):
            latency = start_job(batch, core, namespace, i, args.timeout)
            latencies.append(latency)
            print(f"job {i:2d}: {latency * 1000:7.0f} ms", flush=True)
    finally:
        core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
        core.delete_namespace(namespace, propagation_policy="Background")
    ordered = sorted(latencies)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
    print(f"create Job -> pod Running over {len(ordered)} Jobs: median {statistics.median(ordered) * 1000:.0f} ms, "
          f"p90 {p90 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
