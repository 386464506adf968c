"""Leader election on a Lease against a fake API server that checks resourceVersion as the real one does, on
virtual time: one leader at a time, a crashed leader replaced after the lease duration, a released Lease taken
within a retry period, a leader cut off from the API server stepping down before anyone may take over."""

from __future__ import annotations

import asyncio
import copy

import pytest

from colonies_operator.engine.leader import JITTER, LeaderElector, LeaseTimings, LeadershipLost
from colonies_operator.kube.api import KubeError
from tests.unit.virtual_time import run_virtual

TIMINGS = LeaseTimings()  # 15 / 10 / 2 s


class FakeLeases:
    """One namespace's Leases, with optimistic concurrency; `down` makes every request fail as unreachable for the
    instances named in it."""

    def __init__(self) -> None:
        self.leases: dict[str, dict] = {}
        self.version = 0
        self.down: set[str] = set()
        self.writes: list[tuple[float, str, str]] = []  # (time, writer, holder written)

    def api(self, who: str) -> "FakeApi":
        return FakeApi(self, who)


class FakeApi:
    def __init__(self, store: FakeLeases, who: str) -> None:
        self.store, self.who = store, who

    def _check(self) -> None:
        if self.who in self.store.down:
            raise KubeError(None, "ClientConnectorError", "cannot reach the API server")

    def _write(self, lease: dict) -> dict:
        self.store.version += 1
        lease = copy.deepcopy(lease)
        lease["metadata"]["resourceVersion"] = str(self.store.version)
        self.store.leases[lease["metadata"]["name"]] = lease
        self.store.writes.append((asyncio.get_running_loop().time(), self.who,
                                  lease["spec"].get("holderIdentity", "")))
        return copy.deepcopy(lease)

    async def get_lease(self, namespace, name):
        self._check()
        return copy.deepcopy(self.store.leases.get(name))

    async def create_lease(self, namespace, name, spec):
        self._check()
        if name in self.store.leases:
            raise KubeError(409, "AlreadyExists", "leases already exists")
        return self._write({"metadata": {"name": name, "namespace": namespace}, "spec": spec})

    async def replace_lease(self, lease):
        self._check()
        current = self.store.leases.get(lease["metadata"]["name"])
        if current is None or current["metadata"]["resourceVersion"] != lease["metadata"].get("resourceVersion"):
            raise KubeError(409, "Conflict", "the object has been modified")
        return self._write(lease)


def elector(store: FakeLeases, who: str, timings: LeaseTimings = TIMINGS, changes: list | None = None):
    return LeaderElector(store.api(who), "ops", "colonies-operator", who, timings,
                         on_change=(lambda leading: changes.append(leading)) if changes is not None else None)


async def lead_and_hold(instance: LeaderElector) -> None:
    await instance.acquire()
    await instance.hold()


def test_a_lone_instance_creates_the_lease_and_leads_at_once():
    async def main():
        store, changes = FakeLeases(), []
        a = elector(store, "a", changes=changes)
        await asyncio.wait_for(a.acquire(), 0.1)
        assert a.leading and changes == [True]
        spec = store.leases["colonies-operator"]["spec"]
        assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
    run_virtual(main())


def test_a_second_instance_takes_no_lease_while_the_leader_renews():
    async def main():
        store = FakeLeases()
        a, b = elector(store, "a"), elector(store, "b")
        holding = asyncio.ensure_future(lead_and_hold(a))
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(b.acquire())
        await asyncio.sleep(120)
        assert a.leading and not b.leading and not waiting.done()
        assert {holder for _, _, holder in store.writes} == {"a"}
        holding.cancel()
        waiting.cancel()
    run_virtual(main())


def test_a_crashed_leader_is_replaced_after_the_lease_duration_and_within_a_retry_period_more():
    async def main():
        store = FakeLeases()
        a, b = elector(store, "a"), elector(store, "b")
        holding = asyncio.ensure_future(lead_and_hold(a))
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(b.acquire())
        await asyncio.sleep(30)
        holding.cancel()  # SIGKILL: no release
        last_renewal = max(t for t, who, _ in store.writes if who == "a")
        await waiting
        took_over = asyncio.get_running_loop().time()
        assert TIMINGS.lease_duration <= took_over - last_renewal
        assert took_over - last_renewal <= TIMINGS.lease_duration + 2 * TIMINGS.retry_period * (1 + JITTER)
        assert b.leading
    run_virtual(main())


def test_a_released_lease_is_taken_within_one_retry_period():
    async def main():
        store = FakeLeases()
        a, b = elector(store, "a"), elector(store, "b")
        holding = asyncio.ensure_future(lead_and_hold(a))
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(b.acquire())
        await asyncio.sleep(20)
        holding.cancel()
        assert await a.release() and not a.leading
        released = asyncio.get_running_loop().time()
        await waiting
        assert asyncio.get_running_loop().time() - released <= TIMINGS.retry_period * (1 + JITTER)
    run_virtual(main())


def test_a_leader_cut_off_from_the_api_server_steps_down_before_anyone_may_take_over():
    async def main():
        store = FakeLeases()
        a, b = elector(store, "a"), elector(store, "b")
        holding = asyncio.ensure_future(lead_and_hold(a))
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(b.acquire())
        await asyncio.sleep(10)
        store.down.add("a")
        last_renewal = max(t for t, who, _ in store.writes if who == "a")
        with pytest.raises(LeadershipLost, match="could not renew"):
            await holding
        stepped_down = asyncio.get_running_loop().time()
        assert not a.leading
        assert stepped_down - last_renewal <= TIMINGS.renew_deadline
        await waiting
        assert asyncio.get_running_loop().time() >= last_renewal + TIMINGS.lease_duration > stepped_down
    run_virtual(main())


def test_a_leader_whose_lease_another_instance_took_steps_down_at_its_next_renewal():
    async def main():
        store = FakeLeases()
        a = elector(store, "a")
        holding = asyncio.ensure_future(lead_and_hold(a))
        await asyncio.sleep(5)
        lease = store.leases["colonies-operator"]
        lease["spec"]["holderIdentity"] = "someone-else"
        store.version += 1
        lease["metadata"]["resourceVersion"] = str(store.version)
        taken = asyncio.get_running_loop().time()
        with pytest.raises(LeadershipLost, match="someone-else holds"):
            await holding
        assert asyncio.get_running_loop().time() - taken <= TIMINGS.retry_period
    run_virtual(main())


def test_of_instances_starting_together_exactly_one_leads():
    async def main():
        store = FakeLeases()
        instances = [elector(store, name) for name in "abcde"]
        tasks = [asyncio.ensure_future(lead_and_hold(i)) for i in instances]
        await asyncio.sleep(60)
        assert sum(i.leading for i in instances) == 1
        for task in tasks:
            task.cancel()
    run_virtual(main())


def test_a_candidate_ignores_the_holders_clock():
    """A renewTime far in the past (a holder whose clock is behind) does not make a renewed Lease look expired."""
    async def main():
        store = FakeLeases()
        store.leases["colonies-operator"] = {
            "metadata": {"name": "colonies-operator", "namespace": "ops", "resourceVersion": "1"},
            "spec": {"holderIdentity": "behind", "leaseDurationSeconds": 15,
                     "renewTime": "2001-01-01T00:00:00.000000Z"}}

        async def renew_now_and_then():
            for second in range(1, 100):
                await asyncio.sleep(5)
                lease = store.leases["colonies-operator"]
                lease["spec"]["renewTime"] = f"2001-01-01T00:00:{second:02d}.000000Z"
                lease["metadata"]["resourceVersion"] = str(int(lease["metadata"]["resourceVersion"]) + 1)

        renewer = asyncio.ensure_future(renew_now_and_then())
        b = elector(store, "b")
        waiting = asyncio.ensure_future(b.acquire())
        await asyncio.sleep(60)
        assert not waiting.done() and not b.leading
        renewer.cancel()
        waiting.cancel()
    run_virtual(main())


@pytest.mark.parametrize("timings, problem", [
    (LeaseTimings(15, 10, 2), None),
    (LeaseTimings(15, 15, 2), "renew deadline"),
    (LeaseTimings(15, 10, 9), "retry period"),
    (LeaseTimings(15, 10, 0), "retry period"),
], ids=["the-defaults-are-safe", "the-leader-must-stop-before-the-lease-ends",
        "a-renewal-must-fit-in-the-deadline", "a-retry-period-is-positive"])
def test_unsafe_timings_are_refused(timings, problem):
    found = timings.problem()
    assert (found is None) if problem is None else (problem in found)
