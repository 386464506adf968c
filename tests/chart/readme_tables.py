"""The chart README's Values and Metrics tables, generated from values.yaml (its `# --` comments and defaults) and
from the metrics the operator registers (engine/metrics.py). `python -m tests.chart.readme_tables` rewrites them in
charts/colonies-operator/README.md; tests/chart/test_readme.py fails while they differ."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from colonies_operator.engine.metrics import KUBE_VERBS, REASONS, STATUS_CLASSES, OperatorMetrics

CHART = Path(__file__).resolve().parents[2] / "charts" / "colonies-operator"
README = CHART / "README.md"
VALUES_BEGIN = "<!-- values: generated from values.yaml by python -m tests.chart.readme_tables -->"
VALUES_END = "<!-- end of values -->"
METRICS_BEGIN = "<!-- metrics: generated from the operator's metrics by python -m tests.chart.readme_tables -->"
METRICS_END = "<!-- end of metrics -->"

# What each label's values are. A new label needs a line here (the generator refuses an undescribed one).
LABELS = {
    "executor": "the ColoniesExecutor, `namespace/name`",
    "reason": ", ".join(f"`{r}`" for r in REASONS),
    "rpc": "the Colonies message type (`assign`, `close`, …)",
    "status": ", ".join(f"`{s}`" for s in STATUS_CLASSES),
    "verb": ", ".join(f"`{v}`" for v in (*KUBE_VERBS, "other")),
    "resource": "the API resource (`jobs`, `pods`, `pods_log`, …)",
    "version": "the operator's version",
}
EXPOSED_SUFFIX = {"counter": "_total", "info": "_info"}


def _resolved(schema: dict[str, Any], node: dict[str, Any] | None) -> dict[str, Any]:
    if node is None:
        return {}
    return schema["definitions"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node


def _description(comments: list[str]) -> str:
    """The `# -- ` comment block of a value as one line, without its indented example."""
    text: list[str] = []
    started = False
    for line in comments:
        body = line.strip().removeprefix("#")
        if body.startswith(" -- "):
            started, text = True, [body[4:].strip()]
        elif started and body.startswith("   "):
            break  # an indented example follows
        elif started:
            text.append(body.strip())
    sentence = " ".join(text).removesuffix(", e.g.:").removesuffix(":").strip()
    return sentence if sentence.endswith((".", ")")) else f"{sentence}."


def _default(value: Any) -> str:
    if value == "":
        return '`""`'
    return f"`{json.dumps(value, separators=(', ', ': '))}`"


def values_rows() -> list[tuple[str, str, str]]:
    """(path, default, description) of every value values.yaml describes with a `# -- ` comment, in its order."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    stack: list[tuple[int, str, dict[str, Any]]] = [(-1, "", schema)]
    comments: list[str] = []
    rows = []
    for line in (CHART / "values.yaml").read_text().splitlines():
        if line.lstrip().startswith("#"):
            comments.append(line)
            continue
        match = re.match(r"^( *)([A-Za-z][\w.-]*):(.*)$", line)
        if match:
            indent, key = len(match.group(1)), match.group(2)
            while stack[-1][0] >= indent:
                stack.pop()
            parent_path, parent = stack[-1][1], stack[-1][2]
            node = _resolved(schema, (parent.get("properties") or {}).get(key))
            path = f"{parent_path}.{key}" if parent_path else key
            stack.append((indent, path, node))
            if node and any(c.lstrip().startswith("# -- ") for c in comments):
                value: Any = values
                for part in path.split("."):
                    value = value[part]
                rows.append((path, _default(value), _description(comments)))
        comments = []
    return rows


def values_table() -> str:
    lines = ["| value | default | what |", "| --- | --- | --- |"]
    lines += [f"| `{path}` | {default} | {what} |" for path, default, what in values_rows()]
    return "\n".join(lines)


def metrics_rows() -> list[tuple[str, str, str, str]]:
    """(exposed name, type, labels, help) of every metric the operator registers."""
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    label_names = {m._name: m._labelnames for m in vars(metrics).values() if hasattr(m, "_labelnames")}
    rows = []
    for family in registry.collect():
        names = label_names[family.name] if family.type != "info" else \
            tuple(dict.fromkeys(k for s in family.samples for k in s.labels))
        missing = [n for n in names if n not in LABELS]
        if missing:
            raise SystemExit(f"describe the label(s) {missing} of {family.name} in LABELS of {__file__}")
        labels = "; ".join(f"`{n}`: {LABELS[n]}" for n in names)
        rows.append((family.name + EXPOSED_SUFFIX.get(family.type, ""), "gauge" if family.type == "info"
                     else family.type, labels, family.documentation))
    return rows


def metrics_table() -> str:
    lines = ["| metric | type | labels | what |", "| --- | --- | --- | --- |"]
    lines += [f"| `{name}` | {kind} | {labels} | {what} |" for name, kind, labels, what in metrics_rows()]
    return "\n".join(lines)


def _replace(text: str, begin: str, end: str, table: str) -> str:
    if begin not in text or end not in text:
        raise SystemExit(f"{README} lacks the markers {begin!r} … {end!r}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def rendered(text: str) -> str:
    """The README text with both tables as the code and values.yaml say now."""
    text = _replace(text, VALUES_BEGIN, VALUES_END, values_table())
    return _replace(text, METRICS_BEGIN, METRICS_END, metrics_table())


if __name__ == "__main__":
    README.write_text(rendered(README.read_text()))
    print(f"rewrote the values and metrics tables of {README}")
