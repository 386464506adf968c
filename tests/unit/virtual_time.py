"""An event loop whose clock jumps to the next timer whenever nothing is ready to run, so that unit tests of
timers (debounce, retry delays, heartbeats) take no wall-clock time and never depend on the machine's speed.

(looptime, the library for this, installs a pytest plugin that fails without pytest-asyncio.) Only for code that
waits on timers and events: a loop waiting on real I/O would spin forward through its timeouts.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        if not self._ready:  # type: ignore[attr-defined]  (asyncio's own queue of callbacks due now)
            due = [timer.when() for timer in self._scheduled if not timer.cancelled()]  # type: ignore[attr-defined]
            if due:
                self._virtual_now = max(self._virtual_now, min(due))
        super()._run_once()  # type: ignore[misc]


def run_virtual(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs `coroutine` to its end on a VirtualTimeLoop (the loop's clock starts at 0)."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coroutine)
    finally:
        # What is left (a debounced write, a timer's task) is cancelled and run to its end, as asyncio.run does.
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()
