"""Prometheus metrics of the operator, served by `colonies-operator run --metrics-port`.

Label sets are bounded: `executor` is "namespace/name" of a ColoniesExecutor (drop its series with
`forget_executor` when the resource goes), `reason` is one of REASONS, `rpc` a Colonies message type and
`status` a status class. The module-level functions record into the default registry, which also holds
prometheus_client's process metrics (memory, CPU, open files); `OperatorMetrics(registry)` gives tests a
private one.
"""

from __future__ import annotations

import re

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from .. import __version__
from ..core.names import FailureReason

NAMESPACE = "colonies_operator"
SUCCEEDED, FAILED = "succeeded", "failed"
REASONS = tuple(reason.value for reason in FailureReason)
KUBE_VERBS = ("get", "list", "watch", "post", "put", "patch", "delete")
STATUS_CLASSES = ("4xx", "5xx", "unreachable", "other")
# From a fast create (admission only) to a slow API server under load (the SLO is 1 s at p99).
JOB_CREATE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RPC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# No "<name>_created" series next to every counter and histogram: noise for this operator's dashboards.
prometheus_client.disable_created_metrics()


def status_class(status: int | None) -> str:
    """4xx, 5xx, unreachable (no reply at all) or other."""
    if status is None:
        return "unreachable"
    if 400 <= status < 500:
        return "4xx"
    if 500 <= status < 600:
        return "5xx"
    return "other"


def _reason(reason: str | None) -> str:
    value = getattr(reason, "value", reason)  # a FailureReason, or its value
    return value if value in REASONS else "other"


def _rpc(rpc: str) -> str:
    return rpc if _RPC_NAME.match(rpc or "") else "other"


class OperatorMetrics:
    """The operator's metrics, registered in `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        kwargs = {"namespace": NAMESPACE, "registry": registry}
        self.info = Info("build", "The operator's version.", **kwargs)
        self.info.info({"version": __version__})
        self.assigned = Counter("processes_assigned", "Processes Colonies assigned to an executor.",
                                ["executor"], **kwargs)
        self.succeeded = Counter("processes_succeeded", "Processes closed as successful.", ["executor"], **kwargs)
        self.failed = Counter("processes_failed", "Processes closed as failed, by reason.",
                              ["executor", "reason"], **kwargs)
        self.active = Gauge("active_processes", "Processes running now as Jobs.", ["executor"], **kwargs)
        self.job_create = Histogram("job_create_seconds", "Time the API server took to create a Job.",
                                    buckets=JOB_CREATE_BUCKETS, **kwargs)
        self.log_lines = Counter("log_lines_shipped", "Log lines sent to Colonies.", **kwargs)
        self.log_bytes = Counter("log_bytes_shipped", "Log bytes sent to Colonies.", **kwargs)
        self.rpcs = Counter("colonies_rpcs", "Colonies RPCs the operator made, by message type.", ["rpc"], **kwargs)
        self.kube_requests = Counter("kube_requests", "Kubernetes API requests the operator made (a watch or a log "
                                     "stream counts once, when opened).", ["verb", "resource"], **kwargs)
        self.rpc_errors = Counter("colonies_rpc_errors", "Colonies RPCs that failed, by message type and status "
                                  "class (unreachable: no reply).", ["rpc", "status"], **kwargs)
        self.leader = Gauge("leader", "1 while this instance holds the leader Lease and does the work; 0 while it "
                            "stands by and does nothing.", **kwargs)

    def process_assigned(self, executor: str) -> None:
        self.assigned.labels(executor).inc()

    def process_finished(self, executor: str, outcome: str, reason: str | None = None) -> None:
        """`outcome` is "succeeded" or "failed"; `reason` (failed only) one of REASONS, else "other"."""
        if outcome == SUCCEEDED:
            self.succeeded.labels(executor).inc()
        else:
            self.failed.labels(executor, _reason(reason)).inc()

    def set_active(self, executor: str, n: int) -> None:
        self.active.labels(executor).set(n)

    def job_created(self, seconds: float) -> None:
        self.job_create.observe(seconds)

    def log_shipped(self, lines: int, nbytes: int) -> None:
        self.log_lines.inc(lines)
        self.log_bytes.inc(nbytes)

    def rpc_error(self, rpc: str, status: int | None) -> None:
        self.rpc_errors.labels(_rpc(rpc), status_class(status)).inc()

    def colonies_rpc(self, rpc: str, failed_status: int | None) -> None:
        """One RPC made; `failed_status` is None when it worked, else the status (0: no reply)."""
        self.rpcs.labels(_rpc(rpc)).inc()
        if failed_status is not None:
            self.rpc_error(rpc, failed_status or None)

    def kube_request(self, verb: str, resource: str) -> None:
        self.kube_requests.labels(verb if verb in KUBE_VERBS else "other", _rpc(resource.replace("/", "_"))).inc()

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def forget_executor(self, executor: str) -> None:
        """Removes the executor's series (call when its ColoniesExecutor is deleted)."""
        for metric in (self.assigned, self.succeeded, self.active):
            try:
                metric.remove(executor)
            except KeyError:
                pass
        for reason in REASONS:
            try:
                self.failed.remove(executor, reason)
            except KeyError:
                pass


DEFAULT = OperatorMetrics(prometheus_client.REGISTRY)


def executor_label(namespace: str, name: str) -> str:
    """The `executor` label of a ColoniesExecutor."""
    return f"{namespace}/{name}"


def process_assigned(executor: str) -> None:
    DEFAULT.process_assigned(executor)


def process_finished(executor: str, outcome: str, reason: str | None = None) -> None:
    DEFAULT.process_finished(executor, outcome, reason)


def set_active(executor: str, n: int) -> None:
    DEFAULT.set_active(executor, n)


def job_created(seconds: float) -> None:
    DEFAULT.job_created(seconds)


def log_shipped(lines: int, nbytes: int) -> None:
    DEFAULT.log_shipped(lines, nbytes)


def rpc_error(rpc: str, status: int | None) -> None:
    DEFAULT.rpc_error(rpc, status)


def colonies_rpc(rpc: str, failed_status: int | None) -> None:
    DEFAULT.colonies_rpc(rpc, failed_status)


def kube_request(verb: str, resource: str) -> None:
    DEFAULT.kube_request(verb, resource)


def forget_executor(executor: str) -> None:
    DEFAULT.forget_executor(executor)


def set_leader(leading: bool) -> None:
    DEFAULT.set_leader(leading)


def start_server(port: int, addr: str = "0.0.0.0"):
    """Serves the metrics on addr:port (at /metrics, or any path) from a daemon thread; returns the server."""
    server, _thread = prometheus_client.start_http_server(port, addr=addr, registry=DEFAULT.registry)
    return server
