#!/usr/bin/env python3
"""Reads `iptables-save` output on stdin and writes an `iptables-restore --noflush` script that removes what
the test cluster added: chains named KUBE-* (kubelet, kube-proxy) and CNI-* (CNI plugins), the jumps to them,
rules carrying the given comment, and the given chains (up.sh's own). Nothing else is touched.

usage: iptables-save | iptables-cleanup.py COMMENT [CHAIN...] | iptables-restore --noflush
"""
import re
import shlex
import sys

PREFIXES = re.compile(r"^(KUBE-|CNI-)")


def main() -> None:
    comment, extra_chains = sys.argv[1], set(sys.argv[2:])

    def ours(chain: str) -> bool:
        return bool(PREFIXES.match(chain)) or chain in extra_chains
    out = []
    table, chains, deletes = None, [], []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.startswith("*"):
            table, chains, deletes = line[1:], [], []
        elif line.startswith(":") and table:
            name = line[1:].split()[0]
            if ours(name):
                chains.append(name)
        elif line.startswith("-A ") and table:
            words = shlex.split(line)
            chain = words[1]
            target = words[words.index("-j") + 1] if "-j" in words else ""
            has_comment = "--comment" in words and words[words.index("--comment") + 1] == comment
            if not ours(chain) and (ours(target) or has_comment):
                deletes.append("-D " + line[3:])
        elif line == "COMMIT" and table:
            if chains or deletes:
                out.append("*" + table)
                out += deletes
                out += ["-F " + c for c in chains]
                out += ["-X " + c for c in chains]
                out.append("COMMIT")
            table = None
    print("\n".join(out))


if __name__ == "__main__":
    main()
