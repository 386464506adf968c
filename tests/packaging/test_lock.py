"""The lock files (requirements/*.txt, made by hack/lock.sh) against pyproject.toml: every requirement is locked at a
version its range admits, nothing is locked that pyproject.toml no longer asks for, and the image's runtime lock is
the test lock's runtime part at the same versions. Offline; the last test re-resolves with uv when it can."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = "colonies-operator"
FROM_PYPROJECT = f"{PROJECT} (pyproject.toml)"


@dataclass
class Locked:
    version: str
    marker: str | None
    hashes: int = 0
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Locked]:
    """name -> what the lock says of it (pip-tools' format as uv pip compile writes it, annotations included)."""
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    in_via = False
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9._-]+)==([^ ;\\]+)(?: ; ([^\\]+?))? *\\?", line):
            current = locked[canonicalize_name(match[1])] = Locked(match[2], match[3])
            in_via = False
        elif current and line.strip().startswith("--hash=sha256:"):
            current.hashes += 1
        elif current and (match := re.fullmatch(r" +# via(?: (.+))?", line)):
            in_via = match[1] is None
            if match[1]:
                current.via.append(match[1])
        elif current and in_via and (match := re.fullmatch(r" +#   (.+)", line)):
            current.via.append(match[1])
        elif line.strip() and not line.startswith("#"):
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    return locked


def pyproject_requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in (project["optional-dependencies"][extra] if extra else project["dependencies"])]


RUNTIME = pyproject_requirements()
TEST = RUNTIME + pyproject_requirements("test")
LOCKS = {"runtime.txt": RUNTIME, "test.txt": TEST}


@pytest.mark.parametrize("name", LOCKS)
def test_every_requirement_is_locked_within_its_range(name):
    locked = read_lock(REPO / "requirements" / name)
    for requirement in LOCKS[name]:
        entry = locked.get(canonicalize_name(requirement.name))
        assert entry, f"{requirement} (pyproject.toml) is not in requirements/{name}: run make lock"
        assert requirement.specifier.contains(entry.version, prereleases=True), (
            f"requirements/{name} locks {requirement.name}=={entry.version}, outside {requirement} (pyproject.toml): "
            "run make lock")


@pytest.mark.parametrize("name", LOCKS)
def test_nothing_is_locked_that_pyproject_does_not_ask_for(name):
    locked = read_lock(REPO / "requirements" / name)
    direct = {canonicalize_name(r.name) for r in LOCKS[name]}
    for package, entry in locked.items():
        assert entry.hashes, f"requirements/{name}: {package} has no hash"
        parents = {canonicalize_name(v) for v in entry.via if not v.startswith("-c ") and v != FROM_PYPROJECT}
        assert (FROM_PYPROJECT in entry.via) == (package in direct), (
            f"requirements/{name}: {package} is {'' if package in direct else 'not '}a direct requirement in "
            "pyproject.toml, but the lock says otherwise: run make lock")
        assert package in direct or parents & locked.keys(), (
            f"requirements/{name}: {package} is locked for {entry.via}, none of them locked: run make lock")


def test_the_runtime_lock_is_the_test_lock_s_runtime_part():
    runtime, test = read_lock(REPO / "requirements/runtime.txt"), read_lock(REPO / "requirements/test.txt")
    assert runtime.keys() <= test.keys()
    assert {n: e.version for n, e in runtime.items()} == {n: test[n].version for n in runtime}


def test_uv_resolves_pyproject_to_the_locked_versions(tmp_path):
    """hack/lock.sh run afresh (the locked versions preferred, as it does) changes no version."""
    uv = subprocess.run([str(REPO / "hack/uv.sh")], capture_output=True, text=True)
    if uv.returncode != 0:
        pytest.skip(f"no uv here (hack/uv.sh: {uv.stderr.strip()[-300:]})")
    # hack/uv.sh installs uv as $CACHE_DIR/uv/<version>/bin/uv; hack/lock.sh caches in $CACHE_DIR/uv/cache.
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never",
           "UV_CACHE_DIR": str(Path(uv.stdout.strip()).parents[2] / "cache")}
    for name, extra in (("test.txt", ["--extra", "test"]), ("runtime.txt", ["-c", "requirements/test.txt"])):
        out = tmp_path / name
        out.write_text((REPO / "requirements" / name).read_text())
        result = subprocess.run(
            [uv.stdout.strip(), "pip", "compile", "-q", "--universal", "--python-version", "3.11", "--generate-hashes",
             "pyproject.toml", *extra, "-o", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        fresh, locked = read_lock(out), read_lock(REPO / "requirements" / name)
        assert {n: e.version for n, e in fresh.items()} == {n: e.version for n, e in locked.items()}, (
            f"requirements/{name} is not what pyproject.toml resolves to: run make lock")
