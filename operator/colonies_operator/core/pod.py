"""The operator's own part of every Job pod (pure): the spec around the process's containers, from the resource's
spec.jobs. jobs.build_job makes the real pod with it, admission.py the outline the policy checks a pod template
against, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from .config import ExecutorConfig

TERMINATION_LOG = "/dev/termination-log"  # where a process container writes its output


def operator_pod_spec(config: ExecutorConfig, containers: list[dict[str, Any]], pod_context: dict[str, Any],
                      node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """The pod spec of a Job of this resource: its containers, never restarted, no API token or service links
    unless the resource asks, and spec.jobs' placement, service account, pull secrets, pod security context and
    priority class. `node_selector` adds to spec.jobs.nodeSelector (a GPU model)."""
    jobs = config.jobs
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": containers,
                            "automountServiceAccountToken": jobs.automount_service_account_token,
                            "enableServiceLinks": False}
    optional = {"nodeSelector": {**jobs.node_selector, **(node_selector or {})},
                "tolerations": list(jobs.tolerations), "serviceAccountName": jobs.service_account_name,
                "imagePullSecrets": [{"name": s} for s in jobs.image_pull_secrets],
                "securityContext": pod_context, "priorityClassName": jobs.priority_class_name}
    spec.update({key: value for key, value in optional.items() if value})
    return spec
