"""The docs against the code (no cluster): the README's troubleshooting table covers every condition reason and
failure reason the operator sets, its first screen says what the project is and shows the two commands, the pages
use one set of names, and their prose has lines a reader can read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from colonies_operator.core.conditions import kube_refusal_reason
from colonies_operator.core.names import FailureReason

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "colonies_operator"
DOCS = ["README.md", "charts/colonies-operator/README.md", "examples/README.md", "bench/README.md", "CHANGELOG.md",
        "hack/images/README.md"]


def _strings(node: ast.AST) -> list[str]:
    """The string constants an expression can be (a constant, or either branch of `a if c else b`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def condition_reasons() -> set[str]:
    """Every reason the operator gives a condition that is not True, read from its source: Problem(kind, reason,
    …), set_condition(kind, False, reason, …), PolicyViolation(reason, …), `reason = …` assignments they use, the
    (False, reason, …) tuples server_security returns, and kube_refusal_reason's answers."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name == "Problem" and len(node.args) > 1:
                    found.update(_strings(node.args[1]))
                elif name == "set_condition" and len(node.args) > 2 and \
                        isinstance(node.args[1], ast.Constant) and node.args[1].value is False:
                    found.update(_strings(node.args[2]))
                elif name == "PolicyViolation" and node.args:
                    found.update(_strings(node.args[0]))
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "reason" for t in node.targets):
                found.update(s for s in _strings(node.value) if re.fullmatch(r"[A-Z][A-Za-z]+", s))
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and node.value.elts and \
                    isinstance(node.value.elts[0], ast.Constant) and node.value.elts[0].value is False:
                found.update(_strings(node.value.elts[1]))
    found.update(kube_refusal_reason(status) for status in (None, 401, 403, 404, 422, 409, 500))
    return found


def troubleshooting() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]


def test_the_reason_scan_finds_the_reasons_of_every_kind():
    reasons = condition_reasons()
    assert {"KeySecretMissing", "Unreachable", "TLSError", "JobNamespaceNotAllowed", "NamespaceMissing", "Paused",
            "PlainHTTP", "InternalError", "CABundleMissing"} <= reasons
    assert len(reasons) >= 25


def test_the_troubleshooting_table_has_every_condition_reason_with_cause_and_fix():
    section = troubleshooting()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| \w+ \| `(\w+)` \| (.+) \|$", section, re.MULTILINE)}
    missing = condition_reasons() - set(rows)
    assert missing == set(), f"reasons the operator sets that Troubleshooting does not explain: {sorted(missing)}"
    for reason, rest in rows.items():
        cause, fix = rest.split(" | ")
        assert cause.strip() and fix.strip(), reason


def test_the_troubleshooting_table_has_every_failure_reason():
    section = troubleshooting()
    for reason in FailureReason:
        assert re.search(rf"^\| `{reason.value}` \| .+ \| .+ \|$", section, re.MULTILINE), reason.value


def test_the_first_screen_says_what_the_project_is_and_shows_the_two_commands():
    first = "\n".join((REPO / "README.md").read_text().splitlines()[:30])
    assert "turns a cluster into a [ColonyOS](https://colonyos.io) executor" in first
    assert "make demo" in first and "make test" in first
    assert "Kubernetes | 1.25 or newer" in first and "Colonies | servers v1.9" in first
    titles = re.findall(r"^## (.+)$", (REPO / "README.md").read_text(), re.MULTILINE)
    assert titles[:3] == ["On your cluster", "The ColonyOS tutorial, on this operator", "Troubleshooting"]


def test_on_your_cluster_goes_image_operator_key_executor_submit():
    text = (REPO / "README.md").read_text().split("## On your cluster", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^### \d\. (.+)$", text, re.MULTILINE)
    assert steps == ["The image", "The operator", "The executor's key", "A ColoniesExecutor", "Submit"]
    key = text.split("### 3.", 1)[1].split("### 4.", 1)[0]
    assert key.index("colonies-operator keygen") < key.index("colonyKeySecret" if "colonyKeySecret" in key
                                                              else "colonies-colony-key")
    assert "--namespace colonies --create-namespace" in text


# Names the pages used to give the same things; one set is used now (README, "On your cluster").
OLD_NAMES = ["k8s-executor", "k8s-gpu-executor", "colonies.example.internal", "REPLACE-WITH-", "{default}",
             "executor-preregistered"]


@pytest.mark.parametrize("page", DOCS + ["charts/colonies-operator/templates/NOTES.txt",
                                         "charts/colonies-operator/values.yaml", "examples/executor.yaml",
                                         "examples/executor-colony-key.yaml", "examples/executor-gpu.yaml"])
def test_the_pages_use_one_set_of_names(page):
    text = (REPO / page).read_text()
    assert [name for name in OLD_NAMES if name in text] == []


@pytest.mark.parametrize("page", DOCS)
def test_prose_lines_are_at_most_120_characters(page):
    long_lines = []
    in_code = False
    for number, line in enumerate((REPO / page).read_text().splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
        elif not line.startswith("|") and len(line) > 120 and not (in_code and page == "bench/README.md"):
            long_lines.append(number)
    assert long_lines == [], f"{page}: lines over 120 characters: {long_lines}"
