"""Kubernetes nodes -> the executor's Colonies capabilities (one hardware entry per kind of node)."""

from colonies_operator.core.capabilities import (
    capabilities_for,
    capabilities_from_nodes,
    gpu_models,
    gpu_models_provided,
    hardware_from_nodes,
)
from colonies_operator.kube.cache import slim
from colonies_operator.core.config import config_from_spec


def node(name, cpu="4", memory="16Gi", gpus=0, gpu_model=None, gpu_memory=None, arch="amd64", instance_type=None,
         ready=True, unschedulable=False, taints=(), labels=None, kubelet="v1.34.1"):
    node_labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": arch, **(labels or {})}
    if gpu_model:
        node_labels["nvidia.com/gpu.product"] = gpu_model
    if gpu_memory:
        node_labels["nvidia.com/gpu.memory"] = gpu_memory
    if instance_type:
        node_labels["node.kubernetes.io/instance-type"] = instance_type
    resources = {"cpu": cpu, "memory": memory, "ephemeral-storage": "100Gi", "pods": "110"}
    if gpus:
        resources["nvidia.com/gpu"] = str(gpus)
    return {"metadata": {"name": name, "labels": node_labels},
            "spec": {"unschedulable": unschedulable, "taints": list(taints)},
            "status": {"capacity": dict(resources), "allocatable": dict(resources),
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "nodeInfo": {"operatingSystem": "linux", "architecture": arch, "kubeletVersion": kubelet}}}


def test_one_entry_per_gpu_model_with_totals_and_gpus_per_node():
    nodes = [node("cpu-1", cpu="8", memory="32Gi"), node("cpu-2", cpu="3500m", memory="16Gi"),
             node("a100-1", cpu="96", memory="1024Gi", gpus=8, gpu_model="NVIDIA-A100-SXM4-40GB", gpu_memory="40960",
                  instance_type="p4d.24xlarge"),
             node("a100-2", cpu="96", memory="1024Gi", gpus=8, gpu_model="NVIDIA-A100-SXM4-40GB", gpu_memory="40960",
                  instance_type="p4d.24xlarge"),
             node("t4-1", cpu="4", memory="16Gi", gpus=1, gpu_model="Tesla-T4")]
    hardware = hardware_from_nodes(nodes)
    assert [h["gpu"]["name"] for h in hardware] == ["", "NVIDIA-A100-SXM4-40GB", "Tesla-T4"]
    plain, a100, t4 = hardware
    assert plain == {"model": "", "nodes": 2, "cpu": "11500m", "cores": 11, "mem": "49152Mi", "storage": "204800Mi",
                     "gpu": {"name": "", "mem": "", "count": 0, "nodecount": 0}, "platform": "linux",
                     "architecture": "amd64", "network": []}
    assert a100["model"] == "p4d.24xlarge" and a100["nodes"] == 2 and a100["cores"] == 192
    assert a100["gpu"] == {"name": "NVIDIA-A100-SXM4-40GB", "mem": "40960Mi", "count": 16, "nodecount": 8}
    assert t4["gpu"] == {"name": "Tesla-T4", "mem": "", "count": 1, "nodecount": 1}
    assert gpu_models(hardware) == {"NVIDIA-A100-SXM4-40GB", "Tesla-T4"}


def test_architectures_and_gpu_counts_per_node_make_separate_kinds():
    hardware = hardware_from_nodes([node("x", arch="amd64"), node("y", arch="arm64"),
                                    node("g1", gpus=1, gpu_model="L4"), node("g2", gpus=2, gpu_model="L4")])
    assert [(h["architecture"], h["gpu"]["name"], h["gpu"]["nodecount"]) for h in hardware] == \
        [("amd64", "", 0), ("arm64", "", 0), ("amd64", "L4", 1), ("amd64", "L4", 2)]


def test_only_nodes_a_job_could_run_on_count():
    nodes = [node("ok"), node("not-ready", ready=False), node("cordoned", unschedulable=True),
             node("control-plane", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
             node("prefer", taints=[{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}]),
             node("gpu-tainted", gpus=1, gpu_model="L4", taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])]
    assert [h["nodes"] for h in hardware_from_nodes(nodes)] == [2]  # ok and prefer
    tolerating = hardware_from_nodes(nodes, tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}])
    assert gpu_models(tolerating) == {"L4"}
    assert hardware_from_nodes(nodes, tolerations=[{"operator": "Exists"}])[0]["nodes"] == 3
    equal = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "value": "", "effect": "NoSchedule"}]
    assert hardware_from_nodes(nodes, tolerations=equal)[0]["nodes"] == 3
    selected = hardware_from_nodes(nodes + [node("pool-b", labels={"pool": "b"})], node_selector={"pool": "b"})
    assert [h["nodes"] for h in selected] == [1]


def test_the_operators_view_of_nodes_keeps_what_decides_where_jobs_can_run():
    # The operator's node view holds slimmed objects: they must still carry the taints and the cordon, or a
    # tainted node (a GPU pool, a fake node) is advertised to Colonies though no Job of the executor can land.
    nodes = [node("ok"), node("cordoned", unschedulable=True),
             node("gpu-tainted", gpus=1, gpu_model="L4", taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])]
    assert hardware_from_nodes([slim(n, "nodes") for n in nodes]) == hardware_from_nodes(nodes)
    assert [h["nodes"] for h in hardware_from_nodes([slim(n, "nodes") for n in nodes])] == [1]
    assert "spec" not in slim({"metadata": {"name": "j"}, "spec": {"template": {}}, "status": {}}, "jobs")


def test_no_schedulable_node_means_no_hardware():
    assert hardware_from_nodes([node("down", ready=False)]) == []
    assert gpu_models([]) == frozenset()


def test_the_executors_gpu_resource_and_label_and_job_placement_are_used():
    config = config_from_spec({"server": {"host": "h"}, "colonyName": "dev",
                               "credentials": {"colonyKeySecret": {"name": "k"}},
                               "gpu": {"resourceName": "amd.com/gpu", "nodeLabel": "amd.com/gpu.product"},
                               "jobs": {"nodeSelector": {"pool": "gpu"}}}, namespace="n", name="x")
    amd = node("amd", labels={"pool": "gpu", "amd.com/gpu.product": "MI300X"})
    amd["status"]["allocatable"]["amd.com/gpu"] = "8"
    capabilities = capabilities_for([amd, node("elsewhere")], config)
    assert [h["gpu"] for h in capabilities["hardware"]] == [{"name": "MI300X", "mem": "", "count": 8, "nodecount": 8}]


def test_software_names_the_operator_and_the_kubelet_versions_of_usable_nodes():
    fake = node("kwok", kubelet="kwok-0.8.0", taints=[{"key": "kwok.x-k8s.io/node", "value": "fake",
                                                        "effect": "NoSchedule"}])
    software = capabilities_from_nodes([node("a"), node("b", kubelet="v1.33.5"), fake])["software"]
    assert software[0]["name"] == "colonies-operator" and software[0]["version"]
    assert [s["version"] for s in software[1:]] == ["v1.33.5", "v1.34.1"]


def test_cordoned_and_not_ready_nodes_still_provide_their_gpu_model_other_unfit_nodes_do_not():
    config = config_from_spec({"server": {"host": "h"}, "colonyName": "c",
                               "credentials": {"colonyKeySecret": {"name": "s"}},
                               "jobs": {"nodeSelector": {"pool": "gpu"}}}, namespace="n", name="x")
    pool = {"pool": "gpu"}
    cordon = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    nodes = [node("a100", gpus=8, gpu_model="A100", labels=pool, unschedulable=True, taints=cordon),
             node("h100", gpus=8, gpu_model="H100", labels=pool, ready=False,
                  taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
             node("l4", gpus=1, gpu_model="L4", labels=pool, taints=[{"key": "dedicated", "effect": "NoSchedule"}]),
             node("t4", gpus=1, gpu_model="T4", labels={"pool": "other"}),
             node("labelled-without-gpus", gpu_model="V100", labels=pool)]
    assert gpu_models_provided(nodes, config) == {"A100", "H100"}
    # The capabilities show only where Jobs can run now: of these, the node without GPUs.
    assert [h["gpu"]["name"] for h in capabilities_for(nodes, config)["hardware"]] == [""]
