"""Submit -> SUCCESS latency of a trivial process through the operator, next to creating the same Job
directly (create -> Complete), interleaved in the same run on the same cluster. Not a test: it prints figures.

usage: python bench/submit_latency.py [--count 20] [--operator-src DIR]
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from harness import POD_PHASES, JobClock, PodClock, arguments, direct_job, job_failed, job_finished, operator_serving, trivial_spec
from kubernetes import client

from colonies_operator.colonies import ProcessState

NAMESPACE = "bench-submit-latency"
CMD = "echo hello world"
POLL_SECONDS = 0.05
# The kubelet notices a container's start and exit on its 1-s relist (PLEG) and the Job controller batches pod
# updates for 1 s, so a run's time depends on where it starts within those ticks. Runs one after the other keep
# the same phase, which once favoured one side by 250 ms; a random pause before each run samples every phase.
PHASE_JITTER_SECONDS = 1.0


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"median {statistics.median(values) * 1000:6.0f} ms   mean {statistics.mean(values) * 1000:6.0f} ms   p90 {p90 * 1000:6.0f} ms   max {values[-1] * 1000:6.0f} ms"


def direct(batch: client.BatchV1Api, spec: dict, index: int) -> float | None:
    """Creates the Job the operator would make for `spec`, directly; the seconds until it is Complete (None:
    it failed)."""
    name = f"direct-{index:03d}"
    body = direct_job(NAMESPACE, name, spec, "direct")
    started = time.monotonic()
    batch.create_namespaced_job(NAMESPACE, body)
    while not job_finished(job := batch.read_namespaced_job_status(name, NAMESPACE)):
        time.sleep(POLL_SECONDS)
    if job_failed(job):
        print(f"  run {index}: the direct Job failed: {[c.message for c in job.status.conditions]}", flush=True)
        return None
    return time.monotonic() - started


def phase_steps(clock: JobClock, pods: PodClock, name: str) -> dict[str, float] | None:
    """The seconds each step from the Job's creation to its completion took, as the watches saw them (None: a
    step was not seen)."""
    marks = [("Job created", clock.created.get(name))]
    marks += [(phase, pods.seen.get(name, {}).get(phase)) for phase in POD_PHASES]
    marks.append(("Job finished", clock.finished.get(name)))
    if any(at is None for _, at in marks):
        return None
    return {f"{a} -> {b}": t_b - t_a for (a, t_a), (b, t_b) in zip(marks, marks[1:])}


def print_steps(title: str, runs: list[dict[str, float]]) -> None:
    print(f"  {title} ({len(runs)} runs), median of each step as the watches saw it:")
    for step in runs[0]:
        print(f"    {step:32} {statistics.median(r[step] for r in runs) * 1000:6.0f} ms")


def main() -> int:
    args = arguments(__doc__.splitlines()[0], count=(20, "runs of each"))
    with operator_serving(NAMESPACE, args.operator_src, args.kubeconfig) as setup:
        server, colony, batch = setup.server, setup.colony, setup.kube.batch
        spec = trivial_spec(colony, CMD)
        clock = JobClock(setup.kube, NAMESPACE)
        pods = PodClock(setup.kube, NAMESPACE)
        steps_direct, steps_operator = [], []
        through_operator, directly, failed = [], [], 0
        before_job, after_job = [], []  # the operator's own share: submit -> Job seen, Job Complete -> SUCCESS
        for i in range(args.count):
            time.sleep(random.uniform(0, PHASE_JITTER_SECONDS))
            if (took := direct(batch, spec, i)) is not None:  # interleaved, so both see the same load
                directly.append(took)
            else:
                failed += 1
            time.sleep(random.uniform(0, PHASE_JITTER_SECONDS))
            started = time.monotonic()
            process = server.client.submit(spec, colony.user_prvkey)
            while (p := server.client.get_process(process.processid, colony.user_prvkey)).state < ProcessState.SUCCESS:
                time.sleep(POLL_SECONDS)
            if p.state == ProcessState.SUCCESS:
                ended = time.monotonic()
                through_operator.append(ended - started)
                time.sleep(0.2)  # the watch may see the Job a moment after it is closed
                # The first attempt's Job (its name ends with its executor and assignment).
                name = next((n for n in clock.created if n.startswith(f"colonies-{process.processid[:32]}-0-")), "")
                if name in clock.created and name in clock.finished:
                    before_job.append(clock.created[name] - started)
                    after_job.append(ended - clock.finished[name])
                if steps := phase_steps(clock, pods, name):
                    steps_operator.append(steps)
                if took and (steps := phase_steps(clock, pods, f"direct-{i:03d}")):
                    steps_direct.append(steps)
                print(f"  run {i}: via the operator {through_operator[-1] * 1000:6.0f} ms, directly "
                      f"{took * 1000 if took else float('nan'):6.0f} ms", flush=True)
            else:
                failed += 1
                print(f"  run {i}: the process ended in state {p.state}: {p.errors}", flush=True)
    if not through_operator or not directly:
        print("no run succeeded")
        return 1
    print(f"\ntrivial process ({CMD!r}), {args.count} runs, one at a time (goal: ratio of medians at most 1.05):")
    if failed:
        print(f"  ({failed} runs failed and are left out: see above)")
    print(f"  Colonies submit -> SUCCESS via the operator: {percentiles(through_operator)}")
    print(f"  the same Job created directly -> Complete:    {percentiles(directly)}")
    print(f"  ratio of medians (operator / direct): "
          f"{statistics.median(through_operator) / statistics.median(directly):.2f}, of means "
          f"{statistics.mean(through_operator) / statistics.mean(directly):.2f}")
    if before_job:
        print(f"  the operator's own share (Jobs as a watch sees them): submit -> Job created median "
              f"{statistics.median(before_job) * 1000:.0f} ms, Job Complete -> SUCCESS seen median "
              f"{statistics.median(after_job) * 1000:.0f} ms (includes this benchmark's {POLL_SECONDS * 1000:.0f} ms "
              "polling)")
    if steps_direct and steps_operator:
        print_steps("the Jobs created directly", steps_direct)
        print_steps("the operator's Jobs", steps_operator)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
