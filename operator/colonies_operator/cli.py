"""The `colonies-operator` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .colonies import crypto


def _keygen(_: argparse.Namespace) -> int:
    prvkey = crypto.generate_prvkey()
    # The key goes to stdout only, for piping into `kubectl create secret`; never into a log.
    print(f"prvkey: {prvkey}")
    print(f"id:     {crypto.prvkey_to_id(prvkey)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colonies-operator",
        description="Run a Kubernetes cluster as a ColonyOS executor: ColoniesExecutor resources become "
                    "Colonies executors, and the processes they are assigned become Kubernetes Jobs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
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
