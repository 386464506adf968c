"""The Colonies client: signed RPCs over HTTP, typed models and errors."""

from . import crypto
from .client import ColoniesClient
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
    "AssignmentsPaused", "ColoniesClient", "ColoniesError", "ColoniesUnreachable", "Conditions", "Executor",
    "ExecutorState", "Forbidden", "Function", "FunctionSpec", "Gpu", "InvalidRequest", "LogEntry", "NotFound",
    "Process", "ProcessGraph", "ProcessState", "ServerError", "crypto",
]
