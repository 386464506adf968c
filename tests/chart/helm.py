"""helm for the tests: built from the Go module proxy once (hack/build-helm.sh), and a renderer."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "colonies-operator"


@functools.cache
def helm_binary() -> str:
    """The helm binary's path (built into the cache on first use: about two minutes on 2 cores)."""
    result = subprocess.run([str(REPO / "hack" / "build-helm.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return result.stdout.strip().splitlines()[-1]


def helm(*args: str, kubeconfig: str | None = None, check: bool = True,
         timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs helm; with `check`, a failure raises with helm's own output."""
    env = dict(os.environ, **({"KUBECONFIG": kubeconfig} if kubeconfig else {}))
    result = subprocess.run([helm_binary(), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def values_file(values: dict[str, Any], directory: Path | None = None) -> str:
    """Writes values to a YAML file and returns its path."""
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=directory, delete=False)
    with handle:
        yaml.safe_dump(values, handle)
    return handle.name


def render(namespace: str, values: dict[str, Any] | None = None, release: str = "t",
           include_crds: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """`helm template` of the chart: the manifest text and its objects."""
    path = values_file(values or {})
    try:
        args = ["template", release, str(CHART), "--namespace", namespace, "-f", path]
        if include_crds:
            args.append("--include-crds")
        text = helm(*args).stdout
    finally:
        os.unlink(path)
    return text, [obj for obj in yaml.safe_load_all(text) if obj]
