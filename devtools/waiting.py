"""Polling against a deadline: the only way the tests and the developer tools wait for something."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float, interval: float = 0.2, description: str = "condition"
) -> T:
    """Calls `predicate` until it returns something truthy and returns that; raises TimeoutError naming
    `description` (and the last falsy value or exception the predicate gave) when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last: str = ""
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = f" (last result: {value!r})"
        except Exception as err:  # the thing waited for may not exist yet
            last = f" (last error: {err!r})"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for: {description}{last}")
        time.sleep(min(interval, remaining))
