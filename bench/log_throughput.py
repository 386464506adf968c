"""Log throughput of one process: its container writes N numbered lines as fast as it can, then waits a little
(containerd can drop the tail of a burst when a container exits at once); the operator ships them. Not a test: it
prints figures.

Prints the operator's rate (lines over the time between the Colonies times of the first and the last entry), the
container's own write rate (from the kubelet's times of its first and last lines), the Colonies RPCs it took per
1,000 lines (from the operator's metrics: addlog and getlogs, and all of them), and, as the baseline measured in
the same run on the same container, the rate at which the API server serves that log when read at once
(timestamps on, as the operator reads it), with the ratio. Every line is checked to be in Colonies exactly once.

usage: python bench/log_throughput.py [--lines 50000] [--operator-src DIR]
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time

from harness import arguments, operator_serving, trivial_spec, wait_until
from scale import RPC_METRIC, counter_delta, free_port, scrape

from colonies_operator.core.loglines import normalize_timestamp

NAMESPACE = "bench-log-throughput"
NUMBERED = re.compile(r"^line (\d+) ")
PAD = "x" * 107  # "line 0000000 " and the padding: 120 bytes a line


def main() -> int:
    args = arguments(__doc__.splitlines()[0], lines=(50_000, "numbered lines the container writes (the kubelet's "
                                                               "file, about 160 bytes a line, must stay under its "
                                                               "10 MiB rotation)"))
    count = args.lines
    port = free_port()
    cmd = (f"awk 'BEGIN {{ for (i = 0; i < {count}; i++) printf \"line %07d {PAD}\\n\", i }}'; sleep 10")
    metrics = ["--metrics-port", str(port), "--metrics-address", "127.0.0.1"]
    with operator_serving(NAMESPACE, args.operator_src, args.kubeconfig, extra_args=metrics) as setup:
        server, colony, core = setup.server, setup.colony, setup.kube.core
        before = scrape(port)
        process = server.client.submit(trivial_spec(colony, cmd, cpu="1", mem="64Mi"), colony.user_prvkey)
        wait_until(lambda: server.client.get_process(process.processid, colony.user_prvkey).state >= 2, 600,
                   "the process to finish", interval=1)
        after = scrape(port)
        entries = server.client.all_logs(colony.name, process.processid, colony.user_prvkey)
        numbers = [int(m.group(1)) for e in entries for line in e.message.splitlines()
                   if (m := NUMBERED.match(line))]
        first = next(e for e in entries if NUMBERED.search(e.message.splitlines()[0]))
        last = next(e for e in reversed(entries) if NUMBERED.search(e.message))
        operator_seconds = (last.timestamp - first.timestamp) / 1e9
        # The baseline: the same log, read at once through the API server as the operator reads it.
        pod = core.list_namespaced_pod(NAMESPACE, label_selector=f"colonyos.io/process-id={process.processid[:63]}")
        started = time.monotonic()
        raw = subprocess.run(["kubectl", "--kubeconfig", setup.kube.kubeconfig, "-n", NAMESPACE, "logs",
                              "--timestamps", pod.items[0].metadata.name], check=True, stdout=subprocess.PIPE).stdout
        read_seconds = time.monotonic() - started
        raw_lines = raw.count(b"\n")
        served = raw.splitlines()
        if not served:
            raise SystemExit(f"the API server served no log for pod {pod.items[0].metadata.name}")
        stamps = [served[0].split(b" ", 1)[0].decode(), served[-1].split(b" ", 1)[0].decode()]
    write_seconds = seconds_between(*stamps)
    rpcs = {dict(labels).get("rpc"): value
            for labels, value in (counter_delta(before, after, RPC_METRIC) or {}).items()}
    log_rpcs = rpcs.get("addlogmsg", 0) + rpcs.get("getlogsmsg", 0)
    operator_rate, raw_rate = count / operator_seconds, raw_lines / read_seconds

    print(f"\nlog throughput of one process, {count} lines of 120 bytes (goals: >= 20,000 lines/s, <= 1 RPC per "
          "1,000 lines):")
    print(f"  lines in Colonies: {len(numbers)} ({len(set(numbers))} distinct; "
          f"{'each once, in order' if numbers == list(range(count)) else 'NOT each once in order'})")
    print(f"  the container wrote them in {write_seconds:.2f} s ({count / write_seconds:,.0f} lines/s, kubelet times)")
    print(f"  the operator shipped them in {operator_seconds:.2f} s: {operator_rate:,.0f} lines/s "
          f"(Colonies times of the first and last entries; {len(entries)} entries)")
    print(f"  baseline, the API server serving that log at once: {raw_lines} lines in {read_seconds:.2f} s, "
          f"{raw_rate:,.0f} lines/s")
    print(f"  ratio operator / baseline: {operator_rate / raw_rate:.2f}")
    print(f"  Colonies RPCs for the log: {log_rpcs:.0f} (addlog {rpcs.get('addlogmsg', 0):.0f}, getlogs "
          f"{rpcs.get('getlogsmsg', 0):.0f}): {1000 * log_rpcs / count:.2f} per 1,000 lines; all RPCs meanwhile "
          f"{sum(rpcs.values()):.0f} ({', '.join(f'{k} {v:.0f}' for k, v in sorted(rpcs.items()) if v)})")
    return 0


def seconds_between(first: str, last: str) -> float:
    """Seconds between two of the kubelet's RFC 3339 times (nanoseconds kept)."""
    def parse(stamp: str) -> float:
        normal = normalize_timestamp(stamp)
        return dt.datetime.fromisoformat(normal[:19]).timestamp() + int(normal[20:29]) / 1e9
    return parse(last) - parse(first)


if __name__ == "__main__":
    sys.exit(main())
