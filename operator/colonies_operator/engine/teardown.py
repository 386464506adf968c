"""What deleting a ColoniesExecutor does: its Jobs deleted, then its work handed back to Colonies.

No process is closed FAILED by a deletion where Colonies can re-queue it: with the colony key the executor is
removed from Colonies, which puts its running processes back in the queue; with an executor key (an executor
cannot remove itself) they are failed, saying why, rather than left RUNNING on an executor nobody runs.
"""

from __future__ import annotations

import logging
from typing import Any

from ..colonies import ColoniesError, ProcessState
from ..core.conditions import Problem
from ..core.config import ExecutorConfig, InvalidSpec, config_from_spec
from ..core.jobs import release_patch
from ..core.names import owned_selector
from ..core.policy import OperatorPolicy
from ..kube.api import KubeApi, KubeError
from .adoption import job_namespaces, list_jobs
from .registration import colonies_client_for, read_key

log = logging.getLogger(__name__)


class NotYet(Exception):
    """The teardown cannot finish now (Colonies or Kubernetes away or refusing); the message says why."""


async def tear_down(kube: KubeApi, spec: dict[str, Any], *, namespace: str, name: str, executor_id: str | None,
                    policy: OperatorPolicy) -> None:
    """Deletes the executor's Jobs, then hands its running processes back to Colonies. Raises NotYet.

    The Jobs go first: a process handed back while its Job still ran could be given to another executor, which
    would run it a second time beside it."""
    try:
        config = config_from_spec(spec, namespace=namespace, name=name, policy=policy)
    except InvalidSpec:
        return  # it never ran
    if executor_id:
        await delete_jobs(kube, config, executor_id)
    await hand_back(kube, config, executor_id)


async def hand_back(kube: KubeApi, config: ExecutorConfig, executor_id: str | None) -> None:
    """Hands the executor's running processes back to Colonies (the executor removed with the colony key), or
    closes them failed, saying why (an executor key cannot remove itself). Raises NotYet."""
    namespace, name = config.resource_namespace, config.resource_name
    try:
        client = await colonies_client_for(kube, config)
        if config.colony_key and not executor_id:
            # It never registered (refused by the policy, or it never reached Colonies): nothing to remove, and
            # Colonies answers a removal of an unknown executor with a 500 that would hold the deletion forever.
            log.info("executor %s never registered: nothing to remove from Colonies", config.executor_name)
        elif config.colony_key:
            colony_prvkey = await read_key(kube, namespace, config.colony_key, "colony private key")
            await client.remove_executor(config.colony_name, config.executor_name, colony_prvkey)
            log.info("unregistered executor %s from colony %s: its running processes are queued again",
                     config.executor_name, config.colony_name)
        elif executor_id:
            prvkey = await read_key(kube, namespace, config.executor_key, "executor private key")
            for process in await client.running_on(config.colony_name, executor_id, prvkey):
                if process.state == ProcessState.RUNNING:
                    await client.close_failed(process.processid, [
                        f"executor removed: the ColoniesExecutor {namespace}/{name} was deleted while the process "
                        "ran; resubmit it"], prvkey)
        await client.close()
    except Problem as problem:
        raise NotYet(f"cannot hand {config.executor_name}'s work back to Colonies: {problem.message}") from None
    except ColoniesError as err:
        raise NotYet(f"cannot hand {config.executor_name}'s work back to Colonies: {err}") from None


async def delete_jobs(kube: KubeApi, config: ExecutorConfig, executor_id: str) -> None:
    """Deletes every Job of the executor, wherever its Jobs may be, with its pods and finalizer. Raises NotYet."""
    try:
        # Only the active Jobs carry the finalizer; the finished ones kept for kubectl logs (thousands, maybe) go
        # with one request per namespace.
        active = await list_jobs(kube, config, executor_id)
        for job in active:
            meta = job["metadata"]
            await kube.patch_job(meta["namespace"], meta["name"], release_patch(None))
        namespaces = job_namespaces(config)
        if namespaces is None:  # any namespace: those holding a Job of the executor
            namespaces = sorted({job["metadata"]["namespace"] for job in await list_jobs(
                kube, config, executor_id, active_only=False)})
        for job_namespace in namespaces:
            try:
                await kube.delete_jobs(job_namespace, owned_selector(executor_id))
            except KubeError as err:
                if err.status != 403:  # the operator may not touch Jobs there: none of its Jobs are there
                    raise
    except KubeError as err:
        raise NotYet(f"cannot delete the Jobs of {config.executor_name}: {err}") from None
