"""Where an executor's Jobs may be, and finding them all, for adoption after a start and for the teardown.

Both look in every namespace the policy lets the resource's Jobs run in, not only in today's spec.jobs.namespace:
a Job started before the spec changed runs to its end where it is, and is released there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from ..core.config import ExecutorConfig
from ..core.names import (
    ANNOTATION_ASSIGNED_AT,
    ANNOTATION_ATTEMPT,
    ANNOTATION_PROCESS_ID,
    JOB_STATE_ACTIVE,
    LABEL_JOB_STATE,
    owned_selector,
)
from ..core.policy import ANY
from ..kube.api import KubeApi, KubeError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FoundJob:
    """An active Job of the executor, as its annotations describe it."""

    namespace: str
    name: str
    process_id: str
    attempt: int
    assigned_at: dt.datetime | None


def job_namespaces(config: ExecutorConfig) -> list[str] | None:
    """The namespaces the resource's Jobs may be in; None for any (policy.jobNamespaces "*")."""
    if ANY in config.policy.job_namespaces:
        return None
    return sorted({config.resource_namespace, *config.policy.job_namespaces})


def config_in(config: ExecutorConfig, namespace: str) -> ExecutorConfig:
    """The config of an attempt whose Job is in `namespace` (spec.jobs.namespace may say another today)."""
    if namespace == config.jobs.namespace:
        return config
    return dataclasses.replace(config, jobs=dataclasses.replace(config.jobs, namespace=namespace))


async def list_jobs(kube: KubeApi, config: ExecutorConfig, executor_id: str, *,
                    active_only: bool = True) -> list[dict[str, Any]]:
    """The executor's Jobs (its active ones), wherever they may be. Raises KubeError."""
    selector = owned_selector(executor_id)
    if active_only:
        selector += f",{LABEL_JOB_STATE}={JOB_STATE_ACTIVE}"
    return await jobs_in(kube, job_namespaces(config), selector)


async def jobs_in(kube: KubeApi, namespaces: list[str] | None, selector: str) -> list[dict[str, Any]]:
    """The Jobs matching `selector` in `namespaces` (None: everywhere). A namespace the operator may not read, or
    that is gone, holds none of them. Raises KubeError."""
    if namespaces is None:
        return await kube.list_jobs_everywhere(selector)
    jobs: list[dict[str, Any]] = []
    for namespace in namespaces:
        try:
            jobs.extend(await kube.list_jobs(namespace, selector))
        except KubeError as err:
            if err.status not in (403, 404):
                raise
            log.debug("no Jobs %s listed in namespace %s (%s)", selector, namespace, err)
    return jobs


def found_job(job: dict[str, Any]) -> FoundJob | None:
    """What a Job's annotations say of its attempt; None for a Job that names none."""
    meta = job["metadata"]
    annotations = meta.get("annotations") or {}
    pid, attempt = annotations.get(ANNOTATION_PROCESS_ID, ""), annotations.get(ANNOTATION_ATTEMPT, "")
    if not pid or not attempt.isdigit():
        return None
    try:
        assigned_at = dt.datetime.fromisoformat(annotations[ANNOTATION_ASSIGNED_AT])
    except (KeyError, ValueError):
        assigned_at = None  # a Job from before the annotation: of the current assignment
    return FoundJob(meta["namespace"], meta["name"], pid, int(attempt), assigned_at)
