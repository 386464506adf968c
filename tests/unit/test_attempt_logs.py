"""The log of an attempt with ColonyFS steps: their lines reach the process log, prefixed with the step, and an
adopted attempt resumes each container after the lines Colonies holds, the steps' told apart by their prefix."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from colonies_operator.colonies import LogEntry, Process
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.plan import plan_job
from colonies_operator.engine.attempt_logs import AttemptLogs, LogLimits
from tests.unit.virtual_time import run_virtual

PID = "ab" * 32
STARTED = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc)
EPOCH = int(STARTED.timestamp()) * 10**9 + 10**9  # Colonies' time (ns) of the first entry: after the attempt began


class Client:
    def __init__(self, held: list[str]) -> None:
        self.held = [LogEntry(message=m, timestamp=EPOCH + i) for i, m in enumerate(held)]
        self.added: list[str] = []

    async def get_logs(self, colony, pid, prvkey, since=0, count=500):
        return [e for e in self.held if e.timestamp > since][:count]

    async def newest_log(self, colony, pid, prvkey):
        return self.held[-1] if self.held else None

    async def add_log(self, pid, message, prvkey):
        self.added.append(message)


@dataclasses.dataclass
class Identity:
    client: Client
    prvkey: str = "k"
    colony: str = "dev"


class Kube:
    """Each container's log, as the kubelet streams it."""

    def __init__(self, logs: dict[str, list[str]]) -> None:
        self.logs = logs

    async def stream_log(self, namespace, pod, container, since, *, follow=True):
        for i, line in enumerate(self.logs[container]):
            yield f"2026-12-04T10:00:{i:02d}.000000000Z {line}\n".encode()

    async def patch_job(self, namespace, name, patch):
        pass


def ended(name: str) -> dict:
    return {"name": name, "state": {"terminated": {"exitCode": 0}}}


POD = {"metadata": {"name": "p", "annotations": {"batch.kubernetes.io/job-completion-index": "0"}},
       "status": {"initContainerStatuses": [ended("colonyfs-in"), ended("colonyfs-out")],
                  "containerStatuses": [ended("main")]}}
LOGS = {"colonyfs-in": ["in 1", "in 2"], "main": ["main 1", "main 2"], "colonyfs-out": ["out 1"]}


def shipped(held: list[str], adopted: bool) -> list[str]:
    config = config_from_spec({"server": {"host": "h"}, "colonyName": "dev", "credentials": {
        "colonyKeySecret": {"name": "k"}}, "fs": {"s3SecretRef": {"name": "s3"}}}, namespace="ns", name="cluster")
    process = Process.from_dict({"processid": PID, "spec": {"funcname": "execute", "kwargs": {
        "docker-image": "busybox:1.35", "cmd": "true"}, "fs": {"mount": "/cfs", "dirs": [
            {"label": "/in", "dir": "/in"}]}}})
    plan = plan_job(process, config)
    client = Client(held)

    async def main() -> list[str]:
        logs = AttemptLogs(identity=Identity(client), pid=PID, namespace="ns", job_name="j", kube=Kube(LOGS),
                           adopted=adopted, active_pods=lambda: [], job=lambda: {"metadata": {"name": "j"}},
                           wake=lambda: None, on_refused=lambda err: None, limits=LogLimits.of(8))
        while (later := await logs.drain(plan, [POD], STARTED)) is not None:
            await asyncio.sleep(later)
        logs.close()
        return "".join(client.added).splitlines()

    return run_virtual(main())


def test_the_steps_lines_reach_the_process_log_prefixed_with_the_step():
    assert sorted(shipped([], adopted=False)) == sorted(
        ["[0/colonyfs-in] in 1", "[0/colonyfs-in] in 2", "main 1", "main 2", "[0/colonyfs-out] out 1"])


def test_an_adopted_attempt_tells_the_steps_lines_apart_from_the_single_containers():
    # The process's one container has no prefix: a line is a step's only by its prefix.
    held = ["[0/colonyfs-in] in 1\n", "main 1\n"]
    assert sorted(shipped(held, adopted=True)) == sorted(["[0/colonyfs-in] in 2", "main 2", "[0/colonyfs-out] out 1"])
