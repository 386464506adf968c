"""The ColoniesExecutor spec as a typed, validated configuration object (pure: no I/O).

The CRD schema sets the same defaults and rejects what a schema can express; this module is the second
line, for what it cannot (and for resources written before a default existed).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..colonies.address import InvalidHost, check_host
from .policy import (
    DEFAULT_POLICY,
    OperatorPolicy,
    PolicyError,
    ProcessDefaults,
    ProcessLimits,
    defaults_from_dict,
    limits_from_dict,
)
from .names import KUEUE_QUEUE_LABEL
from .podsecurity import PROFILES
from .podtemplate import TemplateError, check_template

DEFAULT_EXECUTOR_TYPE = "container-executor"
DEFAULT_FUNCTIONS = ("execute",)
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_NODE_LABEL = "nvidia.com/gpu.product"
# ColonyFS: the image of the steps that move a process's files (the colonies CLI and a shell, of the server's
# version), and their resources.
DEFAULT_FS_IMAGE = "colonyos/colonies:v1.9.12"
DEFAULT_FS_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
DEFAULT_FS_UPLOAD_TIMEOUT = 600

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class InvalidSpec(ValueError):
    """The resource's spec cannot work; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class CaBundleRef:
    kind: str  # "Secret" or "ConfigMap"
    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int = 50080
    tls: bool = False
    ca_bundle: CaBundleRef | None = None


@dataclasses.dataclass(frozen=True)
class JobsConfig:
    namespace: str
    service_account_name: str = ""
    automount_service_account_token: bool = False
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    image_pull_secrets: list[str] = dataclasses.field(default_factory=list)
    image_pull_policy: str = "IfNotPresent"
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    pod_security_profile: str = ""  # empty: the policy's default profile
    pod_security_context: dict[str, Any] = dataclasses.field(default_factory=dict)
    security_context: dict[str, Any] = dataclasses.field(default_factory=dict)
    ttl_seconds_after_finished: int = 3600
    pending_timeout_seconds: int = 300
    image_pull_grace_seconds: int = 60
    create_timeout_seconds: int = 300  # Kubernetes not taking a Job for this long fails its process
    priority_class_name: str = ""
    pod_template: dict[str, Any] = dataclasses.field(default_factory=dict)  # checked; merged by podtemplate.py
    # Real clusters stop pods (drains, preemption, spot reclaims): how many such disruptions a process survives,
    # a Kueue LocalQueue its Jobs wait in, and how long a pod waits for a node of an autoscaled GPU pool.
    max_disruptions: int = 3
    queue_name: str = ""
    scale_up_timeout_seconds: int = 900


@dataclasses.dataclass(frozen=True)
class GpuConfig:
    resource_name: str = DEFAULT_GPU_RESOURCE
    node_label: str = DEFAULT_GPU_NODE_LABEL
    models: tuple[str, ...] = ()  # models the cluster can provide though no node has them now (autoscaled pools)


@dataclasses.dataclass(frozen=True)
class FsConfig:
    """spec.fs: how the Jobs move ColonyFS files (core/fs.py builds the steps)."""

    s3_secret: str  # a Secret in the Jobs' namespace holding the AWS_S3_* settings
    image: str = DEFAULT_FS_IMAGE
    persistent_volume_claim: str = ""  # the files on this claim, kept between processes; empty: an emptyDir
    upload_timeout_seconds: int = DEFAULT_FS_UPLOAD_TIMEOUT
    resources: dict[str, Any] = dataclasses.field(default_factory=lambda: json.loads(json.dumps(
        DEFAULT_FS_RESOURCES)))


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """Everything one ColoniesExecutor resource asks for."""

    resource_namespace: str
    resource_name: str
    server: ServerConfig
    colony_name: str
    executor_name: str
    executor_type: str
    colony_key: SecretKeyRef | None
    executor_key: SecretKeyRef | None
    functions: tuple[str, ...]
    jobs: JobsConfig
    gpu: GpuConfig
    max_concurrent_processes: int = 10
    assign_timeout_seconds: int = 10
    location_name: str = ""  # the executor's Colonies location: it gets processes for this location, or for none
    limits: ProcessLimits = ProcessLimits()
    defaults: ProcessDefaults = ProcessDefaults()
    policy: OperatorPolicy = DEFAULT_POLICY  # the cluster admin's, which the resource is checked against
    fs: FsConfig | None = None  # None: processes asking for ColonyFS are refused


def _string_map(value: Any, what: str) -> dict[str, str]:
    value = value or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidSpec(f"{what} must map strings to strings")
    return dict(value)


def _positive(value: Any, what: str, default: int, *, allow_zero: bool = False) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidSpec(f"{what} must be a {'non-negative' if allow_zero else 'positive'} integer, not {value!r}")
    return value


def config_from_spec(spec: dict[str, Any], *, namespace: str, name: str,
                     policy: OperatorPolicy = DEFAULT_POLICY) -> ExecutorConfig:
    """Validates a ColoniesExecutor spec and fills in defaults. Raises InvalidSpec with a fix-it message.
    What the admin's `policy` refuses is for admission.check_resource to say."""
    server = spec.get("server") or {}
    host = server.get("host")
    if not host or not isinstance(host, str):
        raise InvalidSpec("spec.server.host is required: the Colonies server's host name or address")
    try:
        check_host(host)
    except InvalidHost as err:
        raise InvalidSpec(f"spec.server.host {err}") from None
    port = server.get("port", 50080)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidSpec(f"spec.server.port must be a TCP port (1-65535), not {port!r}")
    ca_bundle = None
    ca = server.get("caBundle")
    if ca:
        refs = [(kind, ca.get(field)) for kind, field in (("Secret", "secretName"), ("ConfigMap", "configMapName"))
                if ca.get(field)]
        if len(refs) != 1:
            raise InvalidSpec("spec.server.caBundle needs exactly one of secretName or configMapName")
        ca_bundle = CaBundleRef(refs[0][0], refs[0][1], ca.get("key") or "ca.crt")

    colony_name = spec.get("colonyName")
    if not colony_name or not isinstance(colony_name, str):
        raise InvalidSpec("spec.colonyName is required: the colony this executor joins")

    credentials = spec.get("credentials") or {}
    colony_key = _secret_ref(credentials.get("colonyKeySecret"), "colonyPrvKey", "spec.credentials.colonyKeySecret")
    executor_key = _secret_ref(credentials.get("executorKeySecret"), "executorPrvKey",
                               "spec.credentials.executorKeySecret")
    if bool(colony_key) == bool(executor_key):
        raise InvalidSpec("spec.credentials needs exactly one of colonyKeySecret (the operator registers its own "
                          "executor) or executorKeySecret (an executor an admin registered and approved)")

    functions = tuple(spec.get("functions") or DEFAULT_FUNCTIONS)
    if not all(isinstance(f, str) and f for f in functions):
        raise InvalidSpec("spec.functions must be a list of function names")

    jobs = spec.get("jobs") or {}
    job_namespace = jobs.get("namespace") or namespace
    if not _DNS_LABEL.match(job_namespace):
        raise InvalidSpec(f"spec.jobs.namespace {job_namespace!r} is not a valid namespace name")
    pull_policy = jobs.get("imagePullPolicy", "IfNotPresent")
    if pull_policy not in ("Always", "IfNotPresent", "Never"):
        raise InvalidSpec("spec.jobs.imagePullPolicy must be Always, IfNotPresent or Never")
    pull_secrets = jobs.get("imagePullSecrets") or []
    if not all(isinstance(s, str) for s in pull_secrets):
        raise InvalidSpec("spec.jobs.imagePullSecrets is a list of Secret names")
    profile = jobs.get("podSecurityProfile") or ""
    if profile and profile not in PROFILES:
        raise InvalidSpec(f"spec.jobs.podSecurityProfile must be one of {', '.join(PROFILES)}, not {profile!r}")
    for key in ("podSecurityContext", "securityContext"):
        if not isinstance(jobs.get(key) or {}, dict):
            raise InvalidSpec(f"spec.jobs.{key} must be an object (a core Kubernetes {key[0].upper()}{key[1:]})")
    priority_class = jobs.get("priorityClassName") or ""
    if not isinstance(priority_class, str) or not _DNS_SUBDOMAIN.match(priority_class or "a"):
        raise InvalidSpec(f"spec.jobs.priorityClassName must be the name of a PriorityClass, not {priority_class!r}")
    try:
        pod_template = check_template(jobs.get("podTemplate"))
    except TemplateError as err:
        raise InvalidSpec(str(err)) from None
    try:
        limits = limits_from_dict(spec.get("processLimits"), "spec.processLimits")
        defaults = defaults_from_dict(spec.get("processDefaults"), "spec.processDefaults")
    except PolicyError as err:
        raise InvalidSpec(str(err)) from None
    gpu = spec.get("gpu") or {}
    queue_name, gpu_models = _queue_name(jobs), _gpu_models(gpu.get("models"))
    location = spec.get("locationName") or ""
    if not isinstance(location, str) or location != location.strip() or "\x00" in location:
        raise InvalidSpec(f"spec.locationName must be a location name without surrounding spaces, not {location!r}")

    return ExecutorConfig(
        resource_namespace=namespace,
        resource_name=name,
        server=ServerConfig(host=host, port=port, tls=bool(server.get("tls", False)), ca_bundle=ca_bundle),
        colony_name=colony_name,
        executor_name=spec.get("executorName") or name,
        executor_type=spec.get("executorType") or DEFAULT_EXECUTOR_TYPE,
        colony_key=colony_key,
        executor_key=executor_key,
        functions=functions,
        jobs=JobsConfig(
            namespace=job_namespace,
            service_account_name=jobs.get("serviceAccountName") or "",
            automount_service_account_token=bool(jobs.get("automountServiceAccountToken", False)),
            node_selector=_string_map(jobs.get("nodeSelector"), "spec.jobs.nodeSelector"),
            tolerations=list(jobs.get("tolerations") or []),
            image_pull_secrets=list(pull_secrets),
            image_pull_policy=pull_policy,
            labels=_string_map(jobs.get("labels"), "spec.jobs.labels"),
            annotations=_string_map(jobs.get("annotations"), "spec.jobs.annotations"),
            pod_security_profile=profile,
            pod_security_context=dict(jobs.get("podSecurityContext") or {}),
            security_context=dict(jobs.get("securityContext") or {}),
            ttl_seconds_after_finished=_positive(jobs.get("ttlSecondsAfterFinished"),
                                                 "spec.jobs.ttlSecondsAfterFinished", 3600, allow_zero=True),
            pending_timeout_seconds=_positive(jobs.get("pendingTimeoutSeconds"), "spec.jobs.pendingTimeoutSeconds", 300),
            image_pull_grace_seconds=_positive(jobs.get("imagePullGracePeriodSeconds"),
                                               "spec.jobs.imagePullGracePeriodSeconds", 60, allow_zero=True),
            priority_class_name=priority_class,
            pod_template=pod_template,
            max_disruptions=_positive(jobs.get("maxDisruptions"), "spec.jobs.maxDisruptions", 3, allow_zero=True),
            queue_name=queue_name,
            scale_up_timeout_seconds=_positive(jobs.get("scaleUpTimeoutSeconds"), "spec.jobs.scaleUpTimeoutSeconds",
                                               900),
        ),
        gpu=GpuConfig(resource_name=gpu.get("resourceName") or DEFAULT_GPU_RESOURCE,
                      node_label=gpu.get("nodeLabel") or DEFAULT_GPU_NODE_LABEL, models=gpu_models),
        max_concurrent_processes=_positive(spec.get("maxConcurrentProcesses"), "spec.maxConcurrentProcesses", 10),
        assign_timeout_seconds=_positive(spec.get("assignTimeoutSeconds"), "spec.assignTimeoutSeconds", 10),
        location_name=location,
        limits=limits,
        defaults=defaults,
        policy=policy,
        fs=_fs_config(spec.get("fs"), job_namespace, namespace),
    )


def _fs_config(value: Any, job_namespace: str, namespace: str) -> FsConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidSpec("spec.fs must be an object, e.g. {s3SecretRef: {name: colonies-s3}}")
    ref = value.get("s3SecretRef")
    secret = ref.get("name") if isinstance(ref, dict) else None
    if not secret or not isinstance(secret, str):
        raise InvalidSpec("spec.fs.s3SecretRef.name is required: the Secret with the S3 settings (AWS_S3_ENDPOINT, "
                          "AWS_S3_BUCKET, AWS_S3_ACCESSKEY, AWS_S3_SECRETKEY, ...) the Jobs' ColonyFS steps use")
    if job_namespace != namespace:
        # A pod reads Secrets of its own namespace only, and the executor key stays where the resource is.
        raise InvalidSpec(f"spec.fs needs the Jobs in the resource's own namespace {namespace!r}, not "
                          f"{job_namespace!r}: their ColonyFS steps read the executor key from its Secret there")
    image = value.get("image") or DEFAULT_FS_IMAGE
    claim = value.get("persistentVolumeClaimName") or ""
    resources = value.get("resources")
    if not isinstance(image, str) or any(c.isspace() for c in image):
        raise InvalidSpec(f"spec.fs.image must be an image reference, not {image!r}")
    if not isinstance(claim, str) or (claim and not _DNS_SUBDOMAIN.match(claim)):
        raise InvalidSpec(f"spec.fs.persistentVolumeClaimName {claim!r} is not a PersistentVolumeClaim name")
    if resources is not None and not isinstance(resources, dict):
        raise InvalidSpec("spec.fs.resources must be an object (a core Kubernetes ResourceRequirements)")
    return FsConfig(s3_secret=secret, image=image, persistent_volume_claim=claim,
                    upload_timeout_seconds=_positive(value.get("uploadTimeoutSeconds"), "spec.fs.uploadTimeoutSeconds",
                                                     DEFAULT_FS_UPLOAD_TIMEOUT),
                    resources=dict(resources) if resources is not None else json.loads(json.dumps(
                        DEFAULT_FS_RESOURCES)))


def _queue_name(jobs: dict[str, Any]) -> str:
    """spec.jobs.queueName, or the Kueue label given in spec.jobs.labels (the way the CRD once suggested): the
    Jobs are then created suspended, which is what Kueue without its webhook needs."""
    name = jobs.get("queueName") or ""
    labels = jobs.get("labels")
    labelled = (labels.get(KUEUE_QUEUE_LABEL) or "") if isinstance(labels, dict) else ""
    if name and labelled and name != labelled:
        raise InvalidSpec(f"spec.jobs.queueName {name!r} and spec.jobs.labels[{KUEUE_QUEUE_LABEL}] {labelled!r} "
                          "differ: set the queue in spec.jobs.queueName only")
    name = name or labelled
    if name and (not isinstance(name, str) or not _DNS_LABEL.match(name)):
        raise InvalidSpec(f"spec.jobs.queueName {name!r} is not a LocalQueue name (lowercase letters, digits and "
                          "'-', at most 63)")
    return name


def _gpu_models(value: Any) -> tuple[str, ...]:
    models = value or []
    if not isinstance(models, list) or not all(isinstance(m, str) and _LABEL_VALUE.match(m) for m in models):
        raise InvalidSpec(f"spec.gpu.models must be a list of GPU model names as the node label has them (at most "
                          f"63 letters, digits, '-', '_' or '.'), not {value!r}")
    return tuple(dict.fromkeys(models))


def _secret_ref(value: Any, default_key: str, what: str) -> SecretKeyRef | None:
    if not value:
        return None
    if not isinstance(value, dict) or not value.get("name"):
        raise InvalidSpec(f"{what}.name is required: the Secret holding the key")
    return SecretKeyRef(name=value["name"], key=value.get("key") or default_key)
