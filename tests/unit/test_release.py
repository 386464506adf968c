"""A way out for every finalizer, against a fake API server on virtual time: Jobs whose ColoniesExecutor is gone are
released after the grace period (and not before, nor when it exists), and `colonies-operator release` finalizes a
resource being deleted that no operator finalizes."""

from __future__ import annotations

import asyncio

import pytest

from colonies_operator.core.names import FINALIZER
from colonies_operator.core.policy import DEFAULT_POLICY
from colonies_operator.engine import release as release_module
from colonies_operator.engine.orphans import OrphanReaper
from colonies_operator.engine.release import Target, release
from tests.unit.virtual_time import run_virtual


def job(name: str, owner: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ops", "uid": f"uid-{name}",
                         "annotations": {"colonyos.io/executor": owner}}}


class FakeKube:
    def __init__(self, jobs: list[dict], resources: dict[str, dict]) -> None:
        self.jobs, self.resources = jobs, resources  # resources by "namespace/name"
        self.calls: list[str] = []

    async def list_jobs(self, namespace, label_selector):
        return [j for j in self.jobs if j["metadata"]["namespace"] == namespace]

    async def get_executor_resource(self, namespace, name):
        return self.resources.get(f"{namespace}/{name}")

    async def list_executor_resources(self, namespace):
        return [r for key, r in self.resources.items() if key.startswith(f"{namespace}/")]

    async def delete_executor_resource(self, namespace, name):
        self.calls.append(f"delete {namespace}/{name}")
        self.resources[f"{namespace}/{name}"]["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"

    async def set_executor_finalizers(self, resource, finalizers):
        meta = resource["metadata"]
        self.calls.append(f"finalizers {meta['namespace']}/{meta['name']} {finalizers}")
        if not finalizers:
            del self.resources[f"{meta['namespace']}/{meta['name']}"]

    async def patch_job(self, namespace, name, patch):
        self.calls.append(f"release {name}")

    async def delete_job(self, namespace, name):
        self.calls.append(f"delete {name}")
        self.jobs = [j for j in self.jobs if j["metadata"]["name"] != name]


def test_a_job_whose_executor_is_gone_is_released_after_the_grace_period_only():
    async def main():
        kube = FakeKube([job("orphan", "ops/gone"), job("kept", "ops/cluster")],
                        {"ops/cluster": {"metadata": {"name": "cluster", "namespace": "ops"}}})
        reaper = OrphanReaper(kube, ["ops"], grace=300)
        task = asyncio.ensure_future(reaper.run())
        await asyncio.sleep(290)
        assert kube.calls == [], "released before the grace period"
        await asyncio.sleep(200)
        assert kube.calls == ["release orphan", "delete orphan"]
        task.cancel()
    run_virtual(main())


SPEC = {"server": {"host": "colonies"}, "colonyName": "dev", "credentials": {"colonyKeySecret": {"name": "k"}}}


def test_release_finalizes_what_no_operator_finalizes(monkeypatch: pytest.MonkeyPatch):
    async def main():
        resource = {"metadata": {"name": "cluster", "namespace": "ops", "finalizers": [FINALIZER],
                                 "resourceVersion": "7"}, "spec": SPEC, "status": {"executorId": "e" * 64}}
        kube = FakeKube([job("orphan", "ops/gone")], {"ops/cluster": resource})

        async def delete_jobs(kube_, config, executor_id):
            kube.calls.append(f"delete Jobs of {executor_id[:4]}")

        async def hand_back(kube_, config, executor_id):
            kube.calls.append("hand back")

        monkeypatch.setattr(release_module, "delete_jobs", delete_jobs)
        monkeypatch.setattr(release_module, "hand_back", hand_back)
        started = asyncio.get_running_loop().time()
        assert await release(kube, DEFAULT_POLICY, [Target("ops", "cluster")], delete=True, wait=30)
        assert asyncio.get_running_loop().time() - started >= 30, "a running operator is given its time first"
        assert kube.calls == ["delete ops/cluster", "delete Jobs of eeee", "hand back", "finalizers ops/cluster []",
                              "release orphan", "delete orphan"]
        assert kube.resources == {}
    run_virtual(main())
