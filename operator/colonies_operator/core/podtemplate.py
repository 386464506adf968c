"""A resource's pod template (spec.jobs.podTemplate, a PodTemplateSpec) merged under the operator's own pod
(pure: no I/O).

The operator's fields always win; the template adds what the operator does not set. Field by field:
- added to the operator's: volumes, initContainers, tolerations, topologySpreadConstraints, imagePullSecrets,
  hostAliases, nodeSelector entries, pod labels and annotations. An item the operator has under the same name
  (a volume, an env var, a label key) stays the operator's.
- taken where the operator sets nothing: affinity and the pod's securityContext field by field; priorityClassName,
  runtimeClassName, dnsPolicy, dnsConfig, serviceAccountName and the other scheduling fields whole
  (spec.jobs.priorityClassName and spec.jobs.serviceAccountName, when set, are the operator's).
- the operator's, ignored and listed in the result: restartPolicy, activeDeadlineSeconds,
  automountServiceAccountToken, enableServiceLinks, priority, overhead, resources, serviceAccount; in `main`, the
  image, command, args, resources, imagePullPolicy, restartPolicy and the termination message.
- refused (TemplateError, naming the field): nodeName, ephemeralContainers, any field not listed here, a regular
  container other than `main`.
The container `main` gives every process container (one per process of a pod) its env, envFrom, volumeMounts,
volumeDevices, workingDir and the securityContext fields the operator does not set. Env names the operator or the
process set stay theirs. Init containers are the template's own: `restartPolicy: Always` makes one a native
sidecar, which runs beside the process and is stopped when it ends; each gets the operator's container security
context under its own.

What the merged pod may hold is the admin's policy (admission.py); the Kubernetes API validates the rest when a
Job is created (the dry run of the JobsAccepted condition).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from .podsecurity import merge_context

TEMPLATE = "spec.jobs.podTemplate"
MAIN = "main"

# Pod spec fields, by what the merge does with them. Lists: the key naming an item (None: items are appended).
_ADDED_LISTS: dict[str, str | None] = {"volumes": "name", "imagePullSecrets": "name", "tolerations": None,
                                       "topologySpreadConstraints": None, "hostAliases": None}
_ADDED_MAPS = ("nodeSelector",)
_UNDER = ("securityContext", "affinity")
_TAKEN = ("priorityClassName", "runtimeClassName", "dnsPolicy", "dnsConfig", "schedulerName", "preemptionPolicy",
          "terminationGracePeriodSeconds", "shareProcessNamespace", "hostname", "subdomain", "setHostnameAsFQDN",
          "os", "serviceAccountName", "hostNetwork", "hostPID", "hostIPC", "hostUsers", "schedulingGates",
          "readinessGates")
_OPERATORS = ("restartPolicy", "activeDeadlineSeconds", "automountServiceAccountToken", "enableServiceLinks",
              "priority", "overhead", "resources", "serviceAccount")
_REFUSED = {
    "nodeName": "it would bind every pod to one node past the scheduler: use nodeSelector or affinity",
    "ephemeralContainers": "they are added to running pods for debugging (kubectl debug), never created with them",
}
_POD_FIELDS = (*_ADDED_LISTS, *_ADDED_MAPS, *_UNDER, *_TAKEN, *_OPERATORS, "containers", "initContainers")

# The fields of `main`, likewise.
_MAIN_ADDED_LISTS: dict[str, str | None] = {"env": "name", "envFrom": None, "volumeMounts": "mountPath",
                                            "volumeDevices": "devicePath"}
_MAIN_UNDER = ("securityContext",)
_MAIN_TAKEN = ("workingDir",)
_MAIN_OPERATORS = ("image", "command", "args", "resources", "imagePullPolicy", "restartPolicy",
                   "terminationMessagePath", "terminationMessagePolicy", "resizePolicy")
_MAIN_FIELDS = ("name", *_MAIN_ADDED_LISTS, *_MAIN_UNDER, *_MAIN_TAKEN, *_MAIN_OPERATORS)
_PROCESS_CONTAINER = re.compile(r"^(main|proc-[0-9]+)$")  # plan.JobPlan.container_names


class TemplateError(ValueError):
    """The pod template cannot be used; the message names the field and what to do."""


@dataclasses.dataclass(frozen=True)
class MergedPod:
    """A pod with the template merged in, and the template's fields the operator's own values overrode (paths
    within the template, e.g. `spec.containers[main].image`)."""

    metadata: dict[str, Any]
    spec: dict[str, Any]
    ignored: tuple[str, ...]


def _string_map(value: Any, path: str) -> None:
    if not isinstance(value or {}, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in (value or {}).items()):
        raise TemplateError(f"{path} must map strings to strings")


def _objects(value: Any, path: str, key: str | None = None) -> list[dict[str, Any]]:
    """`value` as a list of objects, each with a non-empty string `key` when given."""
    if not isinstance(value or [], list) or not all(isinstance(item, dict) for item in value or []):
        raise TemplateError(f"{path} must be a list of objects")
    for index, item in enumerate(value or []):
        if key and (not isinstance(item.get(key), str) or not item[key]):
            raise TemplateError(f"{path}[{index}] needs a {key}")
    return list(value or [])


def check_template(template: Any) -> dict[str, Any]:
    """spec.jobs.podTemplate checked for what no merge can make right; returns a copy ({} for none). Raises
    TemplateError naming the field."""
    if not template:
        return {}
    _check(template)
    return copy.deepcopy(template)


def _check(template: Any) -> None:
    if not isinstance(template, dict):
        raise TemplateError(f"{TEMPLATE} must be an object: a PodTemplateSpec, with metadata and spec")
    unknown = sorted(set(template) - {"metadata", "spec"})
    if unknown:
        pod_fields = [field for field in unknown if field in _POD_FIELDS]
        hint = f"; pod fields such as {pod_fields[0]} go under {TEMPLATE}.spec" if pod_fields else ""
        raise TemplateError(f"{TEMPLATE} takes metadata and spec (a PodTemplateSpec), not {', '.join(unknown)}{hint}")
    metadata = template.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TemplateError(f"{TEMPLATE}.metadata must be an object")
    for key in ("labels", "annotations"):
        _string_map(metadata.get(key), f"{TEMPLATE}.metadata.{key}")
    spec = template.get("spec") or {}
    if not isinstance(spec, dict):
        raise TemplateError(f"{TEMPLATE}.spec must be an object: a core Kubernetes PodSpec")
    for field, value in spec.items():
        path = f"{TEMPLATE}.spec.{field}"
        if field in _REFUSED:
            raise TemplateError(f"{path} cannot be set: {_REFUSED[field]}")
        if field not in _POD_FIELDS:
            raise TemplateError(f"{path} is not a pod field a template may set here (see kubectl explain "
                                f"coloniesexecutors.spec.jobs.podTemplate.spec): remove it")
        if field in _ADDED_LISTS:
            _objects(value, path, _ADDED_LISTS[field])
        elif field in _ADDED_MAPS:
            _string_map(value, path)
        elif field in _UNDER and not isinstance(value or {}, dict):
            raise TemplateError(f"{path} must be an object")
    _check_main(_objects(spec.get("containers"), f"{TEMPLATE}.spec.containers", "name"))
    _check_init_containers(_objects(spec.get("initContainers"), f"{TEMPLATE}.spec.initContainers", "name"))


def _check_main(containers: list[dict[str, Any]]) -> None:
    path = f"{TEMPLATE}.spec.containers"
    for container in containers:
        if container["name"] != MAIN:
            raise TemplateError(
                f"{path}[{container['name']}]: the only container a template may give is {MAIN}, which shapes every "
                f"process container. A container beside the process belongs in {TEMPLATE}.spec.initContainers with "
                "restartPolicy: Always (a native sidecar, stopped when the process ends): a regular container that "
                "never exits would keep every Job running")
    if len(containers) > 1:
        raise TemplateError(f"{path} names {MAIN} more than once")
    for container in containers:
        for field, value in container.items():
            where = f"{path}[{MAIN}].{field}"
            if field not in _MAIN_FIELDS:
                raise TemplateError(
                    f"{where} cannot be set: {MAIN} gives the process containers env, envFrom, volumeMounts, "
                    "volumeDevices, workingDir and securityContext; their image, command, args and resources are "
                    "the process's")
            if field in _MAIN_ADDED_LISTS:
                _objects(value, where, _MAIN_ADDED_LISTS[field])
            elif field in _MAIN_UNDER and not isinstance(value or {}, dict):
                raise TemplateError(f"{where} must be an object")


def _check_init_containers(containers: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for container in containers:
        name = container["name"]
        where = f"{TEMPLATE}.spec.initContainers[{name}]"
        if _PROCESS_CONTAINER.match(name):
            raise TemplateError(f"{where}: {name} is the name of a process container; choose another")
        if name in seen:
            raise TemplateError(f"{where}: the name is used twice")
        seen.add(name)
        if not isinstance(container.get("image"), str) or not container["image"].strip():
            raise TemplateError(f"{where}.image is required: an init container runs its own image")
        if container.get("restartPolicy") not in (None, "Always"):
            raise TemplateError(f"{where}.restartPolicy must be Always (a native sidecar) or absent (an init "
                                "container that runs to completion before the process)")


# -- the merge ---------------------------------------------------------------------------------------------------

def _add_items(target: dict[str, Any], field: str, items: list[Any], key: str | None, path: str,
               ignored: list[str], reserved: tuple[Any, ...] = ()) -> None:
    """The template's `items` appended to target[field]; one whose `key` the list (or `reserved`) already holds
    is ignored, an exact copy of one already there is dropped."""
    current = target.get(field) or []
    taken = ({item.get(key) for item in current if isinstance(item, dict)} | set(reserved)) if key else set()
    added = []
    for item in items:
        if item in current:
            continue
        if key and item.get(key) in taken:
            ignored.append(f"{path}[{item.get(key)}]")
            continue
        added.append(copy.deepcopy(item))
    if added:
        target[field] = current + added


def _add_entries(target: dict[str, Any], field: str, entries: dict[str, Any], path: str,
                 ignored: list[str]) -> None:
    """The template's map entries added to target[field]; a key it has with another value is ignored."""
    current = dict(target.get(field) or {})
    for key, value in entries.items():
        if key not in current:
            current[key] = value
        elif current[key] != value:
            ignored.append(f"{path}[{key}]")
    if current:
        target[field] = current


def _under(base: dict[str, Any], extra: dict[str, Any], path: str, ignored: list[str]) -> dict[str, Any]:
    """`extra` merged under `base`: what base lacks is taken, nested objects field by field."""
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if key not in result:
            result[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(result[key], dict):
            result[key] = _under(result[key], value, f"{path}.{key}", ignored)
        elif result[key] != value:
            ignored.append(f"{path}.{key}")
    return result


def _take(target: dict[str, Any], field: str, value: Any, path: str, ignored: list[str]) -> None:
    if field not in target:
        target[field] = copy.deepcopy(value)
    elif target[field] != value:
        ignored.append(path)


def _merge_fields(target: dict[str, Any], fields: dict[str, Any], path: str, ignored: list[str], *,
                  lists: dict[str, str | None], under: tuple[str, ...], taken: tuple[str, ...],
                  maps: tuple[str, ...] = (), reserved: dict[str, tuple[Any, ...]] | None = None) -> None:
    """Each of `fields` into `target` by its kind; the operator's (any other) are ignored unless equal."""
    for field, value in fields.items():
        where = f"{path}.{field}"
        if field in lists:
            _add_items(target, field, value or [], lists[field], where, ignored, (reserved or {}).get(field, ()))
        elif field in maps:
            _add_entries(target, field, value or {}, where, ignored)
        elif field in under:
            merged = _under(target.get(field) or {}, value or {}, where, ignored)
            if merged:
                target[field] = merged
        elif field in taken:
            _take(target, field, value, where, ignored)
        elif target.get(field) != value:
            ignored.append(where)


def merge_pod_template(template: dict[str, Any], metadata: dict[str, Any], spec: dict[str, Any], *,
                       container_defaults: dict[str, Any]) -> MergedPod:
    """`template` (checked by check_template) merged under the operator's pod `metadata` and `spec`.
    `container_defaults`: the security context the operator gives its containers, under each init container's
    own."""
    _check(template)
    ignored: list[str] = []
    merged_metadata, merged_spec = copy.deepcopy(metadata), copy.deepcopy(spec)
    for key, value in (template.get("metadata") or {}).items():
        if key in ("labels", "annotations"):
            _add_entries(merged_metadata, key, value or {}, f"metadata.{key}", ignored)
        else:  # the name, namespace and owners of a pod are the Job controller's
            ignored.append(f"metadata.{key}")
    pod = dict(template.get("spec") or {})
    main = next(iter(pod.pop("containers", None) or []), {})
    init_containers = pod.pop("initContainers", None) or []
    _merge_fields(merged_spec, pod, "spec", ignored, lists=_ADDED_LISTS, maps=_ADDED_MAPS, under=_UNDER,
                  taken=_TAKEN)
    main_fields = {k: v for k, v in main.items() if k != "name"}
    for container in merged_spec.get("containers") or []:
        mounts = (container["terminationMessagePath"],) if container.get("terminationMessagePath") else ()
        _merge_fields(container, main_fields, f"spec.containers[{MAIN}]", ignored, lists=_MAIN_ADDED_LISTS,
                      under=_MAIN_UNDER, taken=_MAIN_TAKEN, reserved={"volumeMounts": mounts})
    names = {c.get("name") for c in (merged_spec.get("containers") or []) + (merged_spec.get("initContainers") or [])}
    for init in init_containers:
        if init["name"] in names:
            ignored.append(f"spec.initContainers[{init['name']}]")
            continue
        container = copy.deepcopy(init)
        context = merge_context(container_defaults, init.get("securityContext") or {})
        if context:
            container["securityContext"] = context
        merged_spec.setdefault("initContainers", []).append(container)
    return MergedPod(merged_metadata, merged_spec, tuple(dict.fromkeys(ignored)))


def describe_env(container: dict[str, Any]) -> list[str]:
    """The container's env as names and where each comes from, never a value (for the debug log)."""
    described = []
    for entry in container.get("env") or []:
        source = entry.get("valueFrom") or {}
        secret, config_map = source.get("secretKeyRef"), source.get("configMapKeyRef")
        if secret:
            described.append(f"{entry['name']} (from Secret {secret.get('name')}, key {secret.get('key')})")
        elif config_map:
            described.append(f"{entry['name']} (from ConfigMap {config_map.get('name')}, key "
                             f"{config_map.get('key')})")
        else:
            described.append(entry["name"])
    for entry in container.get("envFrom") or []:
        for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if entry.get(field):
                prefix = f", prefix {entry['prefix']}" if entry.get("prefix") else ""
                described.append(f"all of {kind} {entry[field].get('name')}{prefix}")
    return described
