"""The idle operator's CPU and memory with no retained Jobs, then with N finished Jobs of its executor kept
in its namespace (finished Jobs stay an hour, for `kubectl logs`), in the same run. Not a test: it prints
figures and their differences.

The retained Jobs carry exactly what the operator leaves on a Job whose process it closed: the labels and
annotations of jobs.build_job, then reconcile.release_patch (state=closed, the outcome annotation, no
finalizer). They are created suspended (spec.suspend: true), so no pod runs and they have no pods: real
finished Jobs keep their Succeeded pods, which the operator's pod watch excludes by a field selector.

usage: python bench/retained_jobs.py [--jobs 2000] [--window 60] [--operator-src DIR]
"""

from __future__ import annotations

import secrets
import sys
import time

from harness import Kube, arguments, in_parallel, measure, operator_job, operator_serving, trivial_spec

from colonies_operator.core.names import ANNOTATION_OUTCOME, JOB_STATE_CLOSED, LABEL_JOB_STATE, ProcessOutcome

NAMESPACE = "bench-retained-jobs"


def retained_job(namespace: str, spec: dict, executor_id: str) -> dict:
    """A Job as the operator leaves it once its process is closed SUCCESS, suspended so no pod runs."""
    job = operator_job(namespace, spec, secrets.token_hex(32), executor_id)
    job["metadata"]["labels"][LABEL_JOB_STATE] = JOB_STATE_CLOSED
    job["metadata"]["annotations"][ANNOTATION_OUTCOME] = ProcessOutcome.SUCCEEDED.value
    del job["metadata"]["finalizers"]
    job["spec"]["suspend"] = True
    return job


def create_retained(k: Kube, namespace: str, count: int, spec: dict, executor_id: str) -> float:
    started = time.monotonic()
    in_parallel(lambda _: k.batch.create_namespaced_job(namespace, retained_job(namespace, spec, executor_id)),
                range(count))
    return time.monotonic() - started


def main() -> int:
    args = arguments(__doc__.splitlines()[0], jobs=(2000, "retained Jobs to create"),
                     window=(60.0, "seconds each measurement lasts"),
                     settle=(15.0, "seconds to wait before each measurement"))
    with operator_serving(NAMESPACE, args.operator_src, args.kubeconfig) as setup:
        pid = setup.operator.pid
        executor_id = setup.executor["status"]["executorId"]
        spec = trivial_spec(setup.colony, "echo hello world")
        time.sleep(args.settle)
        print(f"measuring the idle operator for {args.window:g}s, no retained Jobs ...", flush=True)
        before = measure(pid, args.window)
        print(f"creating {args.jobs} retained Jobs (suspended: no pods) ...", flush=True)
        took = create_retained(setup.kube, NAMESPACE, args.jobs, spec, executor_id)
        print(f"  created in {took:.1f}s ({args.jobs / took:.0f}/s)", flush=True)
        time.sleep(args.settle)
        print(f"measuring the idle operator for {args.window:g}s, {args.jobs} retained Jobs ...", flush=True)
        after = measure(pid, args.window)
        alive = setup.operator.poll() is None
    print(f"\nidle operator, one ColoniesExecutor, mean over {args.window:g}s (goal: with retained Jobs "
          "at most +2 % of a core and +10 MiB):")
    print(f"  no retained Jobs:           {before}")
    print(f"  {args.jobs:5d} retained Jobs:        {after}")
    print(f"  difference:                 {after.cpu_percent - before.cpu_percent:+6.2f} % of a core, "
          f"{after.rss_mib - before.rss_mib:+6.1f} MiB RSS, {after.threads - before.threads:+3d} threads")
    if not alive:
        print("  the operator exited during the run: see its log")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
