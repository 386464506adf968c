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
