"""Typed errors of the Colonies client. "No work" on assign is not an error: assign returns None."""

from __future__ import annotations


class ColoniesError(Exception):
    """A request the server refused, or that never reached it. `status` is the server's code, if any."""

    def __init__(self, message: str, *, status: int | None = None, rpc: str = "") -> None:
        self.message = message
        self.status = status
        self.rpc = rpc
        where = f"{rpc}: " if rpc else ""
        code = f"{status} " if status is not None else ""
        super().__init__(f"{where}{code}{message}")


class ColoniesUnreachable(ColoniesError):
    """The server could not be reached (connection refused, DNS, TLS, timeout)."""


class InvalidRequest(ColoniesError):
    """400: malformed message or an invalid state transition (e.g. closing a cancelled process)."""


class Forbidden(ColoniesError):
    """403: bad signature, not a member, or not the executor the process is assigned to."""


class NotFound(ColoniesError):
    """404: the process (or other object) does not exist."""


class AssignmentsPaused(ColoniesError):
    """408/503: the colony's assignments are paused."""


class ServerError(ColoniesError):
    """500 and anything else: the server failed (also used for unknown process ids on close/addlog)."""


_BY_STATUS: dict[int, type[ColoniesError]] = {
    400: InvalidRequest,
    403: Forbidden,
    404: NotFound,
    408: AssignmentsPaused,
    503: AssignmentsPaused,
}


def error_for_status(status: int, message: str, rpc: str) -> ColoniesError:
    """The typed error for a server reply with this status."""
    return _BY_STATUS.get(status, ServerError)(message, status=status, rpc=rpc)
