"""The operator's asyncio Colonies client against a real Colonies server (started by the suite)."""

from __future__ import annotations

import asyncio

import pytest

from colonies_operator.colonies import Conditions, FunctionSpec, NotFound, ProcessState, crypto
from colonies_operator.colonies.client import AsyncColoniesClient

pytestmark = pytest.mark.colonies


def client_for(colony) -> AsyncColoniesClient:
    return AsyncColoniesClient(f"http://{colony.server.host}:{colony.server.port}/api")


def spec(colony, executortype: str) -> FunctionSpec:
    return FunctionSpec(funcname="execute", kwargs={"docker-image": "busybox:1.35", "cmd": "echo hi"},
                        conditions=Conditions(colonyname=colony.name, executortype=executortype))


def test_running_on_lists_every_process_of_the_executor_beyond_the_100_of_getprocesses(colony):
    # 130 RUNNING processes of the type on another executor, 120 on ours: getprocessesmsg shows 100 at most,
    # colony-wide, oldest first, so a restarted operator reading it would miss the newest of its own.
    _, other = colony.new_executor(executortype="busy")
    _, mine = colony.new_executor(executortype="busy")
    for key, count in ((other, 130), (mine, 120)):
        for _ in range(count):
            colony.client.submit(spec(colony, "busy"), colony.user_prvkey)
        for _ in range(count):
            assert colony.client.assign(colony.name, -1, key) is not None
    assert len(colony.client.get_processes(colony.name, ProcessState.RUNNING, colony.user_prvkey,
                                           executortype="busy")) == 100

    async def main():
        client = client_for(colony)
        try:
            return await client.running_on(colony.name, crypto.prvkey_to_id(mine), mine)
        finally:
            await client.close()
    running = asyncio.run(main())
    assert len(running) == 120
    assert {p.assignedexecutorid for p in running} == {crypto.prvkey_to_id(mine)}


def test_assign_log_and_close_round_trip(colony):
    _, key = colony.new_executor(executortype="aio")
    submitted = colony.client.submit(spec(colony, "aio"), colony.user_prvkey)

    async def main():
        client = client_for(colony)
        try:
            process = await client.assign(colony.name, 5, key)
            await client.add_log(process.processid, "one\nnul\x00byte\n", key)
            await client.close_successful(process.processid, key, output=["42"])
            logs = await client.get_logs(colony.name, process.processid, key)
            newest = await client.newest_log(colony.name, process.processid, key)
            with pytest.raises(NotFound):
                await client.get_process("0" * 64, key)
            return process, logs, newest, await client.assign(colony.name, -1, key)
        finally:
            await client.close()
    process, logs, newest, nothing = asyncio.run(main())
    assert process.processid == submitted.processid and nothing is None
    assert "".join(e.message for e in logs) == "one\nnul\u2400byte\n"
    assert newest.message == "one\nnul\u2400byte\n" and newest.timestamp == logs[-1].timestamp
    final = colony.client.get_process(submitted.processid, colony.user_prvkey)
    assert final.state == ProcessState.SUCCESS and final.output == ["42"]
