"""The Colonies wire protocol (pure: no I/O): signed request bodies, reply decoding, the payloads of the RPCs,
and the limits of what the server takes.

Every client (the operator's async one, the developer tools' sync one) builds its messages here, so a request
is the same bytes whatever sends it.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterable

from . import crypto
from .errors import error_for_status
from .models import FunctionSpec

NO_WORK_MESSAGE = "No process available for assignment"
LOG_NUL_REPLACEMENT = "\u2400"  # PostgreSQL rejects NUL in TEXT; show "␀" instead of failing the batch.
MAX_LOGS_PER_READ = 500  # the server refuses more
MAX_PROCESSES_PER_READ = 100
MAX_ERROR_BYTES = 4096  # one error of a failed process
MAX_ERRORS_BYTES = 16 * 1024  # all of them


# -- payloads: the messages of the RPCs ------------------------------------------------------------------------

def function_payload(colonyname: str, executorname: str, executortype: str, funcname: str, *,
                     description: str = "", args: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """addfunctionmsg. `args` documents the function's arguments: [{"name", "type", "description", "required",
    "enum"}]; `colonies function ls` shows the description and each argument as name(type), * if required."""
    fun: dict[str, Any] = {"colonyname": colonyname, "executorname": executorname, "executortype": executortype,
                           "funcname": funcname}
    if description:
        fun["description"] = description
    args = [dict(a) for a in args]
    if args:
        fun["args"] = args
    return {"fun": fun}


def update_capabilities_payload(colonyname: str, executorname: str, capabilities: dict[str, Any]) -> dict[str, Any]:
    """updateexecutormsg: replaces the executor's capabilities ({"hardware": [...], "software": [...]})."""
    return {"colonyname": colonyname, "executorname": executorname,
            "capabilities": {"hardware": list(capabilities.get("hardware") or []),
                             "software": list(capabilities.get("software") or [])}}


def executor_log_payload(colonyname: str, executorname: str, message: str) -> dict[str, Any]:
    """addexecutorlogmsg: a line in the executor's own log (not a process's)."""
    return {"colonyname": colonyname, "executorname": executorname,
            "message": message.replace("\x00", LOG_NUL_REPLACEMENT)}


def workflow_payload(colonyname: str, specs: Iterable[FunctionSpec | dict[str, Any]]) -> dict[str, Any]:
    """submitworkflowspecmsg. Each spec needs a unique `nodename`; `conditions.dependencies` names the parents."""
    functionspecs = []
    for spec in specs:
        spec_dict = spec.to_dict() if isinstance(spec, FunctionSpec) else FunctionSpec.from_dict(spec).to_dict()
        if not spec_dict.get("nodename"):
            raise ValueError("every function spec of a workflow needs a nodename, which dependencies refer to")
        functionspecs.append(spec_dict)
    return {"spec": {"colonyname": colonyname, "functionspecs": functionspecs}}


def assign_payload(colonyname: str, timeout: int, available_cpu: str = "", available_mem: str = "") -> dict[str, Any]:
    """assignprocessmsg: long-poll `timeout` seconds (negative: one immediate attempt; 0 is refused)."""
    if timeout == 0:
        raise ValueError("assign timeout 0 is refused by the server; use a positive number or -1")
    return {"colonyname": colonyname, "timeout": timeout, "availablecpu": available_cpu,
            "availablemem": available_mem}


def logs_payload(colonyname: str, processid: str, *, executorname: str = "", count: int = MAX_LOGS_PER_READ,
                 since: int = 0, latest: bool = False) -> dict[str, Any]:
    """getlogsmsg: up to `count` entries (of a process, or of an executor by name) newer than `since` (server
    nanoseconds), oldest first; with `latest`, the newest `count` entries (oldest first)."""
    return {"colonyname": colonyname, "processid": processid, "executorname": executorname,
            "count": min(count, MAX_LOGS_PER_READ), "since": since, "latest": latest}


def add_log_payload(processid: str, message: str) -> dict[str, Any]:
    """addlogmsg: NUL bytes, which PostgreSQL refuses, are shown as ␀."""
    return {"processid": processid, "message": message.replace("\x00", LOG_NUL_REPLACEMENT)}


def encode_request(msgtype: str, payload: dict[str, Any], prvkey: str) -> str:
    """The HTTP body of one signed RPC (the signature covers the base64 text; unsigned when no key)."""
    message = dict(payload, msgtype=msgtype)
    encoded = base64.b64encode(json.dumps(message, separators=(",", ":")).encode("utf-8")).decode("ascii")
    body = {"payloadtype": msgtype, "payload": encoded, "signature": crypto.sign(encoded, prvkey) if prvkey else ""}
    return json.dumps(body)


def decode_reply(status_code: int, text: str, msgtype: str) -> Any:
    """The reply's payload, or the typed error it carries."""
    try:
        # Some handlers write two error objects back to back; the first one is the real answer.
        envelope, _ = json.JSONDecoder().raw_decode(text.lstrip())
        payload = json.loads(base64.b64decode(envelope.get("payload") or "e30="))
    except (ValueError, AttributeError, TypeError) as err:
        snippet = text[:200].strip() or "(empty body)"
        raise error_for_status(status_code, f"unreadable reply: {snippet}", msgtype) from err
    if envelope.get("error") or status_code != 200:
        if isinstance(payload, dict):
            status, message = payload.get("status", status_code), payload.get("message", "")
        else:
            status, message = status_code, str(payload)
        raise error_for_status(int(status), str(message), msgtype)
    return payload


def bounded_errors(errors: list[str]) -> list[str]:
    """Errors Colonies stores: no NUL bytes (PostgreSQL refuses them), each and all capped."""
    result, total = [], 0
    for error in errors:
        text = error.replace("\x00", "\u2400")
        if len(text.encode()) > MAX_ERROR_BYTES:
            text = text.encode()[:MAX_ERROR_BYTES].decode("utf-8", "ignore") + " …(cut)"
        if total + len(text) > MAX_ERRORS_BYTES:
            break
        result.append(text)
        total += len(text)
    return result
