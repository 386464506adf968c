"""The runtime's outer loop on virtual time: a problem is retried with a backoff that no stream of spec edits
defeats, and while the executor may take no new work it keeps itself alive in Colonies for as long as work it took
runs here, then goes quiet."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from colonies_operator.core.conditions import ALLOWED, Problem
from colonies_operator.engine.assign import NEVER_MATCHING_CPU
from colonies_operator.engine.attempt_logs import LogLimits
from colonies_operator.engine.runtime import ExecutorRuntime
from tests.unit.test_assign import CONFIG, ScriptedColonies
from tests.unit.virtual_time import run_virtual

RESOURCE = {"metadata": {"namespace": "ops", "name": "cluster", "uid": "u1", "generation": 1},
            "spec": {"server": {"host": "colonies"}, "colonyName": "dev",
                     "credentials": {"colonyKeySecret": {"name": "k"}}}}


class FakeKube:
    def __init__(self) -> None:
        self.statuses: list[dict] = []

    async def patch_executor_status(self, namespace, name, status):
        self.statuses.append(status)


class FakeNodes:
    def subscribe(self, key, callback):
        pass

    def unsubscribe(self, key):
        pass

    def nodes(self):
        return None


class FakeView:
    nodes = FakeNodes()

    def subscribe(self, label, callback):
        pass

    def unsubscribe(self, label):
        pass

    def use(self, namespace):
        pass

    async def release(self, namespace):
        pass


class Identity:
    def __init__(self, client: ScriptedColonies) -> None:
        self.client, self.prvkey, self.colony, self.executor_id = client, "k", "dev", "e" * 64

    async def log(self, message):
        pass


def runtime() -> ExecutorRuntime:
    return ExecutorRuntime(FakeKube(), FakeView(), RESOURCE, LogLimits.of(4))


def refused(executor: ExecutorRuntime, calls: list[float]):
    async def run_once():
        calls.append(asyncio.get_running_loop().time())
        if len(calls) > 200:  # spinning: stop it rather than spin forever
            executor.interrupts.stop.set()
        raise Problem(ALLOWED, "ServiceAccountNotAllowed", "spec.jobs.serviceAccountName 'x' is not allowed")
    return run_once


def test_retries_of_a_problem_back_off_whatever_edits_arrive():
    async def main():
        executor, tries = runtime(), []
        executor._run_once = refused(executor, tries)
        task = asyncio.ensure_future(executor.run())
        for _ in range(3000):  # an edit every 0.1 s for 5 minutes
            await asyncio.sleep(0.1)
            executor.reload(RESOURCE)
        executor.interrupts.stop.set()
        await task
        gaps = [b - a for a, b in zip(tries, tries[1:])]
        assert len(tries) < 80, f"{len(tries)} tries in 5 minutes"
        # Never sooner than the backoff's first second; an edit is tried within 5 s.
        assert min(gaps) >= 0.99 and max(gaps) <= 5.2, gaps

    run_virtual(main())


def test_without_edits_a_problem_is_retried_up_to_a_minute_apart():
    async def main():
        executor, tries = runtime(), []
        executor._run_once = refused(executor, tries)
        task = asyncio.ensure_future(executor.run())
        await asyncio.sleep(600)
        executor.interrupts.stop.set()
        await task
        gaps = [round(b - a) for a, b in zip(tries, tries[1:])]
        assert gaps[:6] == [1, 2, 4, 8, 16, 32] and set(gaps[6:]) == {60}

    run_virtual(main())


def test_an_executor_taking_no_new_work_stays_alive_while_its_work_runs_then_goes_quiet():
    async def main():
        executor, tries = runtime(), []
        executor._run_once = refused(executor, tries)
        colonies = ScriptedColonies()
        executor.identity, executor.config = Identity(colonies), CONFIG  # registered before the spec was refused
        executor.scanner.adopted = True
        executor.reconciler.attempts[("p" * 64, 0)] = SimpleNamespace(queued=False)  # one process runs here
        task = asyncio.ensure_future(executor.run())
        await asyncio.sleep(300)
        beats = [t for t, timeout, cpu in colonies.calls if timeout == -1 and cpu == NEVER_MATCHING_CPU]
        assert len(beats) == len(colonies.calls) >= 300 / 30 - 1, colonies.calls
        assert max(b - a for a, b in zip([0.0, *beats], beats)) <= 30.0 + 0.01  # 3 × assignTimeoutSeconds
        executor.reconciler.attempts.clear()  # its last process ended
        ended = asyncio.get_running_loop().time()
        await asyncio.sleep(600)
        assert [t for t, _, _ in colonies.calls if t > ended + 0.01] == [], "quiet once nothing runs here"
        executor.interrupts.stop.set()
        await task

    run_virtual(main())
