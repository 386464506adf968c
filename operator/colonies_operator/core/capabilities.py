"""The cluster's hardware as a Colonies executor's capabilities (pure: no I/O).

Colonies v1.9 describes an executor's hardware as a list, one entry per kind of machine. The operator reports
one entry per kind of node that its Jobs may run on: nodes are grouped by GPU model (the value of the GPU node
label, e.g. nvidia.com/gpu.product), GPUs per node, instance type (node.kubernetes.io/instance-type, shown as
the model), operating system and architecture. Each entry sums its nodes' allocatable CPU, memory, ephemeral
storage and GPUs:

    {"model": "p4d.24xlarge", "nodes": 2, "cpu": "190000m", "cores": 192, "mem": "2240000Mi",
     "storage": "1600000Mi", "gpu": {"name": "NVIDIA-A100-SXM4-40GB", "mem": "40960Mi", "count": 16,
     "nodecount": 8}, "platform": "linux", "architecture": "amd64", "network": []}

`gpu.count` is the entry's GPUs in total and `gpu.nodecount` the GPUs per node, as `colonies executor get`
labels them ("GPUs", "GPU/Node"). Only nodes a Job could be scheduled on count: Ready, not cordoned, matching
the executor's Job node selector, and without a NoSchedule/NoExecute taint its Job tolerations do not tolerate.
The GPU models a process may ask for (`gpu_models_provided`) also include those of cordoned and not-ready nodes.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable

from .. import __version__
from .config import DEFAULT_GPU_NODE_LABEL, DEFAULT_GPU_RESOURCE
from .quantity import amount_or_zero

LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_OS, LABEL_ARCH = "kubernetes.io/os", "kubernetes.io/arch"
# Set by NVIDIA GPU Feature Discovery next to nvidia.com/gpu.product: the memory of one GPU, in MiB.
LABEL_GPU_MEMORY = "nvidia.com/gpu.memory"


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _tolerated(taint: dict[str, Any], tolerations: Iterable[dict[str, Any]]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists" and (not toleration.get("key") or toleration.get("key") == taint.get("key")):
            return True
        if operator == "Equal" and toleration.get("key") == taint.get("key") and \
                (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def schedulable(node: dict[str, Any], node_selector: dict[str, str] | None = None,
                tolerations: Iterable[dict[str, Any]] = ()) -> bool:
    """Whether a Job pod with this node selector and these tolerations could land on the node now."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    spec = node.get("spec") or {}
    if spec.get("unschedulable") or not _ready(node):
        return False
    if any(labels.get(key) != value for key, value in (node_selector or {}).items()):
        return False
    tolerations = list(tolerations)
    return all(taint.get("effect") not in ("NoSchedule", "NoExecute") or _tolerated(taint, tolerations)
               for taint in spec.get("taints") or [])


# The taints of a node that is cordoned, not ready or unreachable: passing states, not what the node offers.
PASSING_TAINTS = frozenset({"node.kubernetes.io/unschedulable", "node.kubernetes.io/not-ready",
                            "node.kubernetes.io/unreachable"})


def provides(node: dict[str, Any], node_selector: dict[str, str] | None = None,
             tolerations: Iterable[dict[str, Any]] = ()) -> bool:
    """Whether a Job pod with this node selector and these tolerations could land on the node once it is back:
    as `schedulable`, but a cordoned, not-ready or unreachable node counts (maintenance ends)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in (node_selector or {}).items()):
        return False
    tolerations = list(tolerations)
    return all(taint.get("effect") not in ("NoSchedule", "NoExecute") or taint.get("key") in PASSING_TAINTS
               or _tolerated(taint, tolerations) for taint in (node.get("spec") or {}).get("taints") or [])


def gpu_models_provided(nodes: list[dict[str, Any]], config: Any) -> frozenset[str]:
    """The GPU models of the nodes an executor's Jobs may run on (its ExecutorConfig), cordoned or not ready ones
    included: what conditions.gpu.name may ask for, besides the models the resource declares."""
    found = set()
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        gpus = amount_or_zero(((node.get("status") or {}).get("capacity") or {}).get(config.gpu.resource_name, 0))
        if gpus and labels.get(config.gpu.node_label) and provides(node, config.jobs.node_selector,
                                                                    config.jobs.tolerations):
            found.add(labels[config.gpu.node_label])
    return frozenset(found)


def hardware_from_nodes(nodes: list[dict[str, Any]], *, gpu_resource: str = DEFAULT_GPU_RESOURCE,
                        gpu_label: str = DEFAULT_GPU_NODE_LABEL, node_selector: dict[str, str] | None = None,
                        tolerations: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Kubernetes Node objects (as JSON) -> the Colonies hardware list, one entry per kind of node, in a stable
    order (GPU model, then instance type, platform, architecture)."""
    tolerations = list(tolerations)
    groups: dict[tuple, list[dict[str, Any]]] = collections.defaultdict(list)
    for node in nodes:
        if not schedulable(node, node_selector, tolerations):
            continue
        labels = (node.get("metadata") or {}).get("labels") or {}
        status = node.get("status") or {}
        info = status.get("nodeInfo") or {}
        gpus = int(amount_or_zero((status.get("allocatable") or {}).get(gpu_resource, 0)))
        gpu_name = labels.get(gpu_label, "") if gpus else ""
        gpu_mem = labels.get(LABEL_GPU_MEMORY, "") if gpus else ""
        key = (gpu_name, gpus, f"{gpu_mem}Mi" if gpu_mem.isdigit() else "", labels.get(LABEL_INSTANCE_TYPE, ""),
               labels.get(LABEL_OS) or info.get("operatingSystem", ""),
               labels.get(LABEL_ARCH) or info.get("architecture", ""))
        groups[key].append(node)

    hardware = []
    for (gpu_name, gpus_per_node, gpu_mem, model, platform, arch), members in sorted(groups.items()):
        allocatable = [(n.get("status") or {}).get("allocatable") or {} for n in members]
        capacity = [(n.get("status") or {}).get("capacity") or {} for n in members]
        millicores = sum(amount_or_zero(a.get("cpu", 0)) * 1000 for a in allocatable)
        mebibytes = sum(amount_or_zero(a.get("memory", 0)) for a in allocatable) / 2**20
        storage = sum(amount_or_zero(a.get("ephemeral-storage", 0)) for a in allocatable) / 2**20
        hardware.append({
            "model": model,
            "nodes": len(members),
            "cpu": f"{int(millicores)}m",
            "cores": int(sum(amount_or_zero(c.get("cpu", 0)) for c in capacity)),
            "mem": f"{int(mebibytes)}Mi",
            "storage": f"{int(storage)}Mi" if storage else "",
            "gpu": {"name": gpu_name, "mem": gpu_mem, "count": gpus_per_node * len(members),
                    "nodecount": gpus_per_node},
            "platform": platform,
            "architecture": arch,
            "network": [],
        })
    return hardware


def software_from_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator itself, and the kubelet versions of the nodes (pass those a Job could run on)."""
    kubelets = sorted({((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "") for n in nodes} - {""})
    return [{"name": "colonies-operator", "type": "kubernetes-operator", "version": __version__}] + \
        [{"name": "kubernetes", "type": "kubelet", "version": version} for version in kubelets]


def capabilities_from_nodes(nodes: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """The executor's capabilities: {"hardware": hardware_from_nodes(...), "software": software_from_nodes(...)},
    both of the nodes a Job could run on. kwargs: those of hardware_from_nodes."""
    tolerations = list(kwargs.get("tolerations") or ())
    usable = [n for n in nodes if schedulable(n, kwargs.get("node_selector"), tolerations)]
    return {"hardware": hardware_from_nodes(usable, **kwargs), "software": software_from_nodes(usable)}


def capabilities_for(nodes: list[dict[str, Any]], config: Any) -> dict[str, Any]:
    """The capabilities of the executor of a ColoniesExecutor (its ExecutorConfig): its GPU resource and label,
    and the nodes its Jobs may run on."""
    return capabilities_from_nodes(nodes, gpu_resource=config.gpu.resource_name, gpu_label=config.gpu.node_label,
                                   node_selector=config.jobs.node_selector, tolerations=config.jobs.tolerations)


def gpu_models(hardware: list[dict[str, Any]]) -> frozenset[str]:
    """The GPU models in a hardware list (what conditions.gpu.name may ask for)."""
    return frozenset(h["gpu"]["name"] for h in hardware if (h.get("gpu") or {}).get("name"))
