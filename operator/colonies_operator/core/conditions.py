"""Status conditions of a ColoniesExecutor, and the problems that set them (pure: no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

READY, REGISTERED, REACHABLE = "Ready", "Registered", "ColoniesReachable"
JOBS = "JobsAccepted"  # Kubernetes takes this executor's Jobs (namespace, rights, spec.jobs)
ASSIGNING = "Assigning"  # False while the colony's assignments are paused
# Allowed: the cluster admin's operator policy allows what the spec asks for (admission.check_resource).
ALLOWED = "Allowed"
# Secure: the connection to Colonies cannot be read or replayed on the way (admission.server_security). It warns
# and does not change Ready: plain HTTP inside a trusted network is the admin's call.
SECURE = "Secure"
# PodTemplate: spec.jobs.podTemplate is merged, False when some of its fields are ignored (the operator's own win).
# Absent without a template; it does not change Ready either.
TEMPLATE = "PodTemplate"
INFORMATIONAL = {SECURE, TEMPLATE}


@dataclasses.dataclass(frozen=True)
class Problem(Exception):
    """Something that stops the executor from working, as a condition a person can act on."""

    condition: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.condition}={self.reason}: {self.message}"


def now_iso(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_condition(conditions: list[dict[str, Any]], kind: str, status: bool, reason: str, message: str,
                   generation: int | None, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The conditions with `kind` set; lastTransitionTime moves only when the status flips."""
    value = "True" if status else "False"
    result, found = [], False
    for condition in conditions:
        if condition.get("type") != kind:
            result.append(condition)
            continue
        found = True
        same = condition.get("status") == value
        result.append({
            "type": kind, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": condition.get("lastTransitionTime") if same else now_iso(now),
            "observedGeneration": generation,
        })
    if not found:
        result.append({"type": kind, "status": value, "reason": reason, "message": message,
                       "lastTransitionTime": now_iso(now), "observedGeneration": generation})
    order = {READY: 0, ALLOWED: 1, REGISTERED: 2, REACHABLE: 3, JOBS: 4, ASSIGNING: 5, SECURE: 6, TEMPLATE: 7}
    return sorted(result, key=lambda c: order.get(c["type"], 9))


def ready_from(conditions: list[dict[str, Any]]) -> tuple[bool, str, str]:
    """Ready is True when every other condition is (Secure aside); otherwise the first failing one explains it."""
    for condition in conditions:
        if condition.get("type") not in (READY, *INFORMATIONAL) and condition.get("status") != "True":
            return False, condition.get("reason") or "NotReady", condition.get("message") or ""
    return True, "Polling", "registered and polling Colonies for processes"


def kube_refusal_reason(status: int | None) -> str:
    """The condition reason for a Kubernetes refusal (`status` None: the API server could not be reached)."""
    if status is None:
        return "KubernetesUnreachable"
    return {401: "Unauthorized", 403: "Forbidden", 404: "NamespaceMissing", 422: "InvalidJobSpec"}.get(
        status, "Refused")


def kube_refusal_hint(status: int | None, namespace: str) -> str:
    """What to do about a Kubernetes refusal of this executor's Jobs or watches in `namespace`."""
    if status is None:
        return "waiting for the API server"
    if status == 403:
        return (f"grant the operator's service account rights on Jobs and pods in namespace {namespace} "
                "(the chart's watchNamespaces / rbac values)")
    if status == 404:
        return f"create namespace {namespace}, or change spec.jobs.namespace"
    if status == 422:
        return ("fix spec.jobs (labels, annotations, securityContext, tolerations, nodeSelector, podTemplate), or ask "
                "the cluster admin about the admission policies that refuse them")
    if status == 400:
        return ("an admission webhook or policy of the cluster refuses them: ask the cluster admin; the executor "
                "takes no work until Kubernetes accepts its Jobs again")
    return "see the message"
