"""Pod security profiles for Job pods, after the Kubernetes Pod Security Standards (pure: no I/O).

- baseline (the default): the Standard's baseline level, plus the RuntimeDefault seccomp profile and no privilege
  escalation, which the operator sets on every pod.
- restricted: the Standard's restricted level: non-root (runAsNonRoot), all capabilities dropped, RuntimeDefault
  seccomp, no privilege escalation. An image that runs as root fails to start unless the resource sets a
  non-root runAsUser.
- privileged: nothing added and nothing checked; only if the cluster admin's policy allows it.

A resource's podSecurityContext and securityContext are merged over the profile's settings and the result is
checked against the profile, so a resource can make its pods stricter but never weaker than its profile. The
operator's own part of a Job pod uses no host namespaces, host ports or volumes, so the contexts are all that can
break a level there; a pod template (podtemplate.py) can add them, and pod_violations checks the whole pod.
"""

from __future__ import annotations

import copy
from typing import Any

BASELINE, RESTRICTED, PRIVILEGED = "baseline", "restricted", "privileged"
PROFILES = (BASELINE, RESTRICTED, PRIVILEGED)

_BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                          "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
_SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                 "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                 "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                 "net.ipv4.tcp_keepalive_probes"}
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# The volume types the Standard's restricted level allows; baseline refuses only hostPath.
RESTRICTED_VOLUME_TYPES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret")
_HOST_NAMESPACES = {"hostNetwork": "network", "hostPID": "process", "hostIPC": "IPC"}
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"

_POD_DEFAULTS: dict[str, dict[str, Any]] = {
    BASELINE: {"seccompProfile": {"type": "RuntimeDefault"}},
    RESTRICTED: {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    PRIVILEGED: {},
}
_CONTAINER_DEFAULTS: dict[str, dict[str, Any]] = {
    BASELINE: {"allowPrivilegeEscalation": False, "privileged": False},
    RESTRICTED: {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}},
    PRIVILEGED: {},
}


def merge_context(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, nested objects merged; capabilities.drop lists are joined, so ALL stays."""
    result = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_context(result[key], value)
        elif key == "drop" and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = result[key] + [v for v in value if v not in result[key]]
        else:
            result[key] = copy.deepcopy(value)
    return result


def security_contexts(profile: str, pod_context: dict[str, Any] | None,
                      container_context: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod's and each container's security context under `profile`, with the resource's own merged over."""
    return (merge_context(_POD_DEFAULTS[profile], pod_context or {}),
            merge_context(_CONTAINER_DEFAULTS[profile], container_context or {}))


def _dict(value: Any) -> dict[str, Any]:
    """A nested object of a free-form context, or {} for anything else (the API server refuses the rest)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def violations(profile: str, pod_context: dict[str, Any], container_context: dict[str, Any]) -> list[str]:
    """What in the (merged) contexts breaks `profile`, each as "<field> <what is wrong>"."""
    if profile == PRIVILEGED:
        return []
    found: list[str] = []
    pod, ctr = _dict(pod_context), _dict(container_context)
    pod_prefix, ctr_prefix = "podSecurityContext", "securityContext"
    for prefix, context in ((pod_prefix, pod), (ctr_prefix, ctr)):
        for key in ("seLinuxOptions", "seccompProfile", "windowsOptions", "appArmorProfile", "capabilities"):
            if key in context and not isinstance(context[key], dict):
                found.append(f"{prefix}.{key} must be an object")
    for key in ("add", "drop"):
        if key in _dict(ctr.get("capabilities")) and not isinstance(ctr["capabilities"][key], list):
            found.append(f"{ctr_prefix}.capabilities.{key} must be a list")
    if "sysctls" in pod and not isinstance(pod["sysctls"], list):
        found.append(f"{pod_prefix}.sysctls must be a list")
    for prefix, context in ((pod_prefix, pod), (ctr_prefix, ctr)):
        if _dict(context.get("windowsOptions")).get("hostProcess"):
            found.append(f"{prefix}.windowsOptions.hostProcess true gives the host's privileges")
        selinux = _dict(context.get("seLinuxOptions"))
        if str(selinux.get("type", "")) not in _SELINUX_TYPES:
            found.append(f"{prefix}.seLinuxOptions.type {selinux['type']!r} is not a container type")
        if selinux.get("user") or selinux.get("role"):
            found.append(f"{prefix}.seLinuxOptions user and role must not be set")
        seccomp = _dict(context.get("seccompProfile")).get("type")
        if seccomp == "Unconfined":
            found.append(f"{prefix}.seccompProfile.type Unconfined turns seccomp off")
        if _dict(context.get("appArmorProfile")).get("type") == "Unconfined":
            found.append(f"{prefix}.appArmorProfile.type Unconfined turns AppArmor off")
    for sysctl in _list(pod.get("sysctls")):
        name = _dict(sysctl).get("name")
        if name not in _SAFE_SYSCTLS:
            found.append(f"{pod_prefix}.sysctls {name!r} is not a safe sysctl")
    if ctr.get("privileged"):
        found.append(f"{ctr_prefix}.privileged true gives the container the host's devices and all capabilities")
    if ctr.get("procMount") not in (None, "Default"):
        found.append(f"{ctr_prefix}.procMount {ctr['procMount']!r} unmasks /proc")
    capabilities = _dict(ctr.get("capabilities"))
    added = [str(c) for c in _list(capabilities.get("add"))]
    allowed_added = {"NET_BIND_SERVICE"} if profile == RESTRICTED else _BASELINE_CAPABILITIES
    beyond = [c for c in added if c not in allowed_added]
    if beyond:
        found.append(f"{ctr_prefix}.capabilities.add {', '.join(beyond)} is beyond the {profile} profile "
                     f"(allowed: {', '.join(sorted(allowed_added))})")
    # The operator's own additions to baseline, and the restricted level.
    if ctr.get("allowPrivilegeEscalation") is not False:
        found.append(f"{ctr_prefix}.allowPrivilegeEscalation must be false")
    seccomp = _dict(ctr.get("seccompProfile")).get("type") or _dict(pod.get("seccompProfile")).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost", "Unconfined"):  # Unconfined is reported above
        found.append(f"{pod_prefix}.seccompProfile.type must be RuntimeDefault or Localhost")
    if profile == RESTRICTED:
        if not (ctr.get("runAsNonRoot") is True or (pod.get("runAsNonRoot") is True
                                                       and ctr.get("runAsNonRoot") is not False)):
            found.append(f"{pod_prefix}.runAsNonRoot must be true")
        for prefix, context in ((pod_prefix, pod), (ctr_prefix, ctr)):
            if context.get("runAsUser") == 0:
                found.append(f"{prefix}.runAsUser 0 is root")
        if "ALL" not in [str(c) for c in _list(capabilities.get("drop"))]:
            found.append(f"{ctr_prefix}.capabilities.drop must include ALL")
    return found


def volume_types(volume: Any) -> list[str]:
    """The sources of a pod volume: its keys but `name` (one, in a valid volume)."""
    return [key for key in _dict(volume) if key != "name"]


def pod_violations(profile: str, spec: dict[str, Any], annotations: dict[str, Any] | None = None) -> list[str]:
    """What in a whole pod breaks `profile`, each as "<field of the pod> <what is wrong>": host namespaces, host
    paths and ports, volume types (restricted), AppArmor annotations, and every container's security context
    with the pod's."""
    if profile == PRIVILEGED:
        return []
    spec = _dict(spec)
    found: list[str] = []
    for key, what in _HOST_NAMESPACES.items():
        if spec.get(key):
            found.append(f"spec.{key} true shares the node's {what} namespace")
    for volume in _list(spec.get("volumes")):
        name = _dict(volume).get("name")
        for kind in volume_types(volume):
            if kind == "hostPath":
                found.append(f"spec.volumes[{name}] hostPath mounts a directory of the node")
            elif profile == RESTRICTED and kind not in RESTRICTED_VOLUME_TYPES:
                found.append(f"spec.volumes[{name}] {kind} is not a volume type of the restricted profile "
                             f"(allowed: {', '.join(RESTRICTED_VOLUME_TYPES)})")
    for key, value in _dict(annotations).items():
        if str(key).startswith(_APPARMOR_ANNOTATION) and value == "unconfined":
            found.append(f"metadata.annotations[{key}] unconfined turns AppArmor off")
    pod_context = _dict(spec.get("securityContext"))
    for kind in ("initContainers", "containers"):
        for container in map(_dict, _list(spec.get(kind))):
            where = f"spec.{kind}[{container.get('name')}]"
            for port in map(_dict, _list(container.get("ports"))):
                if port.get("hostPort"):
                    found.append(f"{where}.ports hostPort {port['hostPort']} binds a port of the node")
            for problem in violations(profile, pod_context, _dict(container.get("securityContext"))):
                head, _, rest = problem.partition(".")
                found.append(f"spec.securityContext.{rest}" if head == "podSecurityContext"
                             else f"{where}.securityContext.{rest}")
    return list(dict.fromkeys(found))  # the pod's own problems come once, not once per container
