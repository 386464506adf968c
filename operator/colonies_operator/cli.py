"""The `colonies-operator` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .colonies import crypto
from .core.policy import DEFAULT_POLICY, OperatorPolicy, PolicyError, policy_from_dict


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
    import logging

    import kopf

    # A policy the operator cannot read stops it here: running without it would allow what the admin refused.
    try:
        policy = load_policy(args.policy_file)
    except PolicyError as err:
        raise SystemExit(f"colonies-operator run: --policy-file: {err}") from None

    from . import handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.JSON if args.json_logs else kopf.LogFormat.PLAIN)
    logging.getLogger("colonies_operator").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # The operator reports API outages itself, once; urllib3 would warn on every retried request.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # not a line per liveness probe
    namespaces = args.namespace or []
    if not namespaces and not args.all_namespaces:
        raise SystemExit("colonies-operator run: give --namespace NS (repeatable) or --all-namespaces")
    if args.metrics_port:
        from .engine import metrics

        metrics.start_server(args.metrics_port, args.metrics_address)
    # The handlers find the policy and the limits in memo.
    memo = kopf.Memo(policy=policy, max_log_streams=args.max_log_streams,
                     max_log_streams_per_process=args.max_log_streams_per_process,
                     colonies_timeout=args.colonies_timeout)
    kopf.run(standalone=True, clusterwide=args.all_namespaces, namespaces=namespaces,
             liveness_endpoint=args.liveness or None, memo=memo)
    return 0


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
    run.add_argument("--liveness", default="", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--metrics-port", type=int, default=0, metavar="PORT",
                     help="serve Prometheus metrics on this port (default 0: off)")
    run.add_argument("--metrics-address", default="0.0.0.0", metavar="ADDR",
                     help="the address --metrics-port listens on (default 0.0.0.0)")
    run.add_argument("--policy-file", default="", metavar="PATH",
                     help="the cluster admin's policy (YAML or JSON): where Jobs may run, service accounts, tokens, "
                          "pod security profiles, the ceiling of per-process limits, defaults (default: the safe "
                          "built-in policy; the chart renders one from its `policy` values)")
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
