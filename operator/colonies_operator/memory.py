"""Giving memory back to the system once a burst of work is over.

After thousands of processes ran at once, the memory their attempts used is free inside the interpreter but
stays in the process: glibc keeps freed heap pages, and cycles wait for the collector. So when an executor that
had many processes has none left, the operator collects and asks glibc to return what it can (`malloc_trim`),
once for a burst, a few seconds later. Elsewhere than glibc (musl, macOS) only the collection is done."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from typing import Callable

log = logging.getLogger(__name__)

BURST = 100  # an executor that had at least this many processes at once releases memory when it has none
DELAY_SECONDS = 5.0  # lets the last attempts' tasks and buffers go first


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()
_scheduled = False


def release_freed_memory() -> None:
    global _scheduled
    _scheduled = False
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)
    log.debug("released freed memory after a burst")


def release_soon() -> None:
    """Schedules one release (several executors going idle together share it)."""
    global _scheduled
    if not _scheduled:
        _scheduled = True
        asyncio.get_running_loop().call_later(DELAY_SECONDS, release_freed_memory)
