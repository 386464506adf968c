"""One operator serving N ColoniesExecutors in one namespace, against one Colonies server: how many are
Ready 60 s after they are created at once, and the time until all are, next to the time one executor
alone takes to be Ready with the same operator in the same run. Not a test: it prints figures.

usage: python bench/many_executors.py [--executors 50] [--timeout 300] [--operator-src DIR]
"""

from __future__ import annotations

import sys
import time

from harness import (
    GROUP,
    PLURAL,
    VERSION,
    arguments,
    bench_namespace,
    colonies_server,
    create_executor,
    in_parallel,
    key_secret,
    kube,
    measure,
    ready_executors,
    start_operator,
    stop_operator,
    wait_ready,
    wait_until,
)

NAMESPACE = "bench-many-executors"
READY_WITHIN = 60.0


def main() -> int:
    args = arguments(__doc__.splitlines()[0], executors=(50, "ColoniesExecutors to create at once"),
                     timeout=(300.0, "seconds to wait for all of them"))
    k = kube(args.kubeconfig)
    with bench_namespace(k, NAMESPACE), colonies_server() as (server, colony):
        secret = key_secret(k, NAMESPACE, colony)
        operator = start_operator(k, [NAMESPACE], args.operator_src)
        try:
            # The baseline: one executor, with the operator already up (its start is not counted).
            time.sleep(5)
            started = time.monotonic()
            create_executor(k, NAMESPACE, "solo", server, colony, secret)
            wait_ready(k, NAMESPACE, "solo")
            one = time.monotonic() - started
            k.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "solo")
            wait_until(lambda: not k.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"],
                       120, "the baseline executor to be deleted")
            print(f"one executor Ready in {one:.1f}s; creating {args.executors} at once ...", flush=True)

            names = [f"bench-{i:03d}" for i in range(args.executors)]
            started = time.monotonic()
            in_parallel(lambda name: create_executor(k, NAMESPACE, name, server, colony, secret), names)
            created = time.monotonic() - started
            ready_at: dict[str, float] = {}
            at_60 = None
            while len(ready_at) < len(names) and time.monotonic() - started < args.timeout:
                now = time.monotonic()
                for name in ready_executors(k, NAMESPACE):
                    ready_at.setdefault(name, now - started)
                if at_60 is None and now - started >= READY_WITHIN:
                    at_60 = len(ready_at)
                time.sleep(0.5)
            if at_60 is None:
                at_60 = len(ready_at)
            usage = measure(operator.pid, 10) if operator.poll() is None else None
        finally:
            stop_operator(operator)
    print(f"\none operator, ColoniesExecutors in one namespace (goal: {args.executors} of {args.executors} Ready "
          f"in < 60 s):")
    print(f"  baseline, one executor alone: Ready in {one:6.1f}s")
    print(f"  {args.executors} executors created at once (in {created:.1f}s): {at_60} of {args.executors} Ready "
          f"after {READY_WITHIN:.0f}s; ", end="")
    if len(ready_at) == len(names):
        last = max(ready_at.values())
        print(f"all Ready in {last:.1f}s ({last / one:.1f}x the time for one)")
    else:
        print(f"only {len(ready_at)} Ready after {args.timeout:.0f}s")
    if usage:
        print(f"  the operator then, idle with {len(ready_at)} Ready executors: {usage}")
    return 0 if len(ready_at) == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
