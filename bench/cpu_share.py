#!/usr/bin/env python3
"""CPU used by each component on this machine over a window: the API server, controller manager, scheduler,
etcd, kubelet, containerd, kwok, the Colonies server, PostgreSQL and Python (the operator and the benchmarks'
clients), from /proc every 5 s. Run it beside a benchmark to see where a burst's CPU goes, e.g.
`python bench/cpu_share.py 75 & python bench/scale.py`. Not a test: it prints figures.

usage: python bench/cpu_share.py SECONDS
"""

from __future__ import annotations

import collections
import os
import sys
import time
from pathlib import Path

from harness import cpu_seconds

# Prefixes of the command names (/proc/PID/comm keeps 15 characters).
COMPONENTS = ("kube-apiserver", "kube-controller", "kube-scheduler", "etcd", "kubelet", "containerd", "kwok",
              "colonies", "postgres", "python")


def cpu_by_process() -> dict[tuple[str, str], float]:
    """(component, pid) -> CPU seconds so far, for every process of a known component ("other" for the rest)."""
    used: dict[tuple[str, str], float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/comm").read_text().strip()
            seconds = cpu_seconds(int(pid))
        except OSError:  # it ended meanwhile
            continue
        component = next((c for c in COMPONENTS if command.startswith(c[:15])), "other")
        used[(component, pid)] = seconds
    return used


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    window = float(sys.argv[1])
    totals: collections.Counter[str] = collections.Counter()
    before, started = cpu_by_process(), time.monotonic()
    while time.monotonic() - started < window:
        time.sleep(min(5.0, max(0.0, window - (time.monotonic() - started))))
        now = cpu_by_process()
        for key, seconds in now.items():
            if key in before:  # a process started within the window counts from its first sample
                totals[key[0]] += seconds - before[key]
        before = now
    elapsed = time.monotonic() - started
    print(f"CPU over {elapsed:.0f} s, {os.cpu_count()} cores:")
    for component, seconds in totals.most_common():
        print(f"  {component:16} {seconds:7.1f} CPU-s  {seconds / elapsed:5.2f} cores")
    print(f"  {'all':16} {sum(totals.values()):7.1f} CPU-s  {sum(totals.values()) / elapsed:5.2f} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
