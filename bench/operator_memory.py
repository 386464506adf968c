"""The operator's memory (RSS) at rest and with N running processes, next to a bare Python interpreter
holding the same imports as a baseline, in the same run. Not a test: it prints figures.

usage: python bench/operator_memory.py [N]     (KUBECONFIG, or the local cluster started with hack/cluster/up.sh)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from harness import operator_serving, trivial_spec
from kubernetes import client

NAMESPACE = "bench-operator-memory"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    baseline = subprocess.Popen([sys.executable, "-c", "import kopf, kubernetes, requests, coincurve, time; "
                                 "import colonies_operator.handlers; time.sleep(900)"])
    try:
        with operator_serving(NAMESPACE, maxConcurrentProcesses=count) as setup:
            time.sleep(5)
            at_rest, base = rss_mib(setup.operator.pid), rss_mib(baseline.pid)
            # Each process prints a line a second, so every one has a live log stream.
            spec = trivial_spec(setup.colony, "while true; do echo tick; sleep 1; done", cpu="1m", mem="4Mi",
                                walltime=900)
            pids = [setup.server.client.submit(spec, setup.colony.user_prvkey).processid for _ in range(count)]
            core = client.CoreV1Api()
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                running = core.list_namespaced_pod(NAMESPACE, field_selector="status.phase=Running").items
                if len(running) >= count:
                    break
                time.sleep(2)
            time.sleep(10)  # let every log stream open and ship
            busy = rss_mib(setup.operator.pid)
            threads = len(os.listdir(f"/proc/{setup.operator.pid}/task"))
            for pid in pids:
                setup.server.client.cancel(pid, setup.colony.user_prvkey)
    finally:
        baseline.kill()
    print(f"baseline (python + the operator's imports): {base:6.1f} MiB")
    print(f"operator at rest (one executor, idle):       {at_rest:6.1f} MiB  ({at_rest / base:.2f}x baseline)")
    print(f"operator with {len(running)} running processes:       {busy:6.1f} MiB  ({busy / base:.2f}x baseline, "
          f"{(busy - at_rest) / max(1, len(running)) * 1024:.0f} KiB per process, {threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
