"""The operator's peak memory while it adopts a process that has logged N lines (1,000,000 by default). The
process's container writes them (20,000 a second; the kubelet rotates its file many times meanwhile), then a line
every half second; the operator ships them. Then the operator is killed and started again, and adopts the process
while it runs. Not a test: it prints figures.

Prints the restarted operator's peak RSS (VmHWM: from its start until it has shipped lines written after the
restart) next to the baseline measured in the same run, the first operator's peak RSS while it was idle with the
same executor, and the ratio; how long the adoption took; and whether every line is in Colonies exactly once.

usage: python bench/adoption_memory.py [--lines 1000000] [--rate 20000] [--operator-src DIR]
"""

from __future__ import annotations

import re
import sys
import time

from harness import (
    arguments,
    operator_serving,
    rss_mib,
    start_operator,
    status_mib,
    trivial_spec,
    wait_until,
)

from colonies_operator.colonies import LogEntry
from colonies_operator.colonies.wire import logs_payload

NAMESPACE = "bench-adoption-memory"
NUMBERED = re.compile(r"^line (\d+) ")
TICK = re.compile(r"^tick (\d+)$")
PAD = "x" * 87  # "line 0000000 " and the padding: 100 bytes a line


def main() -> int:
    args = arguments(__doc__.splitlines()[0], lines=(1_000_000, "lines the process logs before the restart"),
                     rate=(20_000, "lines a second the process writes them at, at most"),
                     idle=(20.0, "seconds the baseline (the first operator, idle) is watched"),
                     resume_timeout=(180.0, "seconds the restarted operator has to ship a line written after "
                                            "the restart"))
    count = args.lines
    # At a rate the kubelet serves as it writes: it rotates the file every 10 s, and a stream that falls a file
    # behind misses the files in between (it follows only into the current one).
    chunk = max(1, args.rate // 10)
    cmd = (f"awk 'BEGIN {{ for (i = 0; i < {count}; i++) {{ printf \"line %07d {PAD}\\n\", i; "
           f"if (i % {chunk} == {chunk - 1}) {{ fflush(); system(\"sleep 0.1\") }} }} }}'; "
           "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.5; done")
    with operator_serving(NAMESPACE, args.operator_src, args.kubeconfig) as setup:
        server, colony = setup.server, setup.colony
        time.sleep(args.idle)
        baseline = status_mib(setup.operator.pid, "VmHWM")
        process = server.client.submit(trivial_spec(colony, cmd, cpu="1", mem="64Mi", walltime=3600),
                                       colony.user_prvkey)
        pid = process.processid

        def newest() -> LogEntry | None:
            entries = server.client.rpc("getlogsmsg", logs_payload(colony.name, pid, count=1, latest=True),
                                        colony.user_prvkey)
            return LogEntry.from_dict(entries[-1]) if entries else None

        def ticks() -> int:
            entry = newest()
            found = [int(m.group(1)) for line in (entry.message if entry else "").splitlines()
                     if (m := TICK.match(line))]
            return max(found, default=-1)

        started = time.monotonic()
        wait_until(lambda: ticks() >= 0, 1800, f"the {count} lines shipped", interval=2)
        shipped_in = time.monotonic() - started
        first_peak, first_rss = status_mib(setup.operator.pid, "VmHWM"), rss_mib(setup.operator.pid)
        setup.operator.kill()
        setup.operator.wait()
        tick_at_kill = ticks()
        time.sleep(3)
        setup.operator = start_operator(setup.kube, [NAMESPACE], args.operator_src, restart=True)
        restarted = time.monotonic()
        try:
            wait_until(lambda: ticks() >= tick_at_kill + 10, args.resume_timeout,
                       "lines written after the restart shipped", interval=0.5)
            adopted_in: float | None = time.monotonic() - restarted
        except TimeoutError:  # an operator that never resumes: its memory is read all the same
            adopted_in = None
        peak, rss = status_mib(setup.operator.pid, "VmHWM"), rss_mib(setup.operator.pid)
        server.client.cancel(pid, colony.user_prvkey)
        seen, duplicates, ticks_seen = bytearray(count), 0, []
        since = 0
        while True:  # page by page: the benchmark's own memory stays small too
            page = server.client.get_logs(colony.name, pid, colony.user_prvkey, since=since)
            for entry in page:
                for line in entry.message.splitlines():
                    if m := NUMBERED.match(line):
                        number = int(m.group(1))
                        duplicates += seen[number]
                        seen[number] = 1
                    elif m := TICK.match(line):
                        ticks_seen.append(int(m.group(1)))
            if len(page) < 500:
                break
            since = page[-1].timestamp
    missing = count - sum(seen)
    tick_gaps = sorted(set(range(ticks_seen[-1] + 1)) - set(ticks_seen)) if ticks_seen else []

    print(f"\nthe operator adopting a process with {count:,} logged lines (goal: peak RSS under 150 MiB):")
    print(f"  baseline, the first operator idle with the executor ({args.idle:.0f} s): peak RSS {baseline:.1f} MiB")
    print(f"  the first operator shipped the lines in {shipped_in:.0f} s; its peak RSS {first_peak:.1f} MiB, "
          f"RSS then {first_rss:.1f} MiB")
    until = (f"until lines written after the restart were shipped ({adopted_in:.1f} s)" if adopted_in is not None
             else f"over {args.resume_timeout:.0f} s, in which it shipped no line written after the restart")
    print(f"  the restarted operator, {until}: peak RSS {peak:.1f} MiB ({peak / baseline:.2f}x baseline), RSS then "
          f"{rss:.1f} MiB")
    print(f"  numbered lines in Colonies: {count - missing:,} of {count:,}, {duplicates} twice; ticks: "
          f"{len(ticks_seen)} ({len(ticks_seen) - len(set(ticks_seen))} twice, {len(tick_gaps)} missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
