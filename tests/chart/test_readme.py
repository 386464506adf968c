"""The chart README's Values and Metrics tables against values.yaml and the metrics the operator exports (no
cluster). tests/chart/readme_tables.py generates them; these tests fail while the README differs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from colonies_operator.core.names import FailureReason
from colonies_operator.engine.metrics import OperatorMetrics
from tests.chart.readme_tables import README, metrics_rows, rendered, values_rows


def test_the_tables_are_what_values_yaml_and_the_code_say():
    text = README.read_text()
    assert text == rendered(text), "the chart README's tables are out of date: python -m tests.chart.readme_tables"


def test_the_metrics_table_names_every_metric_the_operator_exports_and_every_failure_reason():
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    for reason in FailureReason:
        metrics.process_finished("ns/name", "failed", reason)
    exported = {line.split()[2] for line in generate_latest(registry).decode().splitlines()
                if line.startswith("# TYPE ")}
    readme = README.read_text()
    for family in exported:
        assert any(row[0] in (family, family + "_total", family + "_info") for row in metrics_rows()), family
        assert f"`{family}" in readme, f"{family} is not in the chart README"
    for reason in FailureReason:
        assert f"`{reason.value}`" in readme, reason


def test_every_value_the_chart_describes_is_in_the_values_table():
    readme = README.read_text()
    rows = values_rows()
    assert len(rows) > 40
    for path, _default, what in rows:
        assert f"| `{path}` |" in readme and what, path
