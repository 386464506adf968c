"""What deleting a ColoniesExecutor does, against fakes: its Jobs go before its work is handed back, so another
executor given a process never finds its first Job still running."""

from __future__ import annotations

import asyncio

import pytest

from colonies_operator.colonies import crypto
from colonies_operator.core.policy import DEFAULT_POLICY
from colonies_operator.engine import teardown

SPEC = {"server": {"host": "colonies"}, "colonyName": "dev", "credentials": {"colonyKeySecret": {"name": "k"}}}
EXECUTOR_ID = "e" * 64


class FakeKube:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def read_secret_value(self, namespace, name, key):
        return crypto.generate_prvkey()

    async def list_jobs(self, namespace, label_selector):
        return [{"metadata": {"namespace": namespace, "name": "colonies-x-0-abcdef"}}]

    async def patch_job(self, namespace, name, patch):
        self.calls.append(f"release {namespace}/{name}")

    async def delete_jobs(self, namespace, label_selector):
        self.calls.append(f"delete Jobs in {namespace}")


class FakeColonies:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def remove_executor(self, colony, name, prvkey):
        self.calls.append("hand back")

    async def close(self):
        pass


def test_the_jobs_are_deleted_before_the_work_is_handed_back(monkeypatch: pytest.MonkeyPatch):
    calls: list[str] = []

    async def client_for(kube, config):
        return FakeColonies(calls)

    monkeypatch.setattr(teardown, "colonies_client_for", client_for)
    asyncio.run(teardown.tear_down(FakeKube(calls), SPEC, namespace="ops", name="cluster", executor_id=EXECUTOR_ID,
                                   policy=DEFAULT_POLICY))
    assert calls == ["release ops/colonies-x-0-abcdef", "delete Jobs in ops", "hand back"]
