"""A synchronous, thread-safe Colonies client (requests + coincurve).

Why synchronous and thread-safe rather than asyncio: the operator's blocking work (long-poll assign, the
Kubernetes client, pod log streams) all runs in worker threads (kopf runs sync daemons in threads, and log
followers get their own), so kopf's event loop never blocks. The Kubernetes Python client the operator
uses is synchronous as well, so one concurrency model serves both. Each thread gets its own
`requests.Session` (sessions are not documented as thread-safe), so many Jobs can ship logs at once
over kept-alive connections.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Callable, Iterable

import requests

from . import crypto
from .address import server_url
from .errors import ColoniesError, ColoniesUnreachable, error_for_status
from .models import Executor, Function, FunctionSpec, LogEntry, Process, ProcessGraph

NO_WORK_MESSAGE = "No process available for assignment"
LOG_NUL_REPLACEMENT = "\u2400"  # PostgreSQL rejects NUL in TEXT; show "␀" instead of failing the batch.
MAX_LOGS_PER_READ = 500  # the server refuses more
MAX_PROCESSES_PER_READ = 100


# -- payloads (pure): the messages of the RPCs below, shared with any other transport -----------------------

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


class ColoniesClient:
    """One Colonies server. Every call takes the private key that signs it."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        ca_bundle: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        on_error: Callable[[str, int | None], None] | None = None,
    ) -> None:
        # Built from checked parts: a host with a path or query in it is refused, not posted to.
        self.url = server_url(host, port, tls, "/api")
        self.health_url = server_url(host, port, tls, "/health")
        # requests wants a path to a CA file, or True for the system store.
        self.verify: bool | str = ca_bundle if (tls and ca_bundle) else True
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._local = threading.local()
        self._on_error = on_error  # told of every failed RPC (rpc name, status or None): for metrics

    def __repr__(self) -> str:
        return f"ColoniesClient({self.url!r})"

    # -- transport ------------------------------------------------------------------------------

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def close(self) -> None:
        """Closes this thread's connections."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def rpc(self, msgtype: str, payload: dict[str, Any], prvkey: str, *, read_timeout: float | None = None) -> Any:
        """Sends one signed message and returns the decoded reply payload, or raises a typed error."""
        try:
            return self._rpc(msgtype, payload, prvkey, read_timeout)
        except ColoniesError as err:
            no_work = msgtype == "assignprocessmsg" and err.status == 404
            if self._on_error and not no_work:
                self._on_error(msgtype, err.status)
            raise

    def _rpc(self, msgtype: str, payload: dict[str, Any], prvkey: str, read_timeout: float | None) -> Any:
        timeout = (self.connect_timeout, read_timeout or self.read_timeout)
        try:
            reply = self._session.post(self.url, data=encode_request(msgtype, payload, prvkey), timeout=timeout,
                                       verify=self.verify)
        except requests.exceptions.SSLError as err:
            raise ColoniesUnreachable(f"TLS handshake with {self.url} failed: {err}", rpc=msgtype) from err
        except requests.exceptions.RequestException as err:
            raise ColoniesUnreachable(f"cannot reach {self.url}: {err}", rpc=msgtype) from err
        return decode_reply(reply.status_code, reply.text, msgtype)

    def health(self) -> bool:
        """True when the server answers its health endpoint."""
        try:
            return self._session.get(self.health_url, timeout=(self.connect_timeout, 5), verify=self.verify).ok
        except requests.exceptions.RequestException:
            return False

    # -- server, colony and users -----------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self.rpc("versionmsg", {}, "")

    def add_colony(self, colony_id: str, name: str, server_prvkey: str) -> dict[str, Any]:
        return self.rpc("addcolonymsg", {"colony": {"colonyid": colony_id, "name": name}}, server_prvkey)

    def add_user(self, colonyname: str, userid: str, name: str, colony_prvkey: str, *, email: str = "") -> dict:
        user = {"colonyname": colonyname, "userid": userid, "name": name, "email": email, "phone": ""}
        return self.rpc("addusermsg", {"user": user}, colony_prvkey)

    def colony_stats(self, colonyname: str, prvkey: str) -> dict[str, Any]:
        return self.rpc("getcolonystatsmsg", {"colonyname": colonyname}, prvkey)

    # -- executors and functions --------------------------------------------------------------------

    def add_executor(self, executor: Executor, colony_prvkey: str) -> Executor:
        return Executor.from_dict(self.rpc("addexecutormsg", {"executor": executor.to_dict()}, colony_prvkey))

    def approve_executor(self, colonyname: str, executorname: str, colony_prvkey: str) -> None:
        self.rpc("approveexecutormsg", {"colonyname": colonyname, "executorname": executorname}, colony_prvkey)

    def remove_executor(self, colonyname: str, executorname: str, colony_prvkey: str) -> None:
        self.rpc("removeexecutormsg", {"colonyname": colonyname, "executorname": executorname}, colony_prvkey)

    def get_executor(self, colonyname: str, executorname: str, prvkey: str) -> Executor:
        reply = self.rpc("getexecutormsg", {"colonyname": colonyname, "executorname": executorname}, prvkey)
        return Executor.from_dict(reply)

    def get_executors(self, colonyname: str, prvkey: str) -> list[Executor]:
        return [Executor.from_dict(e) for e in self.rpc("getexecutorsmsg", {"colonyname": colonyname}, prvkey) or []]

    def update_capabilities(self, colonyname: str, executorname: str, capabilities: dict[str, Any],
                            prvkey: str) -> None:
        """Replaces the executor's capabilities; signed by the executor itself (approved or not)."""
        self.rpc("updateexecutormsg", update_capabilities_payload(colonyname, executorname, capabilities), prvkey)

    def add_function(self, colonyname: str, executorname: str, executortype: str, funcname: str, prvkey: str, *,
                     description: str = "", args: Iterable[dict[str, Any]] = ()) -> Function:
        """Registers a function (not idempotent: the server adds a row per call)."""
        payload = function_payload(colonyname, executorname, executortype, funcname, description=description,
                                   args=args)
        return Function.from_dict(self.rpc("addfunctionmsg", payload, prvkey))

    def remove_function(self, functionid: str, prvkey: str) -> None:
        self.rpc("removefunctionmsg", {"functionid": functionid}, prvkey)

    def get_functions(self, colonyname: str, executorname: str, prvkey: str) -> list[Function]:
        reply = self.rpc("getfunctionsmsg", {"colonyname": colonyname, "executorname": executorname}, prvkey)
        return [Function.from_dict(f) for f in reply or []]

    def add_executor_log(self, colonyname: str, executorname: str, message: str, prvkey: str) -> None:
        """Adds a line to the executor's own log, which colony members read with get_executor_logs."""
        self.rpc("addexecutorlogmsg", executor_log_payload(colonyname, executorname, message), prvkey)

    def get_executor_logs(self, colonyname: str, executorname: str, prvkey: str, *, count: int = MAX_LOGS_PER_READ,
                          since: int = 0) -> list[LogEntry]:
        """Up to `count` entries of an executor's logs newer than `since`, oldest first: its own log and the
        logs it added to processes."""
        payload = {"colonyname": colonyname, "processid": "", "executorname": executorname,
                   "count": min(count, MAX_LOGS_PER_READ), "since": since, "latest": False}
        return [LogEntry.from_dict(e) for e in self.rpc("getlogsmsg", payload, prvkey) or []]

    # -- colony-wide switches -------------------------------------------------------------------------

    def pause_assignments(self, colonyname: str, colony_prvkey: str) -> None:
        """Colony owner: no process is assigned until resume_assignments (assign answers 408 or 503)."""
        self.rpc("pauseassignmentsmsg", {"colonyname": colonyname}, colony_prvkey)

    def resume_assignments(self, colonyname: str, colony_prvkey: str) -> None:
        self.rpc("resumeassignmentsmsg", {"colonyname": colonyname}, colony_prvkey)

    def assignments_paused(self, colonyname: str, prvkey: str) -> bool:
        return bool(self.rpc("getpausestatusmsg", {"colonyname": colonyname}, prvkey).get("ispaused"))

    # -- submitting and reading processes -----------------------------------------------------------

    def submit(self, spec: FunctionSpec | dict[str, Any], prvkey: str) -> Process:
        """Submits a function spec. Refuses maxexectime 0, which the server treats as an expired deadline."""
        spec_dict = spec.to_dict() if isinstance(spec, FunctionSpec) else FunctionSpec.from_dict(spec).to_dict()
        if spec_dict.get("maxexectime") == 0:
            raise ValueError("maxexectime 0 makes the server fail or re-queue the process within a second; "
                             "use -1 for no limit or a positive number of seconds")
        return Process.from_dict(self.rpc("submitfuncspecmsg", {"spec": spec_dict}, prvkey))

    def submit_workflow(self, colonyname: str, specs: Iterable[FunctionSpec | dict[str, Any]],
                        prvkey: str) -> ProcessGraph:
        """Submits a workflow: a process per spec; a child waits for its parents (conditions.dependencies, by
        nodename) and gets their outputs as its input (`in`) when it is assigned."""
        return ProcessGraph.from_dict(self.rpc("submitworkflowspecmsg", workflow_payload(colonyname, specs), prvkey))

    def get_process_graph(self, processgraphid: str, prvkey: str) -> ProcessGraph:
        return ProcessGraph.from_dict(self.rpc("getprocessgraphmsg", {"processgraphid": processgraphid}, prvkey))

    def get_process(self, processid: str, prvkey: str) -> Process:
        return Process.from_dict(self.rpc("getprocessmsg", {"processid": processid}, prvkey))

    def get_processes(self, colonyname: str, state: int, prvkey: str, *, count: int = MAX_PROCESSES_PER_READ,
                      executortype: str = "") -> list[Process]:
        payload = {"colonyname": colonyname, "state": int(state), "count": min(count, MAX_PROCESSES_PER_READ),
                   "executortype": executortype}
        return [Process.from_dict(p) for p in self.rpc("getprocessesmsg", payload, prvkey) or []]

    def cancel(self, processid: str, prvkey: str) -> None:
        self.rpc("cancelprocessmsg", {"processid": processid}, prvkey)

    def get_logs(self, colonyname: str, processid: str, prvkey: str, *, count: int = MAX_LOGS_PER_READ,
                 since: int = 0) -> list[LogEntry]:
        """Up to `count` log entries newer than `since` (server nanoseconds), oldest first."""
        payload = {"colonyname": colonyname, "processid": processid, "executorname": "",
                   "count": min(count, MAX_LOGS_PER_READ), "since": since, "latest": False}
        return [LogEntry.from_dict(e) for e in self.rpc("getlogsmsg", payload, prvkey) or []]

    def all_logs(self, colonyname: str, processid: str, prvkey: str) -> list[LogEntry]:
        """Every log entry of a process, oldest first (pages through the server's 500-entry limit)."""
        entries: list[LogEntry] = []
        since = 0
        while True:
            page = self.get_logs(colonyname, processid, prvkey, since=since)
            entries.extend(page)
            if len(page) < MAX_LOGS_PER_READ:
                return entries
            since = page[-1].timestamp

    # -- executing ------------------------------------------------------------------------------------

    def assign(self, colonyname: str, timeout: int, prvkey: str, *, available_cpu: str = "",
               available_mem: str = "") -> Process | None:
        """Long-polls up to `timeout` seconds (negative: one immediate attempt); None when there is no work."""
        if timeout == 0:
            raise ValueError("assign timeout 0 is refused by the server; use a positive number or -1")
        payload = {"colonyname": colonyname, "timeout": timeout, "availablecpu": available_cpu,
                   "availablemem": available_mem}
        try:
            reply = self.rpc("assignprocessmsg", payload, prvkey, read_timeout=max(timeout, 0) + self.read_timeout)
        except ColoniesError as err:
            if err.status == 404:
                return None
            raise
        return Process.from_dict(reply)

    def add_log(self, processid: str, message: str, prvkey: str) -> None:
        self.rpc("addlogmsg", {"processid": processid, "message": message.replace("\x00", LOG_NUL_REPLACEMENT)}, prvkey)

    def set_output(self, processid: str, output: Iterable[Any], prvkey: str) -> None:
        self.rpc("setoutputmsg", {"processid": processid, "out": list(output)}, prvkey)

    def close_successful(self, processid: str, prvkey: str, output: Iterable[Any] = ()) -> None:
        self.rpc("closesuccessfulmsg", {"processid": processid, "out": list(output)}, prvkey)

    def close_failed(self, processid: str, errors: Iterable[str], prvkey: str) -> None:
        self.rpc("closefailedmsg", {"processid": processid, "errors": list(errors)}, prvkey)


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
