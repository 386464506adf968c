"""The operator's image as `make demo` and the chart e2e run it: built from the Dockerfile by hack/images/build.sh
(buildah), read here from the docker-archive it exports: its config (user, entrypoint, labels) and its files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from colonies_operator import __version__

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image() -> tuple[str, Path]:
    """(reference, docker-archive) of the operator image built from this checkout."""
    if os.geteuid() != 0:
        pytest.skip("building the image needs root (buildah with chroot isolation, debootstrap)")
    result = subprocess.run([str(REPO / "hack/images/build.sh"), "operator"], capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"hack/images/build.sh operator failed:\n{result.stderr[-3000:]}", pytrace=False)
    ref, tar = result.stdout.strip().splitlines()[-1].split("\t")
    return ref, Path(tar)


def manifest_and_config(tar: Path) -> tuple[dict, dict]:
    with tarfile.open(tar) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        return manifest, json.load(archive.extractfile(manifest["Config"]))


def layer_paths(tar: Path) -> set[str]:
    """Every path in every layer, without the leading ./ or /."""
    paths: set[str] = set()
    with tarfile.open(tar) as archive:
        for layer in json.load(archive.extractfile("manifest.json"))[0]["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer)) as files:
                paths.update(name.removeprefix("./").lstrip("/") for name in files.getnames())
    return paths


def test_the_dockerfile_labels_the_package_version():
    """Docker users build without build arguments: the Dockerfile's default VERSION is the package's."""
    assert f"ARG VERSION={__version__}\n" in (REPO / "Dockerfile").read_text()


def test_the_image_config_runs_the_operator_as_uid_10001_with_oci_labels(image):
    ref, tar = image
    manifest, config = manifest_and_config(tar)
    assert manifest["RepoTags"] == [ref]
    assert ref.startswith(f"localhost/colonies-operator:{__version__}-")
    settings = config["config"]
    assert settings["User"] == "10001:10001"
    assert settings["Entrypoint"] == ["colonies-operator"]
    assert settings["Cmd"] == ["run", "--all-namespaces"]
    assert "PATH=/opt/colonies-operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in \
        settings["Env"]
    labels = settings["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.title"] == "colonies-operator"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.base.name"] == "docker.io/library/debian:bookworm-slim"
    # The last commit that changed what goes into the image (-dirty: with uncommitted changes to it).
    revision = r"[0-9a-f]{40}(-dirty)?" if (REPO / ".git").exists() else "unknown"
    assert re.fullmatch(revision, labels["org.opencontainers.image.revision"])
    assert "org.opencontainers.image.source" in labels


def test_the_image_holds_python_and_the_venv_but_no_pip(image):
    paths = layer_paths(image[1])
    assert {"usr/bin/python3.11", "opt/colonies-operator/bin/colonies-operator", "etc/passwd"} <= paths
    assert any(re.fullmatch(r"opt/colonies-operator/lib/python3\.11/site-packages/colonies_operator/__init__\.py", p)
               for p in paths)
    pip = sorted(p for p in paths if re.search(r"(^|/)(bin/pip[0-9.]*|(site|dist)-packages/pip)$", p))
    assert not pip, f"pip is in the image: {pip}"


def test_the_image_holds_no_developer_tooling_nor_the_libraries_only_it_uses(image):
    """The operator needs neither requests nor the official Kubernetes client (kopf reads its credentials); the
    developer tools (devtools/: a sync client, the dev Colonies server) stay in the checkout."""
    site = "opt/colonies-operator/lib/python3.11/site-packages/"
    packages = {p[len(site):].split("/", 1)[0] for p in layer_paths(image[1]) if p.startswith(site)}
    assert not packages & {"requests", "kubernetes", "devtools", "urllib3", "pydantic"}, sorted(packages)
    assert not any(p.startswith(site + "colonies_operator/dev") for p in layer_paths(image[1]))
