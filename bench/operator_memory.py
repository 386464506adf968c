"""The operator's memory (RSS), threads and CPU at rest and with N running processes that each log a line a
second, next to a bare Python interpreter holding the operator's imports (aiohttp, the Kubernetes client's
config, kopf, colonies_operator.handlers) as a baseline, in the same run. Not a test: it prints figures.

usage: python bench/operator_memory.py [--processes 100] [--operator-src DIR]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from harness import arguments, measure, operator_pythonpath, operator_serving, trivial_spec, wait_until

NAMESPACE = "bench-operator-memory"
BASELINE_IMPORTS = "import aiohttp, kopf, kubernetes.config, colonies_operator.handlers"


def main() -> int:
    args = arguments(__doc__.splitlines()[0], processes=(100, "running processes"),
                     cpu=("1m", "each one's cpu"), mem=("8Mi", "each one's memory"),
                     window=(10.0, "seconds each measurement lasts"))
    count = args.processes
    # The same source tree as the operator's, so the baseline holds the same modules.
    baseline = subprocess.Popen([sys.executable, "-c", f"{BASELINE_IMPORTS}; import time; time.sleep(3600)"],
                                env=dict(os.environ, PYTHONPATH=operator_pythonpath(args.operator_src)))
    try:
        with operator_serving(NAMESPACE, args.operator_src, args.kubeconfig, maxConcurrentProcesses=count) as setup:
            server, colony, core = setup.server, setup.colony, setup.kube.core
            time.sleep(5)
            base = measure(baseline.pid, 2)
            at_rest = measure(setup.operator.pid, args.window)
            # Each process prints a line a second, so every one has a live log stream.
            spec = trivial_spec(colony, "while true; do echo tick; sleep 1; done", cpu=args.cpu, mem=args.mem,
                                walltime=900)
            pids = [server.client.submit(spec, colony.user_prvkey).processid for _ in range(count)]
            print(f"submitted {count} processes that log a line a second; waiting for their pods ...", flush=True)

            def running() -> int:
                return len(core.list_namespaced_pod(NAMESPACE, field_selector="status.phase=Running").items)
            wait_until(lambda: running() >= count, 900, f"{count} running pods", interval=2)
            time.sleep(10)  # let every log stream open and ship
            busy = measure(setup.operator.pid, args.window)
            lines = [len(server.client.get_logs(colony.name, pid, colony.user_prvkey)) for pid in pids[:5]]
            for pid in pids:
                server.client.cancel(pid, colony.user_prvkey)
    finally:
        baseline.kill()
        baseline.wait()
    print("\noperator memory (goal with 100 running processes: at most 110 MiB RSS, at most 40 threads):")
    label = "baseline (python + the operator's imports):"
    print(f"  {label:46} {'':20}{base.rss_mib:6.1f} MiB RSS, {base.threads:3d} threads")
    print(f"  {'operator at rest (one executor, idle):':46} {at_rest}  ({at_rest.rss_mib / base.rss_mib:.2f}x "
          "baseline)")
    print(f"  {f'operator with {count} running processes:':46} {busy}  ({busy.rss_mib / base.rss_mib:.2f}x baseline, "
          f"{(busy.rss_mib - at_rest.rss_mib) / max(1, count) * 1024:.0f} KiB per process)")
    print(f"  log lines in Colonies for the first processes (about one a second each): {lines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
