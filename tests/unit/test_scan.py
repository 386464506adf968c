"""Adoption after a start, against fakes of Colonies and Kubernetes on virtual time: tried again until it works,
and a Job found wherever the executor's Jobs may be is carried on there, under the rules it started with."""

from __future__ import annotations

import asyncio

from colonies_operator.colonies import ColoniesUnreachable
from colonies_operator.core.names import job_name
from colonies_operator.core.policy import OperatorPolicy
from colonies_operator.engine.scan import Scanner
from tests.unit.test_reconcile import (
    EXECUTOR_ID,
    PID,
    FakeClient,
    FakeIdentity,
    FakeKube,
    config,
    process,
    reconciler,
)
from tests.unit.virtual_time import run_virtual


class ListingClient(FakeClient):
    """Lists the processes running here from `lists` in turn (a list, or an exception), the last one ever after."""

    def __init__(self, *lists) -> None:
        super().__init__()
        self.lists = list(lists)

    async def running_on(self, colony, executor_id, prvkey):
        answer = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class ListingKube(FakeKube):
    def __init__(self, jobs: list[dict]) -> None:
        super().__init__()
        self.jobs = jobs

    async def list_jobs(self, namespace, label_selector):
        return [job for job in self.jobs if job["metadata"]["namespace"] == namespace]

    async def list_jobs_everywhere(self, label_selector):
        return list(self.jobs)


def a_job(namespace: str, pid: str = PID, attempt: int = 0) -> dict:
    running = process()
    return {"metadata": {"name": job_name(pid, attempt, EXECUTOR_ID, running.starttime), "namespace": namespace,
                         "annotations": {"colonyos.io/process-id": pid, "colonyos.io/attempt": str(attempt),
                                         "colonyos.io/assigned-at": running.starttime.isoformat()}},
            "status": {"active": 1}}


def test_an_adoption_that_failed_once_is_tried_again_until_it_works():
    async def main():
        rec, kube, view, _ = reconciler(ListingKube([a_job("ops")]))
        client = ListingClient(ColoniesUnreachable("connection refused"), [])
        scanner = Scanner(rec, view, name="ops/cluster", executor_log=lambda line: None)
        scanner.start(config(), FakeIdentity(client))
        await asyncio.sleep(10)
        await scanner.stop()
        assert (PID, 0) in rec.attempts, "the Job of an attempt Colonies does not run here is looked at"
        attempt = rec.attempts[(PID, 0)]
        assert attempt.known_from_job and attempt.job_name == a_job("ops")["metadata"]["name"]
    run_virtual(main())


def test_a_job_left_in_the_namespace_the_spec_named_before_is_carried_on_there():
    async def main():
        policy = OperatorPolicy(job_namespaces=("jobs-a", "jobs-b"))
        old = a_job("jobs-a")
        rec, kube, view, _ = reconciler(ListingKube([old]))
        client = ListingClient([process()])
        today = config("jobs-b")  # spec.jobs.namespace was jobs-a when the process started
        today = type(today)(**{**today.__dict__, "policy": policy})
        scanner = Scanner(rec, view, name="ops/cluster", executor_log=lambda line: None)
        scanner.start(today, FakeIdentity(client))
        await asyncio.sleep(1)
        await scanner.stop()
        attempt = rec.attempts[(PID, 0)]
        assert (attempt.namespace, attempt.job_name) == ("jobs-a", old["metadata"]["name"])
        view.jobs[("jobs-a", attempt.job_name)] = old
        await rec._reconcile(attempt)
        assert kube.created == [] and client.closed == [], "no second Job in the namespace the spec names today"
    run_virtual(main())
