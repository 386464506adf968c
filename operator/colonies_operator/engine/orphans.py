"""Jobs whose ColoniesExecutor is gone (deleted without the operator's teardown: its finalizer removed by hand, or
its namespace's resources removed while no operator ran). Nobody can close their processes any more, and their
finalizer would hold their namespace's deletion forever: after a grace period, they are released and deleted.
Colonies re-queues their processes once it finds the executor stale."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..core.jobs import release_patch
from ..core.names import ANNOTATION_EXECUTOR, JOB_STATE_ACTIVE, LABEL_JOB_STATE, owned_selector
from ..kube.api import KubeApi, KubeError
from .adoption import jobs_in

log = logging.getLogger(__name__)

LOOK_SECONDS = 60.0


async def active_jobs(kube: KubeApi, namespaces: list[str] | None) -> list[dict[str, Any]]:
    """The operator's active Jobs in `namespaces` (None: everywhere). Raises KubeError."""
    return await jobs_in(kube, namespaces, f"{owned_selector()},{LABEL_JOB_STATE}={JOB_STATE_ACTIVE}")


async def orphans(kube: KubeApi, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Jobs whose ColoniesExecutor (their colonyos.io/executor annotation) does not exist. Raises KubeError."""
    exists: dict[str, bool] = {}
    found = []
    for job in jobs:
        owner = ((job["metadata"].get("annotations") or {}).get(ANNOTATION_EXECUTOR) or "")
        if "/" not in owner:
            continue
        if owner not in exists:
            namespace, name = owner.split("/", 1)
            exists[owner] = await kube.get_executor_resource(namespace, name) is not None
        if not exists[owner]:
            found.append(job)
    return found


async def release_job(kube: KubeApi, job: dict[str, Any]) -> None:
    """Drops the Job's finalizer and deletes it with its pods. Raises KubeError."""
    meta = job["metadata"]
    await kube.patch_job(meta["namespace"], meta["name"], release_patch(None))
    await kube.delete_job(meta["namespace"], meta["name"])


class OrphanReaper:
    """Looks every LOOK_SECONDS at the operator's active Jobs in `namespaces` (None: everywhere) and releases those
    whose ColoniesExecutor has been gone for `grace` seconds."""

    def __init__(self, kube: KubeApi, namespaces: list[str] | None, grace: float) -> None:
        self.kube, self.namespaces, self.grace = kube, namespaces, grace
        self._gone_since: dict[str, float] = {}  # by Job uid

    async def run(self) -> None:
        while True:
            try:
                await self.look()
            except KubeError as err:
                log.info("cannot look for Jobs whose ColoniesExecutor is gone (%s)", err)
            await asyncio.sleep(min(LOOK_SECONDS, max(self.grace / 2, 1.0)))

    async def look(self) -> None:
        now = asyncio.get_running_loop().time()
        gone = {job["metadata"]["uid"]: job for job in await orphans(self.kube, await active_jobs(self.kube,
                                                                                                 self.namespaces))}
        self._gone_since = {uid: self._gone_since.get(uid, now) for uid in gone}
        for uid, job in gone.items():
            if now - self._gone_since[uid] < self.grace:
                continue
            meta = job["metadata"]
            try:
                await release_job(self.kube, job)
            except KubeError as err:
                log.warning("cannot release Job %s/%s yet (%s)", meta["namespace"], meta["name"], err)
                continue
            self._gone_since.pop(uid, None)
            log.warning("released and deleted Job %s/%s: its ColoniesExecutor %s is gone, and nobody can close its "
                        "process (Colonies re-queues it once it finds the executor stale)", meta["namespace"],
                        meta["name"], (meta.get("annotations") or {}).get(ANNOTATION_EXECUTOR))
