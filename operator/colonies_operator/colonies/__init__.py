"""Colonies, as the operator speaks it: the protocol's models, errors and keys (pure), the wire codec (wire.py)
and the operator's async client (client.py, imported by name: the package itself does no I/O)."""

from . import crypto
from .errors import (
    AssignmentsPaused,
    ColoniesError,
    ColoniesUnreachable,
    Forbidden,
    InvalidRequest,
    NotFound,
    ServerError,
)
from .models import (
    Conditions,
    Executor,
    ExecutorState,
    Function,
    FunctionSpec,
    Gpu,
    LogEntry,
    Process,
    ProcessGraph,
    ProcessState,
)

__all__ = [
    "AssignmentsPaused", "ColoniesError", "ColoniesUnreachable", "Conditions", "Executor",
    "ExecutorState", "Forbidden", "Function", "FunctionSpec", "Gpu", "InvalidRequest", "LogEntry", "NotFound",
    "Process", "ProcessGraph", "ProcessState", "ServerError", "crypto",
]
