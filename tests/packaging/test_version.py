"""The project's conventions: one version for the package, the image and the chart; a license, a changelog, the
chart's metadata; a Makefile whose targets all exist and are listed by `make help`. Offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from colonies_operator import __version__

REPO = Path(__file__).resolve().parents[2]
CHART_YAML = REPO / "charts" / "colonies-operator" / "Chart.yaml"


def chart() -> dict:
    return yaml.safe_load(CHART_YAML.read_text())


def test_the_package_the_image_and_the_chart_have_one_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert chart()["version"] == __version__, "hack/set-version.sh sets every copy"
    assert chart()["appVersion"] == __version__
    assert f"ARG VERSION={__version__}\n" in (REPO / "Dockerfile").read_text()
    values = yaml.safe_load((CHART_YAML.parent / "values.yaml").read_text())
    assert values["image"] == {"repository": "colonies-operator", "tag": "", "pullPolicy": "IfNotPresent"}, \
        "the default image is colonies-operator:<appVersion>, the name make image gives the archive's image"
    assert '--destination dist' in (REPO / "Makefile").read_text()


def test_the_changelog_keeps_a_changelog_with_a_section_for_this_version():
    text = (REPO / "CHANGELOG.md").read_text()
    assert "https://keepachangelog.com/" in text
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.MULTILINE)
    assert headings[0] == ("Unreleased", "")
    assert (__version__, headings[1][1]) == headings[1] and headings[1][1], "the newest release comes next, dated"
    sections = set(re.findall(r"^### (\w+)$", text, re.MULTILINE))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_the_license_is_the_mit_license_pyproject_declares():
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


def test_chart_yaml_has_the_metadata_artifact_hub_and_helm_read():
    meta = chart()
    assert re.fullmatch(r">=1\.\d+\.\d+-0", meta["kubeVersion"])
    assert meta["home"].startswith("https://") and all(s.startswith("https://") for s in meta["sources"])
    annotations = meta["annotations"]
    assert annotations["artifacthub.io/license"] == "MIT"
    (crd,) = yaml.safe_load(annotations["artifacthub.io/crds"])
    crd_file = yaml.safe_load((REPO / "crds" / "coloniesexecutor.yaml").read_text())
    assert (crd["kind"], crd["name"]) == (crd_file["spec"]["names"]["kind"], crd_file["metadata"]["name"])
    assert crd["version"] in [v["name"] for v in crd_file["spec"]["versions"]]
    (example,) = yaml.safe_load(annotations["artifacthub.io/crdsExamples"])
    assert example["kind"] == "ColoniesExecutor"


def versions_named(text: str) -> list[str]:
    """The versions a text's commands name: dist/colonies-operator-X.tar, colonies-operator:X, ….tgz."""
    return re.findall(r"colonies-operator[-:](\d+\.\d+\.\d+)\b", text)


def test_the_docs_name_the_current_version():
    for doc in ("README.md", "charts/colonies-operator/README.md"):
        named = versions_named((REPO / doc).read_text())
        assert named and set(named) == {__version__}, doc


def test_set_version_changes_every_copy(tmp_path):
    """hack/set-version.sh on a copy of the files it edits: afterwards they all say the new version."""
    for path in ("hack/set-version.sh", "hack/lib.sh", "operator/colonies_operator/__init__.py", "Dockerfile",
                 "charts/colonies-operator/Chart.yaml", "CHANGELOG.md", "README.md", "charts/colonies-operator/README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, tmp_path / path)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(tmp_path / "hack/set-version.sh"), "9.8.7"], cwd=tmp_path, check=True, capture_output=True)
    assert '__version__ = "9.8.7"' in (tmp_path / "operator/colonies_operator/__init__.py").read_text()
    assert "ARG VERSION=9.8.7\n" in (tmp_path / "Dockerfile").read_text()
    meta = yaml.safe_load((tmp_path / "charts/colonies-operator/Chart.yaml").read_text())
    assert (meta["version"], meta["appVersion"]) == ("9.8.7", "9.8.7")
    for doc in ("README.md", "charts/colonies-operator/README.md"):
        assert set(versions_named((tmp_path / doc).read_text())) == {"9.8.7"}, doc
    changelog = (tmp_path / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[Unreleased\]\n\n## \[9\.8\.7\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)


def makefile_targets() -> tuple[set[str], set[str], dict[str, str]]:
    """(phony names, defined targets, target -> its `## ` help text)."""
    text = (REPO / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY: (.*)$", text, re.MULTILINE).group(1).split())
    defined = set(re.findall(r"^([a-z][a-z-]*):", text, re.MULTILINE))
    helps = dict(re.findall(r"^([a-z][a-z-]*):.*## (.*)$", text, re.MULTILINE))
    return phony, defined, helps


def test_every_phony_target_exists_and_make_help_lists_it():
    phony, defined, helps = makefile_targets()
    assert phony <= defined, f"dead targets in .PHONY: {phony - defined}"
    assert phony == set(helps), f"targets without a `## ` description for make help: {phony - set(helps)}"
    if not shutil.which("make"):
        pytest.skip("no make")
    listed = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for target in phony:
        assert re.search(rf"^  make {target} ", listed, re.MULTILINE), target
