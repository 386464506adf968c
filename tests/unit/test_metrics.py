"""The Prometheus metrics: each recording function moves its series, labels stay bounded."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from colonies_operator import __version__
from colonies_operator.engine import metrics
from colonies_operator.engine.metrics import OperatorMetrics

EXECUTOR = "team-a/cluster"


@pytest.fixture
def m() -> OperatorMetrics:
    return OperatorMetrics(CollectorRegistry())


def value(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_assigned_succeeded_and_active_count_per_executor(m):
    m.process_assigned(EXECUTOR)
    m.process_assigned(EXECUTOR)
    m.process_assigned("team-b/other")
    m.process_finished(EXECUTOR, "succeeded")
    m.set_active(EXECUTOR, 3)
    m.set_active(EXECUTOR, 1)
    assert value(m, "colonies_operator_processes_assigned_total", executor=EXECUTOR) == 2
    assert value(m, "colonies_operator_processes_assigned_total", executor="team-b/other") == 1
    assert value(m, "colonies_operator_processes_succeeded_total", executor=EXECUTOR) == 1
    assert value(m, "colonies_operator_active_processes", executor=EXECUTOR) == 1


@pytest.mark.parametrize("reason, label", [
    ("oom", "oom"), ("exit_code", "exit_code"), ("deadline", "deadline"), ("image_pull", "image_pull"),
    ("unschedulable", "unschedulable"), ("invalid", "invalid"), ("other", "other"),
    # Anything outside the fixed set is "other": a free-form reason must not create new series.
    ("OOMKilled", "other"), ("container x exited with code 3", "other"), (None, "other"),
])
def test_failures_are_counted_by_a_fixed_set_of_reasons(m, reason, label):
    m.process_finished(EXECUTOR, "failed", reason)
    assert value(m, "colonies_operator_processes_failed_total", executor=EXECUTOR, reason=label) == 1
    assert value(m, "colonies_operator_processes_succeeded_total", executor=EXECUTOR) is None


def test_job_create_latency_is_a_histogram(m):
    m.job_created(0.03)
    m.job_created(0.2)
    m.job_created(12.0)
    assert value(m, "colonies_operator_job_create_seconds_count") == 3
    assert value(m, "colonies_operator_job_create_seconds_sum") == pytest.approx(12.23)
    assert value(m, "colonies_operator_job_create_seconds_bucket", le="0.05") == 1
    assert value(m, "colonies_operator_job_create_seconds_bucket", le="0.25") == 2
    assert value(m, "colonies_operator_job_create_seconds_bucket", le="+Inf") == 3


def test_log_lines_and_bytes_add_up(m):
    m.log_shipped(10, 420)
    m.log_shipped(1, 5)
    assert value(m, "colonies_operator_log_lines_shipped_total") == 11
    assert value(m, "colonies_operator_log_bytes_shipped_total") == 425


@pytest.mark.parametrize("rpc, status, labels", [
    ("assignprocessmsg", 500, ("assignprocessmsg", "5xx")),
    ("closefailedmsg", 403, ("closefailedmsg", "4xx")),
    ("addlogmsg", None, ("addlogmsg", "unreachable")),
    ("versionmsg", 302, ("versionmsg", "other")),
    ("Not A Message Type!", 400, ("other", "4xx")),
])
def test_rpc_errors_by_message_type_and_status_class(m, rpc, status, labels):
    m.rpc_error(rpc, status)
    assert value(m, "colonies_operator_colonies_rpc_errors_total", rpc=labels[0], status=labels[1]) == 1


def test_forgetting_an_executor_drops_its_series(m):
    m.process_assigned(EXECUTOR)
    m.process_finished(EXECUTOR, "failed", "oom")
    m.set_active(EXECUTOR, 2)
    m.forget_executor(EXECUTOR)
    m.forget_executor("never/seen")
    text = generate_latest(m.registry).decode()
    assert EXECUTOR not in text


def test_the_exposition_has_help_for_every_family_and_the_version(m):
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(m.registry).decode())}
    for name in ("colonies_operator_processes_assigned", "colonies_operator_processes_succeeded",
                 "colonies_operator_processes_failed", "colonies_operator_active_processes",
                 "colonies_operator_job_create_seconds", "colonies_operator_log_lines_shipped",
                 "colonies_operator_log_bytes_shipped", "colonies_operator_colonies_rpc_errors",
                 "colonies_operator_build_info"):
        assert name in families and families[name].documentation, name
    assert not [name for name in families if name.endswith("_created")]
    info = families["colonies_operator_build_info"].samples[0]
    assert info.labels == {"version": __version__}


def test_module_functions_record_into_the_default_registry():
    before = REGISTRY.get_sample_value("colonies_operator_processes_assigned_total",
                                       {"executor": "unit/module"}) or 0
    metrics.process_assigned(metrics.executor_label("unit", "module"))
    metrics.process_finished("unit/module", "failed", "deadline")
    metrics.set_active("unit/module", 4)
    metrics.job_created(0.1)
    metrics.log_shipped(2, 20)
    metrics.rpc_error("addlogmsg", 503)
    assert REGISTRY.get_sample_value("colonies_operator_processes_assigned_total",
                                     {"executor": "unit/module"}) == before + 1
    assert REGISTRY.get_sample_value("colonies_operator_processes_failed_total",
                                     {"executor": "unit/module", "reason": "deadline"}) >= 1
    assert REGISTRY.get_sample_value("colonies_operator_active_processes", {"executor": "unit/module"}) == 4
    metrics.forget_executor("unit/module")
    assert REGISTRY.get_sample_value("colonies_operator_active_processes", {"executor": "unit/module"}) is None


def test_the_server_serves_the_metrics_on_loopback():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = metrics.start_server(port, "127.0.0.1")
    try:
        metrics.process_assigned("unit/server")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()
        server.server_close()
        metrics.forget_executor("unit/server")
    assert 'colonies_operator_processes_assigned_total{executor="unit/server"} 1.0' in body
    assert "process_resident_memory_bytes" in body  # prometheus_client's process collector
