"""The examples as users apply them: each is accepted by the real API server, and none holds a Secret that would
replace the key Secret the user created first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.cluster]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_each_example_applies_and_holds_no_secret(example, kube_cluster, crd, namespace):
    path = EXAMPLES / example
    kinds = [doc["kind"] for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert "Secret" not in kinds and kinds
    result = subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "--namespace", namespace, "apply",
                             "--dry-run=server", "--validate=strict", "-o", "name", "-f", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"coloniesexecutor.colonyos.io/{doc['metadata']['name']}"
                                     for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert result.stderr == "", result.stderr  # no warning: no unknown or deprecated field
