"""What the cluster admin's policy admits (pure): whether a ColoniesExecutor may run as its spec asks
(check_resource, shown in its Allowed condition; with a pod template, the policy applies to the merged pod), the
limits and defaults a process meets (limit_for,
allowed_image_limits, default_for; plan.plan_job applies them), the pod security profile of its Jobs, and whether
its connection to Colonies is secure (server_security, the Secure condition).

Each admin setting is named in messages as `policy.<key>` (its Helm value too), and each resource setting by its
spec field, so a refusal says who can change what. The policy itself, as data, is in policy.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..colonies.address import is_cluster_local, is_loopback
from .config import ExecutorConfig
from .images import image_matches, normalize_image
from .names import ANNOTATION_PROCESS_ID, LABEL_EXECUTOR_ID, LABEL_MANAGED_BY, LABEL_PROCESS_ID, MANAGED_BY
from .policy import ANY, DEFAULT_KEYS, LIMIT_KEYS, OperatorPolicy, ProcessLimits, compare_limit
from .pod import TERMINATION_LOG, operator_pod_spec
from .podsecurity import pod_violations, security_contexts, violations, volume_types
from .podtemplate import TEMPLATE, MergedPod, merge_pod_template


# -- the limits a process meets -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Limit:
    """One limit in force for a resource's processes, and who sets it (for the message when it is broken)."""

    value: Any
    setting: str  # e.g. "spec.processLimits.cpu of ColoniesExecutor ns/name" or "policy.ceiling.cpu"
    set_by: str   # "the ColoniesExecutor's owner" or "the cluster admin"

    def describe(self) -> str:
        return f"{self.setting}, set by {self.set_by}"


def limit_for(config: ExecutorConfig, field: str) -> Limit | None:
    """The tighter of the resource's limit and the admin's ceiling for `field` (not allowed_images, see
    allowed_image_limits); None when neither sets one."""
    own, ceiling = getattr(config.limits, field), getattr(config.policy.ceiling, field)
    name = LIMIT_KEYS[field]
    resource = f"ColoniesExecutor {config.resource_namespace}/{config.resource_name}"
    own_limit = None if own is None else Limit(own, f"spec.processLimits.{name} of {resource}", "its owner")
    admin_limit = None if ceiling is None else Limit(ceiling, f"policy.ceiling.{name} of the operator",
                                                     "the cluster admin")
    if own_limit is None or admin_limit is None:
        return own_limit or admin_limit
    return own_limit if compare_limit(field, own, ceiling) <= 0 else admin_limit


def allowed_image_limits(config: ExecutorConfig) -> list[Limit]:
    """Every image list in force: an image must match one pattern of each."""
    resource = f"ColoniesExecutor {config.resource_namespace}/{config.resource_name}"
    found = []
    if config.policy.ceiling.allowed_images:
        found.append(Limit(config.policy.ceiling.allowed_images, "policy.ceiling.allowedImages of the operator",
                           "the cluster admin"))
    if config.limits.allowed_images:
        found.append(Limit(config.limits.allowed_images, f"spec.processLimits.allowedImages of {resource}",
                           "its owner"))
    return found


def without_limits(config: ExecutorConfig) -> ExecutorConfig:
    """The config with no per-process limit and no allowed-image list: what an attempt accepted under earlier rules
    is planned with once its Job runs, so that today's narrower limits do not fail it."""
    return dataclasses.replace(config, limits=ProcessLimits(),
                               policy=dataclasses.replace(config.policy, ceiling=ProcessLimits()))


def default_for(config: ExecutorConfig, field: str) -> Any:
    """The resource's default for `field`, else the admin's."""
    own = getattr(config.defaults, field)
    return own if own is not None else getattr(config.policy.defaults, field)


# -- the resource against the policy ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PolicyViolation:
    """Something a ColoniesExecutor asks for that the operator policy does not allow; nothing runs for it."""

    reason: str   # a condition reason, CamelCase
    message: str  # says what was asked, what the policy allows and which setting to change

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def profile_of(config: ExecutorConfig) -> str:
    """The pod security profile the resource's Jobs get."""
    return config.jobs.pod_security_profile or config.policy.default_profile


def check_resource(config: ExecutorConfig, policy: OperatorPolicy | None = None) -> list[PolicyViolation]:
    """Everything in the resource that the policy refuses; empty when it may run. `policy` defaults to the one
    the config was read under."""
    policy = policy or config.policy
    jobs = config.jobs
    found: list[PolicyViolation] = []
    if not policy.allows_namespace(jobs.namespace, config.resource_namespace):
        allowed = ", ".join([config.resource_namespace, *policy.job_namespaces])
        found.append(PolicyViolation(
            "JobNamespaceNotAllowed",
            f"spec.jobs.namespace {jobs.namespace!r} is not allowed: Jobs may run in {allowed}. Remove "
            f"spec.jobs.namespace, or ask the cluster admin to add {jobs.namespace!r} to policy.jobNamespaces"))
    if jobs.service_account_name and not (ANY in policy.service_account_names
                                          or jobs.service_account_name in policy.service_account_names):
        found.append(PolicyViolation(
            "ServiceAccountNotAllowed",
            f"spec.jobs.serviceAccountName {jobs.service_account_name!r} is not allowed: Job pods run as the "
            f"namespace's default ServiceAccount unless the cluster admin adds the name to "
            f"policy.serviceAccountNames"))
    if jobs.automount_service_account_token and not policy.allow_service_account_token:
        found.append(PolicyViolation(
            "ServiceAccountTokenNotAllowed",
            "spec.jobs.automountServiceAccountToken true is not allowed: set it to false, or ask the cluster admin "
            "to set policy.allowServiceAccountToken"))
    profile = jobs.pod_security_profile or policy.default_profile
    if profile not in policy.allowed_profiles:
        found.append(PolicyViolation(
            "PodSecurityProfileNotAllowed",
            f"spec.jobs.podSecurityProfile {profile!r} is not allowed: choose one of "
            f"{', '.join(policy.allowed_profiles)}, or ask the cluster admin to add {profile!r} to "
            "policy.podSecurity.allowedProfiles"))
    else:
        pod_context, container_context = security_contexts(profile, jobs.pod_security_context, jobs.security_context)
        broken = violations(profile, pod_context, container_context)
        if broken:
            found.append(PolicyViolation(
                "SecurityContextNotAllowed",
                f"spec.jobs under the {profile} pod security profile: {'; '.join(broken)}. Remove these settings, "
                f"or choose a weaker spec.jobs.podSecurityProfile if the cluster admin allows one "
                f"(policy.podSecurity.allowedProfiles: {', '.join(policy.allowed_profiles)})"))
    if jobs.pod_template:
        found.extend(_template_violations(config, policy, profile))
    if config.max_concurrent_processes > policy.max_concurrent_processes:
        found.append(PolicyViolation(
            "LimitAboveCeiling",
            f"spec.maxConcurrentProcesses {config.max_concurrent_processes} is above the cluster admin's "
            f"{policy.max_concurrent_processes}: lower it, or ask the admin to raise policy.maxConcurrentProcesses"))
    for field, name in LIMIT_KEYS.items():
        own, ceiling = getattr(config.limits, field), getattr(policy.ceiling, field)
        if field == "allowed_images" or own is None or ceiling is None:
            continue
        if compare_limit(field, own, ceiling) > 0:
            found.append(PolicyViolation(
                "LimitAboveCeiling",
                f"spec.processLimits.{name} {own} is above the cluster admin's ceiling {ceiling}: lower it, or ask "
                f"the admin to raise policy.ceiling.{name}"))
    for field, name in DEFAULT_KEYS.items():
        value = getattr(config.defaults, field)
        limit = limit_for(dataclasses.replace(config, policy=policy), field)
        if value is not None and limit is not None and compare_limit(field, value, limit.value) > 0:
            found.append(PolicyViolation(
                "DefaultAboveLimit",
                f"spec.processDefaults.{name} {value} is above the limit {limit.value} ({limit.describe()}): "
                "lower the default"))
    return found


# -- the pod template ----------------------------------------------------------------------------------------------

# The env every process container gets from the operator (jobs.build_job), which a template cannot replace.
_OPERATOR_ENV = ("COLONIES_PROCESS_ID", "COLONIES_PROCESS_INPUT", "COLONIES_NODES", "COLONIES_PROCESSES_PER_NODE",
                 "COLONIES_NODE_INDEX", "COLONIES_PROCESS_INDEX")


def _operator_pod(config: ExecutorConfig, profile: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator's own part of every Job pod (metadata, spec) as far as the policy and the template's ignored
    fields depend on it: the real pod's spec (pod.py) around an outline of a process container (a test holds the
    outline to jobs.build_job)."""
    jobs = config.jobs
    pod_context, container_context = security_contexts(profile, jobs.pod_security_context, jobs.security_context)
    # None: a value only a Job has (a template's value always differs from it)
    labels = {**jobs.labels, LABEL_MANAGED_BY: MANAGED_BY, LABEL_EXECUTOR_ID: None, LABEL_PROCESS_ID: None}
    container = {"name": "main", "env": [{"name": name} for name in _OPERATOR_ENV],
                 "terminationMessagePath": TERMINATION_LOG, "terminationMessagePolicy": "File"}
    if container_context:
        container["securityContext"] = container_context
    spec = operator_pod_spec(config, [container], pod_context)
    return {"labels": labels, "annotations": {ANNOTATION_PROCESS_ID: None}}, spec


def merged_pod(config: ExecutorConfig, profile: str | None = None) -> tuple[MergedPod, dict[str, Any]]:
    """The resource's pod template merged under the operator's pod, and the operator's pod alone."""
    profile = profile or profile_of(config)
    metadata, spec = _operator_pod(config, profile)
    container_context = spec["containers"][0].get("securityContext") or {}
    return merge_pod_template(config.jobs.pod_template, metadata, spec, container_defaults=container_context), spec


def _template_violations(config: ExecutorConfig, policy: OperatorPolicy, profile: str) -> list[PolicyViolation]:
    """What the policy refuses in the pod the template makes: its service account, volume types and images, and
    the pod security profile over the whole merged pod."""
    found = []
    merged, own = merged_pod(config, profile)
    account = merged.spec.get("serviceAccountName")
    if account and account != config.jobs.service_account_name and not (ANY in policy.service_account_names
                                                                        or account in policy.service_account_names):
        found.append(PolicyViolation(
            "ServiceAccountNotAllowed",
            f"{TEMPLATE}.spec.serviceAccountName {account!r} is not allowed: Job pods run as the namespace's default "
            "ServiceAccount unless the cluster admin adds the name to policy.serviceAccountNames"))
    if ANY not in policy.volume_types:
        for volume in merged.spec.get("volumes") or []:
            refused = [kind for kind in volume_types(volume) if kind not in policy.volume_types]
            if refused:
                found.append(PolicyViolation(
                    "VolumeTypeNotAllowed",
                    f"{TEMPLATE}.spec.volumes[{volume.get('name')}] is a {' and '.join(refused)} volume, which the "
                    f"operator's policy does not allow (policy.volumeTypes: {', '.join(policy.volume_types)}): use "
                    f"one of those, or ask the cluster admin to add {refused[0]} to policy.volumeTypes"))
    allowed_images = policy.ceiling.allowed_images
    for container in (config.jobs.pod_template.get("spec") or {}).get("initContainers") or []:
        try:
            image = normalize_image(container["image"].strip())
        except ValueError as err:
            found.append(PolicyViolation("ImageNotAllowed", f"{TEMPLATE}.spec.initContainers[{container['name']}]."
                                                            f"image {err}"))
            continue
        if allowed_images and not any(image_matches(image, pattern) for pattern in allowed_images):
            found.append(PolicyViolation(
                "ImageNotAllowed",
                f"{TEMPLATE}.spec.initContainers[{container['name']}].image {image} is not allowed: the cluster "
                f"admin allows only {', '.join(allowed_images)} (policy.ceiling.allowedImages); use an image that "
                "matches, or ask the admin to add it"))
    if profile in policy.allowed_profiles:
        already = set(pod_violations(profile, own))  # the operator's own part, reported above as spec.jobs
        broken = [v for v in pod_violations(profile, merged.spec, merged.metadata.get("annotations"))
                  if v not in already]
        if broken:
            found.append(PolicyViolation(
                "PodTemplateNotAllowed",
                f"{TEMPLATE} under the {profile} pod security profile: {'; '.join(broken)}. Remove these settings, "
                f"or choose a weaker spec.jobs.podSecurityProfile if the cluster admin allows one "
                f"(policy.podSecurity.allowedProfiles: {', '.join(policy.allowed_profiles)})"))
    return found


def template_condition(config: ExecutorConfig) -> tuple[bool, str, str] | None:
    """(merged cleanly, reason, message) for the `PodTemplate` condition; None without a template."""
    if not config.jobs.pod_template:
        return None
    merged, _ = merged_pod(config)
    if not merged.ignored:
        return True, "Merged", f"{TEMPLATE} is merged into every Job pod"
    return False, "FieldsIgnored", (
        f"{TEMPLATE} is merged into every Job pod, but the operator's own values win over these of its fields, "
        f"which are ignored: {', '.join(merged.ignored)}. Remove them from the template: the process's image, "
        "command, args and resources come from the process, and the operator's own labels, annotations, env and "
        "pod fields, and the other spec.jobs fields, win over the template's")


# -- the connection to Colonies ------------------------------------------------------------------------------------

def server_security(config: ExecutorConfig) -> tuple[bool, str, str]:
    """(secure, reason, message) for the `Secure` condition: plain HTTP is secure only to this machine or a
    cluster-local Service name. Colonies requests are signed but not encrypted and can be replayed."""
    server = config.server
    where = f"{server.host}:{server.port}"
    if server.tls:
        return True, "TLS", f"HTTPS to {where}"
    if is_loopback(server.host):
        return True, "Loopback", f"plain HTTP to {where}, which never leaves this machine"
    if is_cluster_local(server.host, config.policy.cluster_domain):
        return True, "ClusterLocal", f"plain HTTP to {where}, a cluster-local Service name"
    return False, "PlainHTTP", (
        f"plain HTTP to {where}, which may be off this cluster: anyone on the path can read the processes this "
        "executor runs (their env included) and replay its signed requests to take them. Set spec.server.tls "
        "true, or use a cluster-local Service name")
