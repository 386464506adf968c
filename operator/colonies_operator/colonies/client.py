"""The Colonies client of the operator, for its event loop (aiohttp).

A long-poll assign, a close or a log batch is a coroutine, so one loop serves any number of executors and
processes without a thread each. Messages are encoded and replies decoded by wire.py.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Callable, Iterable

import aiohttp

from .wire import (
    MAX_LOGS_PER_READ,
    add_log_payload,
    assign_payload,
    decode_reply,
    encode_request,
    executor_log_payload,
    logs_payload,
    update_capabilities_payload,
)
from .errors import ColoniesError, ColoniesUnreachable
from .models import Executor, Function, LogEntry, Process

# getprocesshistmsg returns every process of the executor in a state, started within `seconds`: ten years.
HISTORY_SECONDS = 10 * 366 * 24 * 3600


class AsyncColoniesClient:
    """One Colonies server, from coroutines. Every call takes the private key that signs it."""

    def __init__(self, url: str, *, ca_bundle: str | None = None, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, on_rpc: Callable[[str, int | None], None] | None = None) -> None:
        self.url, self.ca_bundle = url, ca_bundle
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._on_rpc = on_rpc  # told of every RPC: (name, None) when it worked, (name, status or 0) when not
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AsyncColoniesClient({self.url!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl, limit=256))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def rpc(self, msgtype: str, payload: dict[str, Any], prvkey: str, *,
                  read_timeout: float | None = None) -> Any:
        """Sends one signed message; the decoded reply payload, or a typed error."""
        body = encode_request(msgtype, payload, prvkey)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout,
                                        sock_read=read_timeout or self.read_timeout)
        try:
            async with self.session.post(self.url, data=body, timeout=timeout) as reply:
                text = await reply.text()
                status = reply.status
        except aiohttp.ClientSSLError as err:
            self._told(msgtype, 0)
            raise ColoniesUnreachable(f"TLS handshake with {self.url} failed: {err}", rpc=msgtype) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            self._told(msgtype, 0)
            raise ColoniesUnreachable(f"cannot reach {self.url}: {type(err).__name__} {err}", rpc=msgtype) from None
        try:
            result = decode_reply(status, text, msgtype)
        except ColoniesError as err:
            no_work = msgtype == "assignprocessmsg" and err.status == 404
            self._told(msgtype, None if no_work else err.status)
            raise
        self._told(msgtype, None)
        return result

    def _told(self, msgtype: str, status: int | None) -> None:
        if self._on_rpc:
            self._on_rpc(msgtype, status)

    # -- the calls the operator makes ---------------------------------------------------------------------

    async def version(self) -> dict[str, Any]:
        return await self.rpc("versionmsg", {}, "")

    async def get_executor(self, colonyname: str, executorname: str, prvkey: str) -> Executor:
        return Executor.from_dict(await self.rpc("getexecutormsg", {"colonyname": colonyname,
                                                                    "executorname": executorname}, prvkey))

    async def add_executor(self, executor: Executor, colony_prvkey: str) -> Executor:
        return Executor.from_dict(await self.rpc("addexecutormsg", {"executor": executor.to_dict()}, colony_prvkey))

    async def approve_executor(self, colonyname: str, executorname: str, colony_prvkey: str) -> None:
        await self.rpc("approveexecutormsg", {"colonyname": colonyname, "executorname": executorname}, colony_prvkey)

    async def remove_executor(self, colonyname: str, executorname: str, colony_prvkey: str) -> None:
        await self.rpc("removeexecutormsg", {"colonyname": colonyname, "executorname": executorname}, colony_prvkey)

    async def get_functions(self, colonyname: str, executorname: str, prvkey: str) -> list[Function]:
        reply = await self.rpc("getfunctionsmsg", {"colonyname": colonyname, "executorname": executorname}, prvkey)
        return [Function.from_dict(f) for f in reply or []]

    async def add_function(self, function: dict[str, Any], prvkey: str) -> Function:
        """`function`: addfunctionmsg's "fun" (wire.function_payload builds it, with its documentation)."""
        return Function.from_dict(await self.rpc("addfunctionmsg", {"fun": function}, prvkey))

    async def remove_function(self, functionid: str, prvkey: str) -> None:
        await self.rpc("removefunctionmsg", {"functionid": functionid}, prvkey)

    async def update_capabilities(self, colonyname: str, executorname: str, capabilities: dict[str, Any],
                                  prvkey: str) -> None:
        await self.rpc("updateexecutormsg", update_capabilities_payload(colonyname, executorname, capabilities),
                       prvkey)

    async def add_executor_log(self, colonyname: str, executorname: str, message: str, prvkey: str) -> None:
        await self.rpc("addexecutorlogmsg", executor_log_payload(colonyname, executorname, message), prvkey)

    async def assign(self, colonyname: str, timeout: int, prvkey: str, *, available_cpu: str = "",
                     available_mem: str = "") -> Process | None:
        """Long-polls up to `timeout` seconds (negative: one immediate attempt); None when there is no work."""
        payload = assign_payload(colonyname, timeout, available_cpu, available_mem)
        try:
            reply = await self.rpc("assignprocessmsg", payload, prvkey,
                                   read_timeout=max(timeout, 0) + self.read_timeout)
        except ColoniesError as err:
            if err.status == 404:
                return None
            raise
        return Process.from_dict(reply)

    async def get_process(self, processid: str, prvkey: str) -> Process:
        return Process.from_dict(await self.rpc("getprocessmsg", {"processid": processid}, prvkey))

    async def running_on(self, colonyname: str, executorid: str, prvkey: str) -> list[Process]:
        """Every process RUNNING on this executor (getprocessesmsg stops at 100, colony-wide)."""
        payload = {"colonyname": colonyname, "executorid": executorid, "seconds": HISTORY_SECONDS, "state": 1}
        reply = await self.rpc("getprocesshistmsg", payload, prvkey, read_timeout=120)
        return [p for p in (Process.from_dict(d) for d in reply or []) if p.assignedexecutorid == executorid]

    async def get_logs(self, colonyname: str, processid: str, prvkey: str, *, since: int = 0,
                       count: int = MAX_LOGS_PER_READ) -> list[LogEntry]:
        """Up to `count` log entries of the process newer than `since` (server nanoseconds), oldest first."""
        payload = logs_payload(colonyname, processid, since=since, count=count)
        return [LogEntry.from_dict(e) for e in await self.rpc("getlogsmsg", payload, prvkey) or []]

    async def newest_log(self, colonyname: str, processid: str, prvkey: str) -> LogEntry | None:
        """The newest log entry of the process, if it has any."""
        payload = logs_payload(colonyname, processid, count=1, latest=True)
        entries = await self.rpc("getlogsmsg", payload, prvkey) or []
        return LogEntry.from_dict(entries[-1]) if entries else None

    async def add_log(self, processid: str, message: str, prvkey: str) -> None:
        await self.rpc("addlogmsg", add_log_payload(processid, message), prvkey)

    async def close_successful(self, processid: str, prvkey: str, output: Iterable[Any] = ()) -> None:
        await self.rpc("closesuccessfulmsg", {"processid": processid, "out": list(output)}, prvkey)

    async def close_failed(self, processid: str, errors: Iterable[str], prvkey: str) -> None:
        await self.rpc("closefailedmsg", {"processid": processid, "errors": list(errors)}, prvkey)
