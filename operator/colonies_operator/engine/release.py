"""`colonies-operator release`: a way out for every finalizer, with or without a running operator.

ColoniesExecutors being deleted (or deleted here, with `delete`) are given time to be finalized by a running
operator; those still there afterwards get the operator's teardown from here: their Jobs deleted, their work handed
back to Colonies (or closed failed, with an executor key), and their finalizer dropped. Jobs whose ColoniesExecutor
is gone lose their finalizer and are deleted. Nothing is then left for an uninstall or a namespace's deletion to wait
on. The chart's pre-delete hook runs it for the executors of its values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from ..core.config import InvalidSpec, config_from_spec
from ..core.names import FINALIZER
from ..core.policy import OperatorPolicy
from ..kube.api import KubeApi, KubeError
from .orphans import active_jobs, orphans, release_job
from .teardown import NotYet, delete_jobs, hand_back

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Target:
    """A ColoniesExecutor by name, or (name None) every one in the namespace."""

    namespace: str
    name: str | None = None


async def release(kube: KubeApi, policy: OperatorPolicy, targets: list[Target], *, delete: bool,
                  wait: float) -> bool:
    """Releases the targets as the module says; True when nothing is left holding a finalizer."""
    resources = await _resolve(kube, targets)
    if delete:
        for resource in resources:
            meta = resource["metadata"]
            if not meta.get("deletionTimestamp"):
                await kube.delete_executor_resource(meta["namespace"], meta["name"])
                log.info("deleting ColoniesExecutor %s/%s", meta["namespace"], meta["name"])
        resources = await _resolve(kube, [Target(r["metadata"]["namespace"], r["metadata"]["name"])
                                          for r in resources])
    skipped = [r for r in resources if not r["metadata"].get("deletionTimestamp")]
    for resource in skipped:
        log.info("ColoniesExecutor %s/%s is not being deleted: left as it is (give --delete to delete it)",
                 resource["metadata"]["namespace"], resource["metadata"]["name"])
    deleting = [r for r in resources if r["metadata"].get("deletionTimestamp")]
    if deleting and wait > 0:
        log.info("waiting up to %.0fs for a running operator to finalize %d ColoniesExecutor(s)", wait, len(deleting))
        deleting = await _wait_gone(kube, deleting, wait)
    ok = True
    for resource in deleting:
        ok = await _finalize(kube, policy, resource) and ok
    namespaces = sorted({t.namespace for t in targets})
    for job in await orphans(kube, await active_jobs(kube, namespaces)):
        meta = job["metadata"]
        try:
            await release_job(kube, job)
            log.info("released and deleted Job %s/%s: its ColoniesExecutor is gone", meta["namespace"], meta["name"])
        except KubeError as err:
            log.error("cannot release Job %s/%s: %s", meta["namespace"], meta["name"], err)
            ok = False
    return ok


async def _resolve(kube: KubeApi, targets: list[Target]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for target in targets:
        if target.name is None:
            found.extend(await kube.list_executor_resources(target.namespace))
            continue
        resource = await kube.get_executor_resource(target.namespace, target.name)
        if resource is None:
            log.info("ColoniesExecutor %s/%s is gone already", target.namespace, target.name)
        else:
            found.append(resource)
    return found


async def _wait_gone(kube: KubeApi, resources: list[dict[str, Any]], wait: float) -> list[dict[str, Any]]:
    """The resources still there after at most `wait` seconds (fresh from the API server)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    left = resources
    while True:
        left = [r for r in [await kube.get_executor_resource(r["metadata"]["namespace"], r["metadata"]["name"])
                            for r in left] if r is not None]
        if not left or loop.time() >= deadline:
            return left
        await asyncio.sleep(POLL_SECONDS)


async def _finalize(kube: KubeApi, policy: OperatorPolicy, resource: dict[str, Any]) -> bool:
    """The operator's teardown of one resource, then its finalizer dropped; False when its Jobs could not be
    deleted (the finalizer then stays: nothing may run on unseen)."""
    meta = resource["metadata"]
    where = f"{meta['namespace']}/{meta['name']}"
    executor_id = (resource.get("status") or {}).get("executorId")
    try:
        config = config_from_spec(resource.get("spec") or {}, namespace=meta["namespace"], name=meta["name"],
                                  policy=policy)
    except InvalidSpec:
        config = None  # it never ran
    if config is not None:
        try:
            if executor_id:
                await delete_jobs(kube, config, executor_id)
        except NotYet as err:
            log.error("ColoniesExecutor %s keeps its finalizer: %s", where, err)
            return False
        try:
            await hand_back(kube, config, executor_id)
            log.info("ColoniesExecutor %s: its Jobs are deleted and its work handed back to Colonies", where)
        except NotYet as err:
            log.warning("ColoniesExecutor %s: its Jobs are deleted, but %s; Colonies re-queues its processes once it "
                        "finds the executor stale", where, err)
    finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    try:
        await kube.set_executor_finalizers(resource, finalizers)
    except KubeError as err:
        if err.status == 409:  # changed meanwhile (finalized by an operator after all?): look again
            fresh = await kube.get_executor_resource(meta["namespace"], meta["name"])
            if fresh is None or FINALIZER not in (fresh["metadata"].get("finalizers") or []):
                return True
            return await _finalize(kube, policy, fresh)
        log.error("cannot drop the finalizer of ColoniesExecutor %s: %s", where, err)
        return False
    log.info("ColoniesExecutor %s released", where)
    return True
