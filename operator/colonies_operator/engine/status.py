"""The ColoniesExecutor's status as the operator writes it: conditions at once, counters at a measured pace.

A change of conditions is written within DEBOUNCE_SECONDS; a change of the counters alone (active, succeeded,
failed, last assignment) at most every COUNTERS_SECONDS: during a burst they change many times a second, and
each write is a request to the API server and an event for every watcher of the resource. Nothing is written
that equals what was written last. Times are the event loop's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Iterable

from ..core.conditions import READY, ready_from, with_condition

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.5
COUNTERS_SECONDS = 5.0


class StatusWriter:
    """Holds the conditions and writes the status with `write(status)` when it changed.
    `fields()` gives the rest of the status (ids, counters) at the time of writing."""

    def __init__(self, write: Callable[[dict[str, Any]], Awaitable[None]], fields: Callable[[], dict[str, Any]], *,
                 conditions: Iterable[dict[str, Any]] = (), generation: int | None = None, name: str = "") -> None:
        self._write, self._fields = write, fields
        self.conditions: list[dict[str, Any]] = list(conditions)
        self.generation = generation  # of the spec the conditions speak of
        self._name = name
        self._written: dict[str, Any] = {}
        self._written_at = float("-inf")
        self._conditions_changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False

    def set_condition(self, kind: str, ok: bool, reason: str, message: str) -> None:
        self.conditions = with_condition(self.conditions, kind, ok, reason, message, self.generation)

    def drop_condition(self, kind: str) -> None:
        self.conditions = [c for c in self.conditions if c.get("type") != kind]

    def condition_ok(self, kind: str) -> bool:
        return any(c["type"] == kind and c["status"] == "True" for c in self.conditions)

    def changed(self) -> None:
        """Something the status shows changed: write it soon (once for a burst of changes)."""
        if self._closed:
            return
        if self._written.get("conditions") != self.conditions:
            self._conditions_changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_soon())

    async def _write_soon(self) -> None:
        await asyncio.sleep(DEBOUNCE_SECONDS)
        if self._written and self._written.get("conditions") == self.conditions:
            self._conditions_changed.clear()
            wait = self._written_at + COUNTERS_SECONDS - asyncio.get_running_loop().time()
            try:  # a change of conditions meanwhile ends the wait
                await asyncio.wait_for(self._conditions_changed.wait(), max(0.0, wait))
            except asyncio.TimeoutError:
                pass
        await self.report()

    async def report(self) -> None:
        """Writes the status now if it differs from the last one written."""
        ready, reason, message = ready_from(self.conditions)
        self.conditions = with_condition(self.conditions, READY, ready, reason, message, self.generation)
        status = {"conditions": self.conditions, **self._fields(), "observedGeneration": self.generation}
        if status == self._written:
            return
        try:
            await self._write(status)
            self._written, self._written_at = status, asyncio.get_running_loop().time()
        except Exception as err:  # status is best effort; the next change retries it
            log.warning("cannot write the status of %s: %s", self._name, err)

    def close(self) -> None:
        """No more writes (the runtime stops)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
