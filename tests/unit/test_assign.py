"""The assign loop against a scripted Colonies: it takes work while there is room, keeps the executor alive with
an assign no process can match when there is none, waits out a paused colony and an unreachable server, and stops
when the runtime stops. On virtual time."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from colonies_operator.colonies import AssignmentsPaused, ColoniesUnreachable, Forbidden, Process
from colonies_operator.core.conditions import ASSIGNING, REACHABLE, REGISTERED, Problem
from colonies_operator.core.config import config_from_spec
from colonies_operator.engine.assign import MAX_HEARTBEAT_INTERVAL, NEVER_MATCHING_CPU, AssignLoop
from colonies_operator.engine.interrupts import Interrupts
from colonies_operator.engine.status import StatusWriter
from tests.unit.virtual_time import run_virtual

CONFIG = config_from_spec({"server": {"host": "colonies"}, "colonyName": "dev", "assignTimeoutSeconds": 10,
                           "credentials": {"colonyKeySecret": {"name": "k"}}}, namespace="ops", name="cluster")


class ScriptedColonies:
    """assign answers from `answers` in turn (a Process, None for no work, or an exception), then long-polls
    with nothing; every call is recorded with its loop time."""

    url = "http://colonies:50080/api"

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[float, int, str]] = []  # (time, timeout, available_cpu)

    async def assign(self, colony, timeout, prvkey, *, available_cpu="", available_mem=""):
        self.calls.append((asyncio.get_running_loop().time(), timeout, available_cpu))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        await asyncio.sleep(max(timeout, 0))
        return None


@dataclasses.dataclass
class Identity:
    client: ScriptedColonies
    prvkey: str = "k"
    logged: list = dataclasses.field(default_factory=list)

    async def log(self, message):
        self.logged.append(message)


class Harness:
    def __init__(self, client: ScriptedColonies, room: bool = True) -> None:
        self.identity = Identity(client)
        self.status = StatusWriter(self._write, dict, name="ops/cluster")
        # as the runtime leaves them before the loop starts
        self.status.set_condition(REACHABLE, True, "Connected", client.url)
        self.status.set_condition(ASSIGNING, True, "Assigning", "the colony's assignments are not paused")
        self.interrupts = Interrupts()
        self.room, self.taken, self.rechecks = room, [], 0
        self.slot_freed, self.room_lost = asyncio.Event(), asyncio.Event()

    async def _write(self, status):
        pass

    async def recheck(self):
        self.rechecks += 1

    def loop(self) -> AssignLoop:
        return AssignLoop(CONFIG, self.identity, status=self.status, interrupts=self.interrupts,
                          room=lambda: self.room, take=self.taken.append, slot_freed=self.slot_freed,
                          recheck_jobs=self.recheck, name="ops/cluster", room_lost=self.room_lost)

    async def run_for(self, seconds: float) -> None:
        task = asyncio.ensure_future(self.loop().run())
        await asyncio.sleep(seconds)
        self.interrupts.stop.set()
        await asyncio.wait_for(task, 1)


def process(pid: str) -> Process:
    return Process.from_dict({"processid": pid, "state": 1})


def test_it_takes_each_process_it_is_assigned_and_says_colonies_is_reachable():
    async def main():
        harness = Harness(ScriptedColonies(process("p1"), None, process("p2")))
        await harness.run_for(5)
        assert [p.processid for p in harness.taken] == ["p1", "p2"]
        assert harness.status.condition_ok(REACHABLE)
        assert all(timeout == 10 for _, timeout, _ in harness.identity.client.calls)
    run_virtual(main())


def test_at_the_cap_it_keeps_the_executor_alive_with_an_assign_no_process_can_match():
    async def main():
        client = ScriptedColonies()
        harness = Harness(client, room=False)
        await harness.run_for(200)
        heartbeats = [(t, timeout, cpu) for t, timeout, cpu in client.calls]
        assert heartbeats and all(timeout == -1 and cpu == NEVER_MATCHING_CPU for _, timeout, cpu in heartbeats)
        times = [t for t, _, _ in heartbeats]
        assert times[0] == 0 and all(b - a <= MAX_HEARTBEAT_INTERVAL for a, b in zip(times, times[1:]))
        assert 200 - times[-1] <= MAX_HEARTBEAT_INTERVAL
        assert harness.rechecks >= 200 / 5 - 1  # Kubernetes' refusal looked at again every few seconds
    run_virtual(main())


def test_a_freed_slot_ends_the_wait_at_the_cap_at_once():
    async def main():
        client = ScriptedColonies(None, process("p1"))
        harness = Harness(client, room=False)
        task = asyncio.ensure_future(harness.loop().run())
        await asyncio.sleep(1.5)
        harness.room = True
        harness.slot_freed.set()
        await asyncio.sleep(0.1)
        harness.interrupts.stop.set()
        await asyncio.wait_for(task, 1)
        # the heartbeat at the cap, then an assign the moment a slot is free (and the next long-poll)
        assert [(round(t, 3), timeout) for t, timeout, _ in client.calls] == [(0.0, -1), (1.5, 10), (1.5, 10)]
        assert [p.processid for p in harness.taken] == ["p1"]
    run_virtual(main())


def test_a_paused_colony_is_waited_out_and_said_in_the_status_and_the_executor_log():
    async def main():
        paused = AssignmentsPaused("colony is paused", status=503)
        client = ScriptedColonies(paused, paused, process("p1"))
        harness = Harness(client)
        task = asyncio.ensure_future(harness.loop().run())
        await asyncio.sleep(1.5)
        assert not harness.status.condition_ok(ASSIGNING)
        await asyncio.sleep(5)
        harness.interrupts.stop.set()
        await asyncio.wait_for(task, 1)
        assert harness.status.condition_ok(ASSIGNING) and [p.processid for p in harness.taken] == ["p1"]
        assert [m for m in harness.identity.logged if "paused" in m] and \
            [m for m in harness.identity.logged if "assigns again" in m]
    run_virtual(main())


def test_colonies_unreachable_is_retried_with_backoff_and_never_raises():
    async def main():
        down = ColoniesUnreachable("connection refused")
        client = ScriptedColonies(down, down, down, down, process("p1"))
        harness = Harness(client)
        task = asyncio.ensure_future(harness.loop().run())
        await asyncio.sleep(3.5)
        assert not harness.status.condition_ok(REACHABLE)
        await asyncio.sleep(30)
        harness.interrupts.stop.set()
        await asyncio.wait_for(task, 1)
        times = [t for t, _, _ in client.calls[:5]]
        assert [round(b - a) for a, b in zip(times, times[1:])] == [1, 2, 4, 8]
        assert harness.status.condition_ok(REACHABLE) and [p.processid for p in harness.taken] == ["p1"]
    run_virtual(main())


def test_colonies_refusing_the_executor_itself_is_a_registration_problem():
    async def main():
        harness = Harness(ScriptedColonies(Forbidden("not a member of the colony", status=403)))
        with pytest.raises(Problem) as raised:
            await harness.loop().run()
        return raised.value
    problem = run_virtual(main())
    assert problem.condition == REGISTERED and "not a member" in problem.message


def test_a_reload_ends_a_long_poll_at_once():
    async def main():
        client = ScriptedColonies()
        harness = Harness(client)
        task = asyncio.ensure_future(harness.loop().run())
        await asyncio.sleep(3)
        harness.interrupts.reload.set()
        await asyncio.wait_for(task, 0.1)
        return client.calls
    assert len(run_virtual(main())) == 1


class LatePoll(ScriptedColonies):
    """The first long-poll gets a process after 5 s; the rest find nothing."""

    async def assign(self, colony, timeout, prvkey, *, available_cpu="", available_mem=""):
        self.calls.append((asyncio.get_running_loop().time(), timeout, available_cpu))
        if timeout > 0 and len(self.calls) == 1:
            await asyncio.sleep(5)
            return process("late")
        return None


def test_a_long_poll_under_way_ends_when_kubernetes_begins_refusing_the_executors_jobs():
    async def main():
        client = LatePoll()
        harness = Harness(client)
        task = asyncio.ensure_future(harness.loop().run())
        await asyncio.sleep(1)
        harness.room = False  # a Job was refused: the executor's problem
        harness.room_lost.set()
        await asyncio.sleep(40)
        harness.interrupts.stop.set()
        await asyncio.wait_for(task, 1)
        assert harness.taken == [], "it took work after Kubernetes began refusing its Jobs"
        assert [timeout for _, timeout, _ in client.calls[1:]] and \
            all(timeout == -1 for _, timeout, _ in client.calls[1:]), "then only signs of life"
    run_virtual(main())
