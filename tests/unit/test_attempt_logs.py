"""The log of an attempt with ColonyFS steps: their lines reach the process log, prefixed with the step, and an
adopted attempt resumes each container after the lines Colonies holds, the steps' counted apart."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from colonies_operator.colonies import Process
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.plan import plan_job
from colonies_operator.engine.attempt_logs import AttemptLogs
from tests.unit.virtual_time import run_virtual

PID = "ab" * 32
STARTED = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc)


@dataclasses.dataclass
class Entry:
    message: str


class Client:
    def __init__(self, held: list[str]) -> None:
        self.held, self.added = held, []

    async def logs_since(self, colony, pid, prvkey, since):
        return [Entry(message) for message in self.held]

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

    async def stream_log(self, namespace, pod, container, since):
        for i, line in enumerate(self.logs[container]):
            yield f"2026-12-04T10:00:{i:02d}.000000000Z {line}\n".encode()


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
        logs = AttemptLogs(identity=Identity(client), pid=PID, namespace="ns", kube=Kube(LOGS), adopted=adopted,
                           active_pods=lambda: [], wake=lambda: None, on_refused=lambda err: None,
                           stream_limiter=asyncio.Semaphore(8))
        while (later := await logs.drain(plan, [POD], STARTED)) is not None:
            await asyncio.sleep(later)
        logs.close()
        return "".join(client.added).splitlines()

    return run_virtual(main())


def test_the_steps_lines_reach_the_process_log_prefixed_with_the_step():
    assert sorted(shipped([], adopted=False)) == sorted(
        ["[0/colonyfs-in] in 1", "[0/colonyfs-in] in 2", "main 1", "main 2", "[0/colonyfs-out] out 1"])


def test_an_adopted_attempt_counts_the_steps_lines_apart_from_the_single_containers():
    # The process's one container has no prefix: every line starts with "", so the steps' must be counted first.
    held = ["[0/colonyfs-in] in 1\n", "main 1\n"]
    assert sorted(shipped(held, adopted=True)) == sorted(["[0/colonyfs-in] in 2", "main 2", "[0/colonyfs-out] out 1"])
