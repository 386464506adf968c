"""The work queue: a key is queued once, never held by two workers, re-queued once if it changed while held, and of
several delays asked for a key the earliest wins. On virtual time."""

from __future__ import annotations

import asyncio

from colonies_operator.engine.workqueue import WorkQueue
from tests.unit.virtual_time import run_virtual


async def drain(queue: WorkQueue, wait: float = 0.0) -> list:
    """Every key the queue hands out within `wait` seconds (each marked done at once)."""
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            key = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()) or 0.001)
        except asyncio.TimeoutError:
            return got
        got.append((key, round(loop.time(), 3)))
        queue.done(key)


def test_a_key_added_twice_is_handed_out_once():
    async def main():
        queue = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        return [key for key, _ in await drain(queue)]
    assert run_virtual(main()) == ["a", "b"]


def test_a_key_added_while_a_worker_holds_it_is_handed_out_again_once_when_done():
    async def main():
        queue = WorkQueue()
        queue.add("a")
        held = await queue.get()
        for _ in range(3):
            queue.add("a")  # events while the worker reconciles it
        assert await drain(queue) == []  # never to a second worker meanwhile
        queue.done(held)
        return [key for key, _ in await drain(queue)]
    assert run_virtual(main()) == ["a"]


def test_of_several_delays_for_a_key_the_earliest_wins_and_it_fires_once():
    async def main():
        queue = WorkQueue()
        queue.add_after("a", 10)
        queue.add_after("a", 2)
        queue.add_after("a", 5)
        return await drain(queue, wait=30)
    assert run_virtual(main()) == [("a", 2.0)]


def test_a_later_delay_does_not_postpone_an_earlier_one():
    async def main():
        queue = WorkQueue()
        queue.add_after("a", 2)
        queue.add_after("a", 10)
        return await drain(queue, wait=30)
    assert run_virtual(main()) == [("a", 2.0)]


def test_a_forgotten_key_is_not_added_by_its_timer():
    async def main():
        queue = WorkQueue()
        queue.add_after("a", 2)
        queue.forget("a")
        return await drain(queue, wait=30)
    assert run_virtual(main()) == []
