"""The reconciler's actions against fakes of Colonies and Kubernetes: what it does with each answer.

The decisions themselves are tested on plain data in test_decide.py; here, that a Colonies or Kubernetes
error becomes the right fact (and never a deleted Job or a failed process when it is transient)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

from colonies_operator.colonies import (
    ColoniesUnreachable,
    Forbidden,
    InvalidRequest,
    LogEntry,
    NotFound,
    Process,
    ServerError,
)
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.decide import ProcessView
from colonies_operator.kube.api import KubeError
from colonies_operator.core.names import job_name
from colonies_operator.engine.attempt_logs import LogLimits
from colonies_operator.engine.reconciler import Reconciler
from colonies_operator.engine.workqueue import WorkQueue

EXECUTOR_ID = "e" * 64
PID = "a" * 64


def config(namespace: str = "jobs-a"):
    return config_from_spec({"server": {"host": "colonies"}, "colonyName": "dev",
                             "credentials": {"colonyKeySecret": {"name": "k"}}, "jobs": {"namespace": namespace}},
                            namespace="ops", name="cluster")


def process(retries: int = 0, state: int = 1, executor: str = EXECUTOR_ID, starttime: str = "2026-12-01T12:00:00Z",
            **kwargs: Any) -> Process:
    spec = {"funcname": "execute", "kwargs": {"docker-image": "busybox:1.35", "cmd": "echo hi"},
            "conditions": {"nodes": 1, "processespernode": 1}}
    spec.update(kwargs)
    return Process.from_dict({"processid": PID, "retries": retries, "state": state, "assignedexecutorid": executor,
                              "starttime": starttime, "spec": spec})


class FakeClient:
    def __init__(self) -> None:
        self.process_answers: list[Any] = []  # Process or an exception, one per get_process
        self.close_answers: list[Any] = []
        self.closed: list[tuple[str, Any]] = []
        self.logs: list[str] = []

    async def get_process(self, pid, prvkey):
        answer = self.process_answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def _close(self, kind, value):
        if self.close_answers:
            answer = self.close_answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
        self.closed.append((kind, value))

    async def close_successful(self, pid, prvkey, output=()):
        await self._close("successful", list(output))

    async def close_failed(self, pid, errors, prvkey):
        await self._close("failed", list(errors))

    async def add_log(self, pid, message, prvkey):
        self.logs.append(message)

    async def get_logs(self, colony, pid, prvkey, since=0, count=500):
        entries = [LogEntry(message=m, timestamp=i + 1) for i, m in enumerate(self.logs)]
        return [e for e in entries if e.timestamp > since][:count]

    async def newest_log(self, colony, pid, prvkey):
        return LogEntry(message=self.logs[-1], timestamp=len(self.logs)) if self.logs else None


@dataclasses.dataclass
class FakeIdentity:
    client: FakeClient
    prvkey: str = "k"
    executor_id: str = EXECUTOR_ID
    colony: str = "dev"
    executor_name: str = "cluster"
    logged: list[str] = dataclasses.field(default_factory=list)  # the executor's own Colonies log

    async def log(self, message: str) -> None:
        self.logged.append(message)


class FakeKube:
    def __init__(self, create_errors: list[KubeError] | None = None) -> None:
        self.create_errors = list(create_errors or [])
        self.dry_run_errors: list[KubeError] = []  # answers of dry runs, in turn (none left: accepted)
        self.clock_offset = dt.timedelta(0)  # the API server's clock minus this machine's
        self.created: list[dict] = []
        self.deleted: list[tuple[str, str]] = []
        self.patched: list[tuple[str, str, dict]] = []
        self.pods: dict[str, dict] = {}  # by name, as the API server has them
        self.reads: list[tuple[str, str]] = []  # ("get", pod) or ("list", job)
        self.get_forbidden = False  # RBAC that lets the operator list pods but not get one

    def now(self):
        return dt.datetime.now(dt.timezone.utc) + self.clock_offset

    async def create_job(self, job, dry_run=False):
        if dry_run:
            if self.dry_run_errors:
                raise self.dry_run_errors.pop(0)
            return job
        if self.create_errors:
            raise self.create_errors.pop(0)
        self.created.append(job)
        return job

    async def get_job(self, namespace, name):
        return None

    async def patch_job(self, namespace, name, patch):
        self.patched.append((namespace, name, patch))

    async def delete_job(self, namespace, name):
        self.deleted.append((namespace, name))

    async def list_pods_of_job(self, namespace, job):
        self.reads.append(("list", job))
        return [pod for pod in self.pods.values() if pod["metadata"]["labels"]["job-name"] == job]

    async def get_pod(self, namespace, name):
        self.reads.append(("get", name))
        if self.get_forbidden:
            raise KubeError(403, "Forbidden", 'pods "x" is forbidden: cannot get resource "pods"')
        return self.pods.get(name)


class FakeView:
    """A synced view where Jobs, pods and Workloads are only what the test puts there."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods_of: dict[tuple[str, str], list[dict]] = {}
        self.workloads: dict[tuple[str, str], dict] = {}
        self.used: list[str] = []
        self.workloads_used: list[str] = []

    def use(self, namespace):
        self.used.append(namespace)

    async def release(self, namespace):
        self.used.remove(namespace)

    def use_workloads(self, namespace):
        self.workloads_used.append(namespace)

    async def release_workloads(self, namespace):
        self.workloads_used.remove(namespace)

    def synced(self, namespace):
        return True

    def job(self, namespace, name):
        return self.jobs.get((namespace, name))

    def pods(self, namespace, job):
        return list(self.pods_of.get((namespace, job), []))

    def workload(self, namespace, job):
        return self.workloads.get((namespace, job))

    def workloads_problem(self, namespace):
        return None


def reconciler(kube: FakeKube | None = None) -> tuple[Reconciler, FakeKube, FakeView, list]:
    kube, view, refusals = kube or FakeKube(), FakeView(), []
    rec = Reconciler(kube, view, executor_label="ops/cluster", log_name="t", on_change=lambda: None,
                     on_jobs_refused=refusals.append, log_limits=LogLimits.of(4))
    return rec, kube, view, refusals


async def settle(rec: Reconciler, attempt) -> None:
    """Reconciles the attempt until it waits (what the workers would do)."""
    await rec._reconcile(attempt)


def test_colonies_unable_to_say_how_a_running_process_stands_keeps_its_job():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        for error in (ServerError("bad gateway", status=502), Forbidden("not a member", status=403),
                      ColoniesUnreachable("down")):
            attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
            view.jobs[(attempt.namespace, attempt.job_name)] = {"metadata": {"name": attempt.job_name},
                                                                "status": {"active": 1}}
            attempt.view = ProcessView.UNCONFIRMED
            client.process_answers = [error]
            await settle(rec, attempt)
            assert attempt.view == ProcessView.UNKNOWN, error
            assert kube.deleted == [] and client.closed == []
            rec._drop(attempt, count=False)
    asyncio.run(main())


def test_a_process_gone_from_colonies_loses_its_job():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        view.jobs[(attempt.namespace, attempt.job_name)] = {"metadata": {"name": attempt.job_name}, "status": {}}
        attempt.view = ProcessView.UNCONFIRMED
        client.process_answers = [NotFound("process not found", status=404)]
        await settle(rec, attempt)
        assert kube.deleted == [(attempt.namespace, attempt.job_name)]
        assert attempt.key not in rec.attempts and client.closed == []
    asyncio.run(main())


def test_job_creation_retries_stop_once_the_process_is_cancelled():
    async def main():
        rec, kube, view, _ = reconciler(FakeKube([KubeError(503, "ServiceUnavailable", "etcd busy")]))
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        await settle(rec, attempt)
        assert kube.created == [] and attempt.create_error
        attempt.view = ProcessView.UNCONFIRMED  # the scan did not list it any more
        client.process_answers = [process(state=4)]
        await settle(rec, attempt)
        assert kube.created == [] and client.closed == [] and attempt.key not in rec.attempts
    asyncio.run(main())


def test_a_requeued_process_handed_back_runs_as_a_new_attempt():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        first = rec.add(process(retries=0), config(), FakeIdentity(client), adopted=False)
        await settle(rec, first)
        # maxexectime re-queued it, and the same executor got it back before the scan noticed
        second = rec.add(process(retries=1), config(), FakeIdentity(client), adopted=False)
        assert first is not second and len(rec.attempts) == 2
        first.view = ProcessView.UNCONFIRMED
        client.process_answers = [process(retries=1)]
        await settle(rec, first)
        await settle(rec, second)
        assert [j["metadata"]["name"] for j in kube.created] == [first.job_name, second.job_name]
        assert (first.namespace, first.job_name) in kube.deleted
        assert list(rec.attempts) == [second.key]
    asyncio.run(main())


def test_a_refused_close_reads_the_process_before_believing_it_cancelled():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        attempt.job_expected, attempt.logs.drained = True, True
        attempt.final_pods = ()
        view.jobs[(attempt.namespace, attempt.job_name)] = {
            "metadata": {"name": attempt.job_name},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
        client.close_answers = [InvalidRequest("bad request", status=400)]
        client.process_answers = [process()]  # still RUNNING here: the close is tried again
        await settle(rec, attempt)
        assert client.closed == [("successful", [])]
        assert attempt.view == ProcessView.SUCCEEDED
    asyncio.run(main())


def test_an_attempt_keeps_the_config_it_started_with():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        attempt = rec.add(process(), config("jobs-a"), FakeIdentity(client), adopted=False)
        await settle(rec, attempt)
        later = rec.add(process(retries=1), config("jobs-b"), FakeIdentity(client), adopted=False)
        await settle(rec, later)
        assert [j["metadata"]["namespace"] for j in kube.created] == ["jobs-a", "jobs-b"]
        assert sorted(view.used) == ["jobs-a", "jobs-b"]
    asyncio.run(main())


def test_a_namespace_without_rights_is_the_executors_problem_not_the_processs():
    async def main():
        rec, kube, view, refusals = reconciler(FakeKube([KubeError(403, "Forbidden", "jobs.batch is forbidden")]))
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        await settle(rec, attempt)
        assert client.closed == [] and refusals and refusals[0].status == 403
        await settle(rec, attempt)  # rights granted: the Job is created and the executor is told
        assert len(kube.created) == 1 and refusals[-1] is None
    asyncio.run(main())


def test_a_job_too_big_for_the_cluster_fails_its_process_before_any_request():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        big = process(conditions={"nodes": 1, "processespernode": 64}, env={"DATA": "x" * 20_000})
        identity = FakeIdentity(client)
        attempt = rec.add(big, config(), identity, adopted=False)
        await settle(rec, attempt)
        assert kube.created == []
        assert client.closed and client.closed[0][0] == "failed" and "KiB" in client.closed[0][1][0]
        assert [m for m in identity.logged if big.processid in m and "refused" in m and "KiB" in m]
    asyncio.run(main())


def test_a_gpu_model_the_cluster_lacks_is_refused_without_a_job_and_said_in_the_executor_log():
    async def main():
        rec, kube, view, _ = reconciler()
        rec.know_gpu_models(frozenset({"a100"}))
        client = FakeClient()
        identity = FakeIdentity(client)
        attempt = rec.add(process(conditions={"nodes": 1, "processespernode": 1, "gpu": {"count": 1, "name": "h100"}}),
                          config(), identity, adopted=False)
        await settle(rec, attempt)
        assert kube.created == []
        assert client.closed[0][0] == "failed" and "GPU model" in client.closed[0][1][0]
        assert any(PID in m and "'h100'" in m for m in identity.logged)
    asyncio.run(main())


def test_an_adopted_attempt_is_not_refused_for_its_gpu_model():
    rec, *_ = reconciler()
    rec.know_gpu_models(frozenset())

    async def main():
        attempt = rec.add(process(conditions={"nodes": 1, "processespernode": 1, "gpu": {"count": 1, "name": "h100"}}),
                          config(), FakeIdentity(FakeClient()), adopted=True)
        assert attempt.invalid is None and attempt.plan.gpu_name == "h100"
    asyncio.run(main())


def test_debug_puts_what_was_created_first_in_the_process_log():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        attempt = rec.add(process(kwargs={"docker-image": "busybox:1.35", "cmd": "echo hi", "debug": True}),
                          config(), FakeIdentity(client), adopted=False)
        await settle(rec, attempt)
        assert len(kube.created) == 1
        await attempt.logs.shipper.flush()
        assert client.logs and client.logs[0].startswith("ColonyOS: Job jobs-a/colonies-")
    asyncio.run(main())


def test_a_process_closed_lately_is_not_taken_again_from_a_late_list_of_running_processes():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        running = process()
        assert rec.unknown(running)  # running here, unknown: an assignment whose reply was lost
        attempt = rec.add(running, config(), FakeIdentity(client), adopted=True)
        assert not rec.unknown(running)
        attempt.view = ProcessView.CANCELLED
        await settle(rec, attempt)
        assert attempt.key not in rec.attempts
        assert not rec.unknown(running), "a list taken before the close must not revive the attempt"
        assert rec.unknown(process(retries=1)), "a new attempt of it is new work"
    asyncio.run(main())


JOB = job_name(PID, 0, EXECUTOR_ID, process().starttime)  # the Job of the first attempt of process()


def pod_of(name: str, phase: str, exit_code: int | None = None, **status: str) -> dict:
    state = {"terminated": {"exitCode": exit_code}} if exit_code is not None else {"running": {}}
    return {"metadata": {"name": name, "labels": {"job-name": JOB}},
            "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}], **status}}


def finished_job(counts: dict[str, int], departed: list[dict], *, get_forbidden: bool = False):
    """A reconciler with the first attempt of process(), whose Job finished with these counts (succeeded,
    failed) after the watch saw the `departed` pods leave its view; returns (reconciler, kube, attempt)."""
    rec, kube, view, _ = reconciler()
    kube.get_forbidden = get_forbidden
    attempt = rec.add(process(), config(), FakeIdentity(FakeClient()), adopted=False)
    assert attempt.job_name == JOB
    view.jobs[(attempt.namespace, JOB)] = {"metadata": {"name": JOB}, "status": counts}
    for pod in departed:
        rec.on_cluster_event(attempt.namespace, "pods", None, pod)
    return rec, kube, attempt


def test_final_pods_are_read_by_name_when_the_watch_saw_each_one_the_job_counts():
    # The watch announces a pod leaving the view (phase Succeeded) with its previous state: each is read again,
    # by name, which costs the API server one key where a list by label reads the whole namespace.
    async def main():
        rec, kube, attempt = finished_job({"succeeded": 2}, [pod_of("p0", "Running"), pod_of("p1", "Running")])
        kube.pods = {name: pod_of(name, "Succeeded", exit_code=0) for name in ("p0", "p1")}
        pods = await rec._read_final_pods(attempt)
        assert kube.reads == [("get", "p0"), ("get", "p1")]
        assert [p["status"]["phase"] for p in pods] == ["Succeeded", "Succeeded"]
    asyncio.run(main())


def test_final_pods_are_listed_when_the_watch_may_have_missed_one():
    async def main():
        rec, kube, attempt = finished_job({"succeeded": 1, "failed": 1}, [pod_of("p0", "Running")])
        kube.pods = {"p0": pod_of("p0", "Failed", exit_code=1), "p1": pod_of("p1", "Succeeded", 0)}
        pods = await rec._read_final_pods(attempt)
        assert kube.reads == [("list", JOB)] and sorted(p["metadata"]["name"] for p in pods) == ["p0", "p1"]
    asyncio.run(main())


def test_a_final_pod_deleted_meanwhile_keeps_its_last_seen_state():
    async def main():
        evicted = pod_of("p0", "Failed", reason="Evicted")
        rec, kube, attempt = finished_job({"failed": 1}, [evicted])
        assert await rec._read_final_pods(attempt) == (evicted,) and kube.reads == [("get", "p0")]
    asyncio.run(main())


def test_final_pods_are_listed_where_the_operator_may_not_get_a_pod():
    # An operator upgraded without its chart's RBAC (get on pods) still closes its processes.
    async def main():
        rec, kube, attempt = finished_job({"succeeded": 1}, [pod_of("p0", "Running")], get_forbidden=True)
        kube.pods["p0"] = pod_of("p0", "Succeeded", exit_code=0)
        pods = await rec._read_final_pods(attempt)
        assert kube.reads == [("get", "p0"), ("list", JOB)] and pods[0]["status"]["phase"] == "Succeeded"
    asyncio.run(main())


def test_an_attempt_seen_requeued_and_assigned_here_again_gets_a_job_of_its_own():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        first = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        await settle(rec, first)
        # Handed back (the executor was removed from Colonies: the attempt number stays) ...
        first.view = ProcessView.UNCONFIRMED
        client.process_answers = [process(state=0, executor="", starttime="0001-01-01T00:00:00Z")]
        await settle(rec, first)
        assert first.key not in rec.attempts and kube.deleted == [(first.namespace, first.job_name)]
        # ... and assigned here again, before the attempt done with is forgotten.
        again = process(starttime="2026-12-01T12:00:09Z")
        assert rec.unknown(again), "a new assignment of an attempt done with is new work"
        second = rec.add(again, config(), FakeIdentity(client), adopted=True)
        await settle(rec, second)
        assert [j["metadata"]["name"] for j in kube.created] == [first.job_name, second.job_name]
        assert first.job_name != second.job_name and client.closed == []
    asyncio.run(main())


def test_an_attempt_assigned_here_again_while_its_earlier_assignment_ends_is_carried_on_after_it():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        first = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        await settle(rec, first)
        again = process(starttime="2026-12-01T12:00:09Z")
        rec.add(again, config(), FakeIdentity(client), adopted=False)  # the assign loop was handed it again
        client.process_answers = [again]
        await settle(rec, first)  # Colonies runs another assignment of it: the first one's Job goes
        assert (first.namespace, first.job_name) in kube.deleted
        second = rec.attempts[first.key]
        assert second is not first and second.assigned_at == again.starttime
        await settle(rec, second)
        assert [j["metadata"]["name"] for j in kube.created] == [first.job_name, second.job_name]
        assert client.closed == []
    asyncio.run(main())


def test_an_adopted_process_whose_job_runs_is_not_failed_by_a_lowered_limit():
    async def main():
        lowered = config_from_spec({"server": {"host": "colonies"}, "colonyName": "dev",
                                    "jobs": {"namespace": "jobs-a"}, "credentials": {"colonyKeySecret": {"name": "k"}},
                                    "processLimits": {"cpu": "100m", "allowedImages": ["registry.example/**"]}},
                                   namespace="ops", name="cluster")
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        big = process(conditions={"nodes": 1, "processespernode": 1, "cpu": "500m"})
        attempt = rec.add(big, lowered, FakeIdentity(client), adopted=True)
        view.jobs[(attempt.namespace, attempt.job_name)] = {"metadata": {"name": attempt.job_name},
                                                            "status": {"active": 1}}
        await settle(rec, attempt)
        assert client.closed == [] and kube.deleted == [] and kube.created == []
        assert attempt.plan is not None and attempt.plan.cpu == "500m", "it runs on under the rules it started with"
        # One with no Job (an assignment whose reply was lost) meets today's limits.
        rec2, kube2, _, _ = reconciler()
        client2 = FakeClient()
        orphan = rec2.add(big, lowered, FakeIdentity(client2), adopted=True)
        await settle(rec2, orphan)
        assert kube2.created == [] and client2.closed[0][0] == "failed" and "not allowed" in client2.closed[0][1][0]
    asyncio.run(main())


WEBHOOK_REFUSAL = KubeError(400, "BadRequest", 'admission webhook "deny.example.com" denied the request: no Jobs')


def test_an_admission_webhook_refusing_every_job_is_the_executors_problem_not_each_processs():
    async def main():
        rec, kube, view, refusals = reconciler(FakeKube([WEBHOOK_REFUSAL]))
        kube.dry_run_errors = [WEBHOOK_REFUSAL]  # a Job asking for nothing is refused too
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        await settle(rec, attempt)
        assert client.closed == [] and refusals and refusals[0].status == 400 and attempt.create_error
        await settle(rec, attempt)  # the webhook is gone: the Job is created
        assert len(kube.created) == 1 and refusals[-1] is None
    asyncio.run(main())


def test_an_admission_webhook_refusing_only_this_processs_job_fails_the_process():
    async def main():
        rec, kube, view, refusals = reconciler(FakeKube([WEBHOOK_REFUSAL]))
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        await settle(rec, attempt)
        assert client.closed and client.closed[0][0] == "failed" and "deny.example.com" in client.closed[0][1][0]
        assert refusals == []
    asyncio.run(main())


def test_pod_timing_follows_the_api_servers_clock_not_the_operators():
    async def main():
        kube = FakeKube()
        kube.clock_offset = -dt.timedelta(minutes=5)  # the operator's clock runs 5 minutes ahead of the cluster's
        rec, kube, view, _ = reconciler(kube)
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        await settle(rec, attempt)
        created = (kube.now() - dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        view.jobs[(attempt.namespace, attempt.job_name)] = {"metadata": {"name": attempt.job_name,
                                                                         "creationTimestamp": created}, "status": {}}
        await settle(rec, attempt)
        assert client.closed == [] and attempt.key in rec.attempts, "a Job 2 s old has no pod yet, and that is fine"


def running_pod(name: str, started: str = "2026-12-01T12:00:05Z", disrupted: bool = False) -> dict:
    pod = {"metadata": {"name": name, "labels": {"job-name": JOB},
                        "annotations": {"batch.kubernetes.io/job-completion-index": "0"}},
           "status": {"phase": "Running", "conditions": [],
                      "containerStatuses": [{"name": "main", "state": {"running": {"startedAt": started}}}]}}
    if disrupted:
        pod["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:30Z"
        pod["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                            "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"})
    return pod


def test_a_disrupted_pod_is_recorded_on_the_job_and_said_in_the_log_and_the_process_runs_on():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        attempt = rec.add(process(), config(), FakeIdentity(client), adopted=False)
        attempt.job_expected = True
        view.jobs[(attempt.namespace, JOB)] = {"metadata": {"name": JOB}, "status": {"active": 1}}
        view.pods_of[(attempt.namespace, JOB)] = [running_pod("p-1", disrupted=True)]
        await settle(rec, attempt)
        assert client.closed == [] and list(attempt.disruptions) == ["p-1"]
        (patch,) = [patch for _, _, patch in kube.patched]
        assert '"pod":"p-1"' in patch["metadata"]["annotations"]["colonyos.io/disruptions"]
        await attempt.logs.shipper.flush()
        assert any("pod 0 (p-1) was disrupted: EvictionByEvictionAPI" in message for message in client.logs)
        # A restarted operator counts it from the Job's annotation.
        restarted, _, view2, _ = reconciler()
        view2.jobs[(attempt.namespace, JOB)] = {"metadata": {"name": JOB, "annotations": patch["metadata"]["annotations"]},
                                                "status": {"active": 1}}
        again = restarted.add(process(), config(), FakeIdentity(FakeClient()), adopted=True)
        restarted._observe(again)
        assert list(again.disruptions) == ["p-1"] and restarted.facts(again).disruptions_recorded == 1
        attempt.logs.close()
        again.logs.close()
    asyncio.run(main())


def test_containers_that_ran_their_walltime_get_the_job_deadline_once():
    async def main():
        rec, kube, view, _ = reconciler()
        attempt = rec.add(process(conditions={"nodes": 1, "processespernode": 1, "walltime": 20}), config(),
                          FakeIdentity(FakeClient()), adopted=False)
        attempt.job_expected = True
        view.jobs[(attempt.namespace, JOB)] = {"metadata": {"name": JOB}, "status": {
            "active": 1, "startTime": "2026-12-01T11:00:00Z"}}
        view.pods_of[(attempt.namespace, JOB)] = [running_pod("p-1", started="2026-12-01T11:30:00Z")]
        await settle(rec, attempt)
        await settle(rec, attempt)
        deadlines = [patch["spec"]["activeDeadlineSeconds"] for _, _, patch in kube.patched if "spec" in patch]
        assert len(deadlines) == 1 and deadlines[0] > 1800  # from the Job's start: it ends now
        attempt.logs.close()
    asyncio.run(main())


def test_a_queued_job_is_counted_and_its_reason_is_logged_once_per_change():
    async def main():
        rec, kube, view, _ = reconciler()
        client = FakeClient()
        queued_config = config_from_spec({"server": {"host": "colonies"}, "colonyName": "dev",
                                          "credentials": {"colonyKeySecret": {"name": "k"}},
                                          "jobs": {"namespace": "jobs-a", "queueName": "q"}},
                                         namespace="ops", name="cluster")
        attempt = rec.add(process(), queued_config, FakeIdentity(client), adopted=False)
        assert view.workloads_used == ["jobs-a"]
        attempt.job_expected = True
        view.jobs[(attempt.namespace, JOB)] = {"metadata": {"name": JOB, "creationTimestamp": "2026-12-01T11:00:00Z",
                                                            "uid": "u1"},
                                               "spec": {"suspend": True}, "status": {}}
        workload = {"metadata": {"name": "job-x", "ownerReferences": [{"kind": "Job", "name": JOB}]},
                    "status": {"conditions": [{"type": "QuotaReserved", "status": "False", "reason": "Pending",
                                               "message": "insufficient unused quota for cpu"}]}}
        view.workloads[(attempt.namespace, JOB)] = workload
        await settle(rec, attempt)
        await settle(rec, attempt)
        assert rec.queued == 1 and client.closed == []
        await attempt.logs.shipper.flush()
        notes = [m for m in client.logs if "queued in LocalQueue q" in m]
        assert len(notes) == 1 and "insufficient unused quota for cpu" in notes[0]
        # Admitted: no longer counted as queued.
        view.jobs[(attempt.namespace, JOB)]["spec"]["suspend"] = False
        view.jobs[(attempt.namespace, JOB)]["status"] = {"active": 1, "startTime": "2026-12-01T12:00:00Z"}
        await settle(rec, attempt)
        assert rec.queued == 0
        # An event of the Workload wakes the attempt of its Job.
        rec.queue = WorkQueue()
        rec.on_cluster_event(attempt.namespace, "workloads", workload, workload)
        assert await asyncio.wait_for(rec.queue.get(), 1) == attempt.key
        rec._drop(attempt, count=False)
        await asyncio.sleep(0)
        assert view.workloads_used == []
    asyncio.run(main())
