"""A synchronous Colonies client (requests), for the tests, the benchmarks and the dev environment.

The operator itself speaks to Colonies with its async client (colonies_operator.colonies.client); this one
serves code that runs in threads or scripts: setting up colonies, submitting processes and reading them back. Both
build their messages with the same wire codec. Each thread gets its own `requests.Session` (sessions are not
documented as thread-safe), so many threads can share one client.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

import requests

from colonies_operator.colonies import ColoniesError, ColoniesUnreachable
from colonies_operator.colonies.address import server_url
from colonies_operator.colonies.models import Executor, Function, FunctionSpec, LogEntry, Process, ProcessGraph
from colonies_operator.colonies.wire import (
    MAX_LOGS_PER_READ,
    MAX_PROCESSES_PER_READ,
    add_log_payload,
    assign_payload,
    decode_reply,
    encode_request,
    executor_log_payload,
    function_payload,
    logs_payload,
    update_capabilities_payload,
    workflow_payload,
)


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
        payload = logs_payload(colonyname, "", executorname=executorname, count=count, since=since)
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
        payload = logs_payload(colonyname, processid, count=count, since=since)
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
        payload = assign_payload(colonyname, timeout, available_cpu, available_mem)
        try:
            reply = self.rpc("assignprocessmsg", payload, prvkey, read_timeout=max(timeout, 0) + self.read_timeout)
        except ColoniesError as err:
            if err.status == 404:
                return None
            raise
        return Process.from_dict(reply)

    def add_log(self, processid: str, message: str, prvkey: str) -> None:
        self.rpc("addlogmsg", add_log_payload(processid, message), prvkey)

    def set_output(self, processid: str, output: Iterable[Any], prvkey: str) -> None:
        self.rpc("setoutputmsg", {"processid": processid, "out": list(output)}, prvkey)

    def close_successful(self, processid: str, prvkey: str, output: Iterable[Any] = ()) -> None:
        self.rpc("closesuccessfulmsg", {"processid": processid, "out": list(output)}, prvkey)

    def close_failed(self, processid: str, errors: Iterable[str], prvkey: str) -> None:
        self.rpc("closefailedmsg", {"processid": processid, "errors": list(errors)}, prvkey)
