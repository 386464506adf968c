"""The cluster admin's policy and the per-process limits and defaults, as data (pure).

The policy is the operator's, not a resource's: the chart renders it from its `policy` values into a file the
operator reads at start (`colonies-operator run --policy-file`). Without a file the defaults below apply, and
they are the safe ones: Jobs only in the resource's own namespace, no chosen service account, no API token, the
baseline pod security profile, pod template volumes of the restricted profile's types only, and requests, limits
and a deadline on every process. Each key of the file is
named in messages as `policy.<key>`, which is also its Helm value.

Here: the limits and defaults of a process (a resource's spec.processLimits and spec.processDefaults, or the
admin's policy.ceiling and policy.defaults) and the OperatorPolicy, read from plain data. What the policy decides
for a resource and its processes is in admission.py.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

from ..colonies.address import DEFAULT_CLUSTER_DOMAIN
from .podsecurity import BASELINE, PROFILES, RESTRICTED, RESTRICTED_VOLUME_TYPES
from .quantity import parse_quantity

ANY = "*"


class PolicyError(ValueError):
    """The policy or a limit cannot be read; the message names the key."""


@dataclasses.dataclass(frozen=True)
class ProcessLimits:
    """The most one process may ask for; None: no limit at this level. cpu, memory, ephemeral storage and GPUs
    are per container, as a process's conditions give them."""

    allowed_images: tuple[str, ...] = ()  # patterns; empty: any image
    cpu: str | None = None
    memory: str | None = None
    ephemeral_storage: str | None = None
    gpus: int | None = None
    nodes: int | None = None
    processes_per_node: int | None = None
    containers_per_process: int | None = None
    walltime_seconds: int | None = None


@dataclasses.dataclass(frozen=True)
class ProcessDefaults:
    """What a process that gives none gets, as if it had asked for it (requests = limits, the deadline)."""

    cpu: str | None = None
    memory: str | None = None
    ephemeral_storage: str | None = None
    walltime_seconds: int | None = None


# Field name -> (key in the policy file and in the CRD, what it limits in a process).
LIMIT_KEYS = {
    "allowed_images": "allowedImages", "cpu": "cpu", "memory": "memory", "ephemeral_storage": "ephemeralStorage",
    "gpus": "gpus", "nodes": "nodes", "processes_per_node": "processesPerNode",
    "containers_per_process": "containersPerProcess", "walltime_seconds": "walltimeSeconds",
}
DEFAULT_KEYS = {"cpu": "cpu", "memory": "memory", "ephemeral_storage": "ephemeralStorage",
                "walltime_seconds": "walltimeSeconds"}
_QUANTITY_FIELDS = {"cpu", "memory", "ephemeral_storage"}


@dataclasses.dataclass(frozen=True)
class OperatorPolicy:
    """Set by the cluster admin for every ColoniesExecutor the operator serves."""

    job_namespaces: tuple[str, ...] = ()  # besides each resource's own namespace; "*": any namespace
    service_account_names: tuple[str, ...] = ()  # names spec.jobs.serviceAccountName may take; "*": any
    allow_service_account_token: bool = False
    default_profile: str = BASELINE
    allowed_profiles: tuple[str, ...] = (BASELINE, RESTRICTED)
    max_concurrent_processes: int = 1000
    ceiling: ProcessLimits = ProcessLimits(containers_per_process=128)
    defaults: ProcessDefaults = ProcessDefaults(cpu="100m", memory="256Mi", ephemeral_storage="2Gi",
                                                walltime_seconds=86400)
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    # The volume types a resource's pod template may use; "*": any. The default: the restricted profile's list.
    volume_types: tuple[str, ...] = RESTRICTED_VOLUME_TYPES

    def allows_namespace(self, job_namespace: str, resource_namespace: str) -> bool:
        return job_namespace == resource_namespace or ANY in self.job_namespaces or job_namespace in self.job_namespaces


DEFAULT_POLICY = OperatorPolicy()


def _expect(value: Any, kind: type | tuple[type, ...], key: str, what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                                                 else (kind,))):
        raise PolicyError(f"{key} must be {what}, not {value!r}")
    return value


def _names(value: Any, key: str) -> tuple[str, ...]:
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{key} must be a list of names, not {value!r}")
    return tuple(value)


def _object_of(data: Any, key: str, known: Any) -> dict[str, Any]:
    """`data` as an object with none but the `known` keys (absent: empty). Raises PolicyError naming the key."""
    data = data or {}
    if not isinstance(data, dict):
        raise PolicyError(f"{key} must be an object")
    unknown = set(data) - set(known)
    if unknown:
        raise PolicyError(f"{key} has unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return data


def _replace_from(data: Any, key: str, keys: dict[str, str], base: Any,
                  parse_value: Callable[[str, Any, str], Any]) -> Any:
    """`base` with each field whose name (`keys`: field -> name) is in the object `data`, parsed by
    `parse_value(field, value, "key.name")`; absent names keep `base`'s values."""
    data = _object_of(data, key, keys.values())
    return dataclasses.replace(base, **{field: parse_value(field, data[name], f"{key}.{name}")
                                        for field, name in keys.items() if name in data})


def _limit_value(field: str, value: Any, where: str) -> Any:
    if value is None:  # no limit
        return () if field == "allowed_images" else None
    if field == "allowed_images":
        return _names(value, where)
    if field in _QUANTITY_FIELDS:
        return _quantity(value, where, cpu=field == "cpu")
    _expect(value, int, where, "a whole number")
    if value < 0 or (value == 0 and field != "gpus"):
        raise PolicyError(f"{where} must be {'0 or more' if field == 'gpus' else 'at least 1'}, not {value}")
    return value


def _default_value(field: str, value: Any, where: str) -> Any:
    if value is None:  # no default
        return None
    if field in _QUANTITY_FIELDS:
        return _quantity(value, where, cpu=field == "cpu")
    _expect(value, int, where, "a whole number of seconds")
    if value < 1:
        raise PolicyError(f"{where} must be at least 1 second, not {value}")
    return value


def limits_from_dict(data: Any, key: str, base: ProcessLimits = ProcessLimits()) -> ProcessLimits:
    """spec.processLimits or policy.ceiling as ProcessLimits; a key that is absent keeps `base`'s value, null
    means no limit. Raises PolicyError naming the key."""
    return _replace_from(data, key, LIMIT_KEYS, base, _limit_value)


def defaults_from_dict(data: Any, key: str, base: ProcessDefaults = ProcessDefaults()) -> ProcessDefaults:
    """spec.processDefaults or policy.defaults as ProcessDefaults; a key that is absent keeps `base`'s value,
    null means none. Raises PolicyError naming the key."""
    return _replace_from(data, key, DEFAULT_KEYS, base, _default_value)


def _quantity(value: Any, key: str, *, cpu: bool) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # a YAML number: kept as the quantity's text
    try:
        amount = parse_quantity(value)
    except ValueError as err:
        raise PolicyError(f"{key}: {err}") from None
    if amount <= 0:
        raise PolicyError(f"{key} must be more than 0")
    if cpu and amount * 1000 != int(amount * 1000):
        raise PolicyError(f"{key} {value!r} is finer than a millicore")
    return value


_POLICY_KEYS = {"jobNamespaces", "serviceAccountNames", "allowServiceAccountToken", "podSecurity",
                "maxConcurrentProcesses", "ceiling", "defaults", "clusterDomain", "volumeTypes"}


def policy_from_dict(data: Any) -> OperatorPolicy:
    """The policy from its file's content (the chart's `policy` values); raises PolicyError naming the key."""
    data = data or {}
    if not isinstance(data, dict):
        raise PolicyError("the policy must be an object (a YAML or JSON mapping)")
    unknown = set(data) - _POLICY_KEYS
    if unknown:
        raise PolicyError(f"policy has unknown keys {sorted(unknown)}; known: {sorted(_POLICY_KEYS)}")
    base = DEFAULT_POLICY
    pod_security = data.get("podSecurity") or {}
    if not isinstance(pod_security, dict) or set(pod_security) - {"defaultProfile", "allowedProfiles"}:
        raise PolicyError("policy.podSecurity takes defaultProfile and allowedProfiles")
    default_profile = pod_security.get("defaultProfile", base.default_profile)
    allowed = _names(pod_security.get("allowedProfiles", list(base.allowed_profiles)),
                     "policy.podSecurity.allowedProfiles")
    for key, profile in [("defaultProfile", default_profile)] + [("allowedProfiles", p) for p in allowed]:
        if profile not in PROFILES:
            raise PolicyError(f"policy.podSecurity.{key}: {profile!r} is not one of {', '.join(PROFILES)}")
    if default_profile not in allowed:
        raise PolicyError(f"policy.podSecurity.defaultProfile {default_profile!r} must be one of "
                          f"policy.podSecurity.allowedProfiles ({', '.join(allowed) or 'none'})")
    for namespace in _names(data.get("jobNamespaces"), "policy.jobNamespaces"):
        if namespace != ANY and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
            raise PolicyError(f"policy.jobNamespaces: {namespace!r} is not a namespace name (or \"*\" for any)")
    max_concurrent = data.get("maxConcurrentProcesses", base.max_concurrent_processes)
    _expect(max_concurrent, int, "policy.maxConcurrentProcesses", "a whole number")
    if max_concurrent < 1:
        raise PolicyError("policy.maxConcurrentProcesses must be at least 1")
    volume_types = _names(data.get("volumeTypes", list(base.volume_types)), "policy.volumeTypes")
    for kind in volume_types:
        if kind != ANY and not re.fullmatch(r"[a-z][A-Za-z0-9]*", kind):
            raise PolicyError(f"policy.volumeTypes: {kind!r} is not a volume type as a pod spec names it (e.g. "
                              "persistentVolumeClaim, nfs), or \"*\" for any")
    ceiling = limits_from_dict(data.get("ceiling"), "policy.ceiling", base.ceiling)
    defaults = defaults_from_dict(data.get("defaults"), "policy.defaults", base.defaults)
    policy = OperatorPolicy(
        job_namespaces=_names(data.get("jobNamespaces"), "policy.jobNamespaces"),
        service_account_names=_names(data.get("serviceAccountNames"), "policy.serviceAccountNames"),
        allow_service_account_token=_expect(data.get("allowServiceAccountToken", False), bool,
                                            "policy.allowServiceAccountToken", "true or false"),
        default_profile=default_profile,
        allowed_profiles=allowed,
        max_concurrent_processes=max_concurrent,
        ceiling=ceiling,
        defaults=defaults,
        cluster_domain=_expect(data.get("clusterDomain", base.cluster_domain), str, "policy.clusterDomain",
                               "a DNS domain"),
        volume_types=volume_types,
    )
    problems = _defaults_within(policy.defaults, "policy.defaults", policy.ceiling, "policy.ceiling")
    if problems:
        raise PolicyError("; ".join(problems))
    return policy


def compare_limit(field: str, a: Any, b: Any) -> int:
    """-1, 0 or 1 as `a` is below, equal to or above `b` (quantities compared as amounts)."""
    if field in _QUANTITY_FIELDS:
        a, b = parse_quantity(a), parse_quantity(b)
    return (a > b) - (a < b)


def _defaults_within(defaults: ProcessDefaults, defaults_key: str, limits: ProcessLimits,
                     limits_key: str) -> list[str]:
    problems = []
    for field, name in DEFAULT_KEYS.items():
        value, limit = getattr(defaults, field), getattr(limits, field)
        if value is not None and limit is not None and compare_limit(field, value, limit) > 0:
            problems.append(f"{defaults_key}.{name} {value} is above {limits_key}.{name} {limit}")
    return problems
