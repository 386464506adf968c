"""N trivial processes (`true`, small cpu and mem) submitted to Colonies at once, until all are SUCCESS,
next to the same N Jobs (the Job the operator makes: same image, command, resources) created directly with
the Kubernetes client as fast as it can, until all are Complete, in the same run on the same cluster.
Not a test: it prints both times and the throughput ratio.

usage: python bench/burst.py [--processes 100] [--cpu 10m] [--mem 16Mi] [--operator-src DIR]
"""

from __future__ import annotations

import sys
import time

from harness import (
    arguments,
    delete_jobs,
    direct_job,
    in_parallel,
    operator_serving,
    rss_mib,
    thread_count,
    trivial_spec,
    watch_jobs_finished,
)

from colonies_operator.colonies import ProcessState

NAMESPACE = "bench-burst"


def main() -> int:
    args = arguments(__doc__.splitlines()[0], processes=(100, "processes, and Jobs, in the burst"),
                     cpu=("10m", "each one's cpu request and limit"), mem=("16Mi", "each one's memory"),
                     timeout=(600.0, "seconds to wait for each half"))
    count = args.processes
    with operator_serving(NAMESPACE, args.operator_src, args.kubeconfig, maxConcurrentProcesses=count) as setup:
        k, server, colony = setup.kube, setup.server, setup.colony
        spec = trivial_spec(colony, "true", cpu=args.cpu, mem=args.mem, walltime=600)

        # The same Jobs, created directly.
        jobs = [direct_job(NAMESPACE, f"direct-{i:04d}", spec, "direct") for i in range(count)]
        print(f"creating {count} Jobs directly ...", flush=True)
        started = time.monotonic()
        in_parallel(lambda job: k.batch.create_namespaced_job(NAMESPACE, job), jobs)
        direct_created = time.monotonic() - started
        finished_at, direct_failed = watch_jobs_finished(k, NAMESPACE, "direct", count, args.timeout)
        direct = finished_at - started
        delete_jobs(k, NAMESPACE, "direct")

        # Through Colonies and the operator.
        print(f"submitting {count} processes to Colonies ...", flush=True)
        started = time.monotonic()
        pids = in_parallel(lambda _: server.client.submit(spec, colony.user_prvkey).processid, range(count))
        submitted = time.monotonic() - started
        peak_threads, peak_rss = 0, 0.0
        while True:
            peak_threads = max(peak_threads, thread_count(setup.operator.pid))
            peak_rss = max(peak_rss, rss_mib(setup.operator.pid))
            unfinished = [state for state in (ProcessState.WAITING, ProcessState.RUNNING)
                          if server.client.get_processes(colony.name, state, colony.user_prvkey, count=1)]
            if not unfinished:
                break
            if time.monotonic() - started > args.timeout:
                raise TimeoutError(f"processes still unfinished after {args.timeout:g}s")
            time.sleep(0.2)
        through_operator = time.monotonic() - started
        states = in_parallel(lambda pid: server.client.get_process(pid, colony.user_prvkey).state, pids)
    succeeded = sum(state == ProcessState.SUCCESS for state in states)
    print(f"\n{count} trivial processes at once (`true`, cpu {args.cpu}, mem {args.mem}; goal: throughput ratio "
          "at least 0.9):")
    print(f"  {f'the same {count} Jobs created directly:':42} all finished in {direct:6.1f}s ({count / direct:5.2f}/s; "
          f"created in {direct_created:.1f}s, {direct_failed} failed)")
    print(f"  {'submitted to Colonies, via the operator:':42} all finished in {through_operator:6.1f}s "
          f"({count / through_operator:5.2f}/s; submitted in {submitted:.1f}s, {succeeded} SUCCESS)")
    print(f"  throughput ratio (operator / direct): {direct / through_operator:.2f}")
    print(f"  the operator meanwhile: at most {peak_threads} threads, {peak_rss:.1f} MiB RSS")
    return 0 if succeeded == count and not direct_failed else 1


if __name__ == "__main__":
    sys.exit(main())
