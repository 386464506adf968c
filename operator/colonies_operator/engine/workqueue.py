"""A queue of keys for a fixed number of workers, as client-go's workqueue has it.

A key is never in the queue twice and never handed to two workers at once: a key added while a worker holds it
is queued again, once, when that worker is done. A key can be added after a delay; of several delays asked for
one key, the earliest wins. Timers run on the event loop's clock.
"""

from __future__ import annotations

import asyncio
from typing import Generic, Hashable, TypeVar

Key = TypeVar("Key", bound=Hashable)


class WorkQueue(Generic[Key]):
    """De-duplicated keys with delayed re-adds; a key being worked on is re-queued once it is done."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def add(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Adds the key after `delay` seconds, unless an earlier re-add is already set for it."""
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> Key:
        """The next key; the caller holds it until `done(key)`."""
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: Key) -> None:
        """Cancels the key's delayed re-add (the key is done with for good)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
