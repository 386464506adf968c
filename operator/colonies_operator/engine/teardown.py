"""What deleting a ColoniesExecutor does: its work handed back to Colonies, then its Jobs deleted.

No process is closed FAILED by a deletion where Colonies can re-queue it: with the colony key the executor is
removed from Colonies, which puts its running processes back in the queue; with an executor key (an executor
cannot remove itself) they are failed, saying why, rather than left RUNNING on an executor nobody runs.
"""

from __future__ import annotations

import logging
from typing import Any

from ..colonies import ColoniesError, ProcessState
from ..core.conditions import Problem
from ..core.config import InvalidSpec, config_from_spec
from ..core.jobs import release_patch
from ..core.names import JOB_STATE_ACTIVE, LABEL_JOB_STATE, owned_selector
from ..core.policy import OperatorPolicy
from ..kube.api import KubeApi, KubeError
from .registration import colonies_client_for, read_key

log = logging.getLogger(__name__)


class NotYet(Exception):
    """The teardown cannot finish now (Colonies or Kubernetes away or refusing); the message says why."""


async def tear_down(kube: KubeApi, spec: dict[str, Any], *, namespace: str, name: str, executor_id: str | None,
                    policy: OperatorPolicy) -> None:
    """Hands the executor's running processes back to Colonies, then deletes its Jobs. Raises NotYet."""
    try:
        config = config_from_spec(spec, namespace=namespace, name=name, policy=policy)
    except InvalidSpec:
        return  # it never ran
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
    if not config.policy.allows_namespace(config.jobs.namespace, namespace):
        # The policy refused the namespace, so no Job of this executor went there (and the chart grants no
        # rights there): nothing to delete, and a forbidden list would hold the deletion forever.
        log.info("no Jobs to delete: the policy does not allow namespace %s", config.jobs.namespace)
    elif executor_id:
        try:
            # Only the active Jobs carry the finalizer; the finished ones kept for kubectl logs (thousands,
            # maybe) go with one request.
            active = await kube.list_jobs(config.jobs.namespace,
                                          f"{owned_selector(executor_id)},{LABEL_JOB_STATE}={JOB_STATE_ACTIVE}")
            for job in active:
                await kube.patch_job(config.jobs.namespace, job["metadata"]["name"], release_patch(None))
            await kube.delete_jobs(config.jobs.namespace, owned_selector(executor_id))
        except KubeError as err:
            raise NotYet(f"cannot delete the Jobs of {config.executor_name}: {err}") from None
