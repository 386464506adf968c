"""Fail-over of the leader: two instances of the operator on one namespace with a ColoniesExecutor. The leader is
stopped (SIGTERM) ROUNDS times, then killed (SIGKILL) ROUNDS times, the other instance taking over each time (the
stopped one is started again as the new stand-by). Printed for each way: the seconds from the signal until the
stand-by holds the Lease, and until a process submitted just after the signal is RUNNING (assigned by the new
leader); median, min and max, next to the lease settings (the baseline: a crash is replaced after about the lease
duration, a hand-over within about a retry period). Then the idle cost of the stand-by next to the leader's."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client

from colonies_operator.colonies import ProcessState
from harness import (
    OPERATOR_ENV,
    arguments,
    bench_namespace,
    colonies_server,
    create_executor,
    key_secret,
    kube,
    measure,
    operator_pythonpath,
    stop_operator,
    trivial_spec,
    wait_ready,
    wait_until,
)

LEASE = "colonies-operator"


class Instance:
    def __init__(self, kubeconfig: str, namespace: str, operator_src: str | None, name: str, lease: list[str]) -> None:
        self.log_path = Path(tempfile.gettempdir()) / f"colonies-operator-{namespace}-{name}.log"
        command = [sys.executable, "-m", "colonies_operator.cli", "run", "-n", namespace, *lease]
        env = dict(os.environ, KUBECONFIG=kubeconfig, PYTHONPATH=operator_pythonpath(operator_src),
                   PYTHONUNBUFFERED="1", **OPERATOR_ENV)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def identity(self) -> str:
        found = re.findall(r"leading: (\S+) holds|this instance \((\S+)\) takes no work", self.log())
        return next((a or b for a, b in reversed(found)), "")


def holder(coordination: client.CoordinationV1Api, namespace: str) -> str:
    try:
        return coordination.read_namespaced_lease(LEASE, namespace).spec.holder_identity or ""
    except client.ApiException:
        return ""


def summary(values: list[float]) -> str:
    return (f"median {statistics.median(values):5.1f} s, min {min(values):5.1f} s, max {max(values):5.1f} s "
            f"({len(values)} runs)")


def main() -> None:
    args = arguments(__doc__, rounds=(5, "fail-overs of each kind"), lease_duration=(15.0, "--lease-duration"),
                     renew_deadline=(10.0, "--renew-deadline"), retry_period=(2.0, "--retry-period"),
                     idle_window=(60.0, "seconds over which the idle instances are measured"))
    lease = ["--lease-duration", str(args.lease_duration), "--renew-deadline", str(args.renew_deadline),
             "--retry-period", str(args.retry_period)]
    k = kube(args.kubeconfig)
    coordination = client.CoordinationV1Api(k.core.api_client)
    with bench_namespace(k, "bench-failover") as namespace, colonies_server() as (server, colony):
        create_executor(k, namespace, "bench", server, colony, key_secret(k, namespace, colony))
        instances = {"a": Instance(k.kubeconfig, namespace, args.operator_src, "a", lease)}
        try:
            wait_until(lambda: "leading:" in instances["a"].log(), 60, "the first instance to lead")
            leader = instances["a"]
            wait_ready(k, namespace, "bench")
            figures: dict[str, tuple[list[float], list[float]]] = {"SIGTERM": ([], []), "SIGKILL": ([], [])}
            for round_, kind in enumerate(["SIGTERM"] * args.rounds + ["SIGKILL"] * args.rounds):
                standby = instances[f"{round_}"] = Instance(k.kubeconfig, namespace, args.operator_src, f"{round_}",
                                                            lease)
                wait_until(lambda: "standing by" in standby.log(), 60, "the new instance to stand by")
                time.sleep(args.retry_period)  # a settled stand-by, as in a running deployment
                taker = standby.identity()
                started = time.monotonic()
                leader.proc.send_signal(getattr(signal, kind))
                process = colony.client.submit(trivial_spec(colony, "sleep 1"), colony.user_prvkey)
                wait_until(lambda: holder(coordination, namespace) == taker, 120, "the stand-by to lead", 0.05)
                led = time.monotonic() - started
                wait_until(lambda: colony.client.get_process(process.processid, colony.user_prvkey).state
                           >= ProcessState.RUNNING, 120, "the process to run", 0.05)
                working = time.monotonic() - started
                figures[kind][0].append(led)
                figures[kind][1].append(working)
                print(f"  {kind}: the stand-by led after {led:5.1f} s, the process ran after {working:5.1f} s",
                      flush=True)
                leader.proc.wait(30)
                leader = standby
            print(f"\nlease {args.lease_duration:g} s, renew deadline {args.renew_deadline:g} s, retry period "
                  f"{args.retry_period:g} s")
            for kind, (led, working) in figures.items():
                print(f"{kind}: stand-by leads:        {summary(led)}")
                print(f"{kind}: a new process runs:    {summary(working)}")
            standby = instances["last"] = Instance(k.kubeconfig, namespace, args.operator_src, "last", lease)
            wait_until(lambda: "standing by" in standby.log(), 60, "the last instance to stand by")
            time.sleep(10)  # past its start
            idle_leader, idle_standby = measure(leader.proc.pid, args.idle_window), measure(standby.proc.pid,
                                                                                            args.idle_window)
            print(f"\nidle over {args.idle_window:g} s (one ColoniesExecutor, no process):")
            print(f"  leader:   {idle_leader}")
            print(f"  stand-by: {idle_standby}")
        finally:
            for instance in instances.values():
                stop_operator(instance.proc)


if __name__ == "__main__":
    main()
