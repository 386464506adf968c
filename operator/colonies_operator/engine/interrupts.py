"""The stop and the reload of a runtime, as something its loops can wait on: a pause, a long-poll or a wait for
an event ends at once when either comes."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable


class Interrupts:
    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.reload = asyncio.Event()

    @property
    def stopping(self) -> bool:
        """True once the runtime stops or must re-read its spec: loops return."""
        return self.stop.is_set() or self.reload.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleeps, but wakes at once when the runtime stops or reloads."""
        await self.wait(seconds)

    async def wait(self, seconds: float | None, *events: asyncio.Event) -> None:
        """Waits until one of `events` is set, or the runtime stops or reloads, at most `seconds` (None: no
        limit)."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (self.stop, self.reload, *events)]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def interruptible(self, call: Awaitable[Any], *events: asyncio.Event) -> Any:
        """Awaits `call` (a long-poll), but cancels it and returns None when the runtime stops or reloads, or one of
        `events` is set."""
        task = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(self.wait(None, *events))
        try:
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return None
        return task.result()
