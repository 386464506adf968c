"""Fake nodes on the test cluster, played by kwok (hack/cluster/kwok.sh): for the scale tests and bench/scale.py.

A fake node is tainted, so a ColoniesExecutor sends its Jobs there only with FAKE_NODE_TOLERATION in
spec.jobs.tolerations, and keeps them off the real node with FAKE_NODE_SELECTOR in spec.jobs.nodeSelector.
A pod there "runs" its command as far as `sleep N` and `exit N` go (hack/kwok/kwok.yaml), and has no log.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KWOK_SH = REPO / "hack" / "cluster" / "kwok.sh"
FAKE_NODE_LABEL = "colonies-operator.test/kwok"
FAKE_NODE_PREFIX = "kwok-node-"
FAKE_NODE_TOLERATION = {"key": FAKE_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
FAKE_NODE_SELECTOR = {"type": "kwok"}
GPU_MODEL_LABEL = "nvidia.com/gpu.product"
# Node i has 8 nvidia-a100 when i % 4 == 0, 4 nvidia-t4 when i % 4 == 1, no GPU otherwise (kwok.sh).
GPU_MODELS = {"nvidia-a100": 8, "nvidia-t4": 4}
KWOK_TIMEOUT = float(os.environ.get("COLONIES_OPERATOR_KWOK_TIMEOUT", "1800"))  # a cold build of kwok included


def kwok_sh(kubeconfig: str, *args: str, timeout: float = KWOK_TIMEOUT) -> None:
    """Runs hack/cluster/kwok.sh outside pytest (benchmarks); progress goes to stderr, failures raise."""
    subprocess.run([str(KWOK_SH), *args], env=dict(os.environ, KUBECONFIG=kubeconfig), check=True,
                   stdout=subprocess.DEVNULL, timeout=timeout)


def fake_node(name: str, *, labels: dict[str, str] | None = None, gpus: int = 0,
              unschedulable: bool = False) -> dict:
    """A Node that kwok plays, like those kwok.sh adds (tainted, labelled type=kwok, 32 CPUs, 256Gi, 1Ti), with
    extra `labels` and `gpus` nvidia.com/gpu: a node "the autoscaler adds" in a test. Create it through the API;
    delete it afterwards. A name outside kwok-node-* keeps it out of kwok.sh's count."""
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {FAKE_NODE_LABEL: "true", **FAKE_NODE_SELECTOR, "kubernetes.io/hostname": name,
                                "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", **(labels or {})}},
        "spec": {"taints": [{"key": FAKE_NODE_LABEL, "value": "true", "effect": "NoSchedule"}],
                 "unschedulable": unschedulable},
        "status": {"capacity": {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "110",
                                "nvidia.com/gpu": str(gpus)}},
    }
