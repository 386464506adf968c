"""The `colonies-operator` command."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .colonies import crypto
from .core.policy import DEFAULT_POLICY, OperatorPolicy, PolicyError, policy_from_dict

if TYPE_CHECKING:
    from .engine.leader import LeaseTimings


def _keygen(_: argparse.Namespace) -> int:
    prvkey = crypto.generate_prvkey()
    # The key goes to stdout only, for piping into `kubectl create secret`; never into a log.
    print(f"prvkey: {prvkey}")
    print(f"id:     {crypto.prvkey_to_id(prvkey)}")
    return 0


def load_policy(path: str | None) -> OperatorPolicy:
    """The cluster admin's policy from a YAML or JSON file; the built-in defaults when `path` is empty. Raises
    PolicyError saying what is wrong."""
    if not path:
        return DEFAULT_POLICY
    import yaml  # JSON is YAML too

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as err:
        raise PolicyError(f"cannot read the policy file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise PolicyError(f"the policy file {path} is not YAML or JSON: {err}") from None
    return policy_from_dict(data)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    import kopf

    from .engine.leader import LeaseTimings

    # A policy the operator cannot read stops it here: running without it would allow what the admin refused.
    try:
        policy = load_policy(args.policy_file)
    except PolicyError as err:
        raise SystemExit(f"colonies-operator run: --policy-file: {err}") from None
    timings = LeaseTimings(args.lease_duration, args.renew_deadline, args.retry_period)
    if timings.problem():
        raise SystemExit(f"colonies-operator run: --lease-duration, --renew-deadline, --retry-period: "
                         f"{timings.problem()}")

    from . import handlers  # registers the handlers

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.JSON if args.json_logs else kopf.LogFormat.PLAIN)
    logging.getLogger("colonies_operator").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # The operator reports API outages itself, once; urllib3 would warn on every retried request.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # not a line per liveness probe
    namespaces = args.namespace or []
    if not namespaces and not args.all_namespaces:
        raise SystemExit("colonies-operator run: give --namespace NS (repeatable) or --all-namespaces")
    # The Lease lives where every instance serving the same resources looks for it: by default in the first of
    # the watched namespaces (by name), so an instance started by hand with the same --namespace arguments
    # competes for the chart's Lease.
    lease_namespace = args.leader_election_namespace or (min(namespaces) if namespaces else handlers.pod_namespace())
    if not lease_namespace:
        raise SystemExit("colonies-operator run: with --all-namespaces outside a pod, give "
                         "--leader-election-namespace (the namespace of the operator's Lease: the chart's release "
                         "namespace)")
    if args.metrics_port:
        from .engine import metrics

        metrics.start_server(args.metrics_port, args.metrics_address)
    return asyncio.run(_operate(args, policy, namespaces, lease_namespace, timings))


async def _operate(args: argparse.Namespace, policy: OperatorPolicy, namespaces: list[str], lease_namespace: str,
                   timings: "LeaseTimings") -> int:
    """Stands by until this instance holds the Lease, then runs kopf's machinery (the handlers, hence every
    executor) until SIGTERM, when it hands over, or until the Lease is lost, when it stops at once and starts over
    as a stand-by (or exits, with --exit-on-lost-lease)."""
    import asyncio
    import logging
    import secrets
    import signal
    import socket

    import kopf

    from . import handlers
    from .engine import metrics
    from .engine.health import serve_health
    from .engine.leader import LeaderElector

    log = logging.getLogger("colonies_operator.cli")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if not stopping.is_set():
            log.info("%s received: stopping", sig.name)
        stopping.set()

    def handle_signals() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)

    handle_signals()
    try:
        lease_kube = handlers.kube_api(kopf.OperatorSettings(), log)
    except kopf.LoginError as err:
        raise SystemExit(f"colonies-operator run: {err}") from None
    identity = f"{socket.gethostname()}_{secrets.token_hex(4)}"
    elector = LeaderElector(lease_kube, lease_namespace, args.lease_name, identity, timings,
                            on_change=metrics.set_leader)
    metrics.set_leader(False)
    health = await serve_health(args.liveness, lambda: elector.leading) if args.liveness else None
    try:
        acquiring = asyncio.create_task(elector.acquire(), name="leader election")
        stop_waiter = asyncio.create_task(stopping.wait(), name="stop waiter")
        await asyncio.wait({acquiring, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not acquiring.done():  # stopped while standing by: nothing to hand over
            acquiring.cancel()
            return 0
        # Created before kopf's tasks, so kopf's shutdown leaves it alone.
        holding = asyncio.create_task(elector.hold(), name="leader lease")
        # The handlers find in memo the policy, where Jobs whose ColoniesExecutor is gone are looked for, and limits.
        job_namespaces = None if args.all_namespaces or "*" in policy.job_namespaces else sorted(
            {*namespaces, *policy.job_namespaces})
        memo = kopf.Memo(policy=policy, job_namespaces=job_namespaces, orphan_grace=args.orphan_grace,
                         max_log_streams=args.max_log_streams,
                         max_log_streams_per_process=args.max_log_streams_per_process,
                         colonies_timeout=args.colonies_timeout)
        stop_flag = asyncio.Event()
        existing = asyncio.all_tasks()
        kopf_tasks = await kopf.spawn_tasks(standalone=True, clusterwide=args.all_namespaces, namespaces=namespaces,
                                            memo=memo, stop_flag=stop_flag)
        handle_signals()  # kopf put its own handlers in: the hand-over below is the operator's
        working = asyncio.create_task(kopf.run_tasks(kopf_tasks, ignored=existing), name="kopf")
        await asyncio.wait({holding, working, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        if holding.done():
            # Another instance may take over in a few seconds: nothing more may be done as leader, so nothing of
            # this run may go on (kopf's tasks, the executors' loops, half-sent requests).
            log.error("lost the leadership: %s; %s (the Jobs run on: the next leader adopts them)",
                      holding.exception(), "exiting at once" if args.exit_on_lost_lease
                      else "stopping at once and starting over as a stand-by")
            end_this_run(start_over=not args.exit_on_lost_lease)
        code = 0
        if working.done():
            error = working.exception() if not working.cancelled() else None
            log.error("kopf stopped by itself%s; handing over", f": {error}" if error else "")
            code = 1
        await _hand_over(memo, stop_flag, working, holding, elector, started=loop.time())
        return code
    finally:
        if health is not None:
            await health.cleanup()
        await lease_kube.close()


def restart_command() -> list[str]:
    """The command line this process was started with, interpreter options included, to run it again."""
    return [sys.executable, *sys.orig_argv[1:]]


def end_this_run(*, start_over: bool) -> NoReturn:
    """Ends this run at once, without cleaning up (nothing of the lost leadership may go on), after flushing what
    it logged. With `start_over`, replaces this process with a fresh run of the same command, which starts as a
    stand-by: a fresh process, not a restart inside this one, so nothing of the lost leadership can survive it
    (kopf's global state, tasks still running, requests half sent), and it costs a second, not the kubelet's
    crash-loop back-off, or nothing at all to restart it outside a pod. Sockets and files Python opened are closed
    on exec (PEP 446); stdout and stderr are kept. Otherwise, or if the exec itself fails, exits with 1."""
    import logging
    import os

    logging.shutdown()  # flushes every handler: the new process writes to the same stdout
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    if start_over:
        command = restart_command()
        try:
            os.execv(command[0], command)
        except OSError as err:
            print(f"colonies-operator: cannot start over ({err.strerror}: {command[0]}); exiting", file=sys.stderr,
                  flush=True)
    os._exit(1)


HAND_OVER_STOP_SECONDS = 2.0  # the executors' own stop: at most this long (they flush their log lines)
HAND_OVER_KOPF_SECONDS = 1.5  # then kopf's: its handlers are cancelled after this long


async def _hand_over(memo, stop_flag, working, holding, elector, *, started: float) -> None:
    """Graceful shutdown of the leader: every executor stops assigning and flushes what it holds (its Jobs run on,
    for the next leader to adopt), kopf stops, and the Lease is released so the next instance takes over at its
    next retry."""
    import asyncio
    import logging

    log = logging.getLogger("colonies_operator.cli")
    runtimes = list((memo.get("runtimes") or {}).values())
    stops = asyncio.gather(*(runtime.stop() for runtime in runtimes), return_exceptions=True)
    try:
        await asyncio.wait_for(stops, HAND_OVER_STOP_SECONDS)
    except asyncio.TimeoutError:
        log.warning("the executors did not stop within %.0fs; handing over anyway", HAND_OVER_STOP_SECONDS)
    stop_flag.set()
    try:
        await asyncio.wait_for(asyncio.shield(working), HAND_OVER_KOPF_SECONDS)
    except asyncio.TimeoutError:
        working.cancel()
    except Exception:  # kopf's own error, logged by kopf
        pass
    await asyncio.gather(working, return_exceptions=True)
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
    await elector.release()
    log.info("handed over: stopped and released the Lease in %.1fs; the Jobs run on for the next leader",
             asyncio.get_running_loop().time() - started)


def _release(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    import kopf

    from .engine.release import Target, release

    try:
        policy = load_policy(args.policy_file)
    except PolicyError as err:
        raise SystemExit(f"colonies-operator release: --policy-file: {err}") from None
    targets = [Target(namespace) for namespace in args.namespace]
    for resource in args.resources:
        namespace, _, name = resource.partition("/")
        if not namespace or not name:
            raise SystemExit(f"colonies-operator release: {resource!r}: give NAMESPACE/NAME")
        targets.append(Target(namespace, name))
    if not targets:
        raise SystemExit("colonies-operator release: give NAMESPACE/NAME or --namespace NS")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("aiohttp").setLevel(logging.WARNING)

    async def main() -> bool:
        from . import handlers

        try:
            kube = handlers.kube_api(kopf.OperatorSettings(), logging.getLogger("colonies_operator.cli"))
        except kopf.LoginError as err:
            raise SystemExit(f"colonies-operator release: {err}") from None
        try:
            return await release(kube, policy, targets, delete=args.delete, wait=args.wait)
        finally:
            await kube.close()

    return 0 if asyncio.run(main()) else 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colonies-operator",
        description="Run a Kubernetes cluster as a ColonyOS executor: ColoniesExecutor resources become "
                    "Colonies executors, and the processes they are assigned become Kubernetes Jobs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the operator (watches ColoniesExecutor resources)")
    run.add_argument("-n", "--namespace", action="append", help="watch this namespace (repeatable)")
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--liveness", default="", help="serve the health endpoint the liveness and readiness probes ask, "
                     "e.g. http://0.0.0.0:8080/healthz (it answers on stand-by too)")
    run.add_argument("--metrics-port", type=int, default=0, metavar="PORT",
                     help="serve Prometheus metrics on this port (default 0: off)")
    run.add_argument("--metrics-address", default="0.0.0.0", metavar="ADDR",
                     help="the address --metrics-port listens on (default 0.0.0.0)")
    run.add_argument("--policy-file", default="", metavar="PATH",
                     help="the cluster admin's policy (YAML or JSON): where Jobs may run, service accounts, tokens, "
                          "pod security profiles, the ceiling of per-process limits, defaults (default: the safe "
                          "built-in policy; the chart renders one from its `policy` values)")
    run.add_argument("--leader-election-namespace", default="", metavar="NS",
                     help="the namespace of the Lease that elects the one instance doing the work (default: the "
                          "first --namespace by name; with --all-namespaces, the operator pod's own namespace)")
    run.add_argument("--lease-name", default="colonies-operator", metavar="NAME",
                     help="the name of that Lease (default colonies-operator)")
    run.add_argument("--lease-duration", type=float, default=15.0, metavar="SECONDS",
                     help="how long a stand-by waits after the leader's last renewal before taking over (default 15)")
    run.add_argument("--renew-deadline", type=float, default=10.0, metavar="SECONDS",
                     help="how long the leader tries to renew before it stops working and starts over as a "
                          "stand-by; shorter than the lease duration (default 10)")
    run.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS",
                     help="how often the Lease is renewed, and a stand-by tries to take it (default 2)")
    run.add_argument("--exit-on-lost-lease", action="store_true",
                     help="when the leader loses the Lease (it could not renew it for the renew deadline, or "
                          "another instance took it), exit with 1 instead of starting over as a stand-by in the "
                          "same process (for a supervisor that wants to restart it itself)")
    run.add_argument("--orphan-grace", type=float, default=600.0, metavar="SECONDS",
                     help="a Job whose ColoniesExecutor is gone (deleted without the operator) is released and "
                          "deleted after this long (default 600; 0: never)")
    run.add_argument("--max-log-streams", type=_positive_int, default=256, metavar="N",
                     help="container logs followed at once, over all executors (each is a connection to the API "
                          "server; default 256). A container beyond it is read once, in full, when its process "
                          "ends")
    run.add_argument("--max-log-streams-per-process", type=_positive_int, default=16, metavar="N",
                     help="container logs of one process followed at once (default 16)")
    run.add_argument("--colonies-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="a Colonies reply slower than this is a failure, and the request is retried (default "
                          "30; a long-poll assign waits its own timeout longer)")
    run.add_argument("--json-logs", action="store_true", help="log JSON lines (for log collectors)")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(handler=_run)
    release = commands.add_parser(
        "release", help="hand back or close the work of ColoniesExecutors being deleted and drop their "
        "finalizers, and release Jobs whose ColoniesExecutor is gone: for an uninstall, or a namespace to delete, "
        "without a running operator",
        description="ColoniesExecutors being deleted (all in each --namespace, or those named) are given --wait "
                    "seconds to be finalized by a running operator; then their Jobs are deleted, their running "
                    "processes handed back to Colonies (closed failed with an executor key), and their finalizer "
                    "dropped. Jobs in those namespaces whose ColoniesExecutor is gone are released and deleted.")
    release.add_argument("resources", nargs="*", metavar="NAMESPACE/NAME", help="a ColoniesExecutor to release")
    release.add_argument("-n", "--namespace", action="append", default=[],
                         help="release every ColoniesExecutor in this namespace (repeatable)")
    release.add_argument("--delete", action="store_true", help="delete the ColoniesExecutors first")
    release.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                         help="how long a running operator is given to finalize them itself (default 60; 0: none)")
    release.add_argument("--policy-file", default="", metavar="PATH",
                         help="the operator's policy (where the resources' Jobs may run): the same as the operator's")
    release.set_defaults(handler=_release)
    keygen = commands.add_parser("keygen", help="print a new Colonies private key and its id")
    keygen.set_defaults(handler=_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
