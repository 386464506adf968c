"""The chart's schema for `executors[].spec`, derived from the CRD so the two never disagree.

    python -m tests.chart.crd_schema     # rewrites definitions.executorSpec in the chart's values.schema.json

tests/chart/test_chart.py fails when the chart's copy differs from what this derives from crds/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "coloniesexecutor.yaml"
SCHEMA_PATH = REPO / "charts" / "colonies-operator" / "values.schema.json"
# JSON Schema keywords that mean the same in a CRD's OpenAPI v3 schema; the rest (default, x-kubernetes-*,
# nullable, format) are left to the API server.
KEPT = ("type", "description", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems",
        "maxItems", "required")


def json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI v3 node as JSON Schema: objects with listed properties are closed (a misspelt key is an
    error, where the API server would silently drop it), except where the CRD keeps unknown fields."""
    out = {key: node[key] for key in KEPT if key in node}
    if "properties" in node:
        out["properties"] = {name: json_schema(child) for name, child in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = json_schema(node["items"])
    return out


def executor_spec_schema(crd_path: Path = CRD_PATH) -> dict[str, Any]:
    crd = yaml.safe_load(crd_path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return json_schema(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def main() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["definitions"]["executorSpec"] = executor_spec_schema()
    SCHEMA_PATH.write_text(json.dumps(schema, indent=2) + "\n")
    print(f"updated definitions.executorSpec in {SCHEMA_PATH.relative_to(REPO)}")


if __name__ == "__main__":
    main()
