"""Gives the memory a burst of processes used back to the system once the burst is over.

Memory Python frees stays in the process (its RSS) until the allocator returns it. Python's own small-object
allocator keeps whole 1 MiB arenas while any object in them lives, and a few survivors of a burst pin most of
them; so the image runs the operator with PYTHONMALLOC=malloc, every object comes from glibc's malloc, and
`malloc_trim` hands its free pages back (and merges its free chunks, so that the next allocations reuse them
rather than grow the heap). It runs at each look while the number of processes changes and for two minutes
after (a few ms each), after a full garbage collection when that number has stopped changing for 20 s and
again at the end; never while it stays the same.
Measured after 2,000 processes at once (bench/scale.py): idle RSS 128-135 MiB, against 170-178 MiB with
neither (README, Performance)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import time
from typing import Callable

log = logging.getLogger(__name__)

CHECK_SECONDS = 10.0  # how often the operator looks at its load (a sum over the executors: no request)
SETTLE_SECONDS = 20.0  # the load unchanged this long: collect the garbage and trim
REST_SECONDS = 120.0  # ... this long: collect and trim a last time, then nothing until the load changes


def glibc_malloc_trim() -> Callable[[bool], None] | None:
    """glibc's malloc_trim(0), after a full garbage collection if asked; None where the C library has no
    malloc_trim (musl, macOS): then nothing is trimmed. A finished process's objects refer to one another (its
    tasks, followers, callbacks), and at rest the collector may not run for minutes; but a full collection of
    a large heap takes a few hundred ms of the event loop, so it comes only at rest (HeapTrimmer says when)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int

    def trim(collect: bool) -> None:
        before, started = rss_mib(), time.monotonic()
        if collect:
            gc.collect()
        malloc_trim(0)
        log.debug("returned free memory to the system in %.0f ms%s: RSS %s -> %s MiB",
                  (time.monotonic() - started) * 1000, " after a full collection" if collect else "", before, rss_mib())
    return trim


def rss_mib() -> str:
    """This process's resident memory in MiB, for a log line ("?" where /proc does not say)."""
    try:
        with open("/proc/self/statm") as statm:
            return f"{int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20:.0f}"
    except (OSError, ValueError, IndexError):
        return "?"


class HeapTrimmer:
    """Decides when to trim from the number of processes the operator holds, looked at every CHECK_SECONDS."""

    def __init__(self, trim: Callable[[bool], None] | None) -> None:
        self._trim = trim
        self._load = 0
        self._changed_at = 0.0
        self._settled = True  # collected and trimmed since the load last changed
        self._rested = True  # ... and again REST_SECONDS after: nothing more to do until it changes
        self.trims = 0

    def observe(self, load: int, now: float) -> bool:
        """Notes the present load; trims (and says so) while it changes and for a while after."""
        if load != self._load:
            self._load, self._changed_at, self._settled, self._rested = load, now, False, False
            return self._do(collect=False)
        quiet = now - self._changed_at
        if self._rested:
            return False
        # What finished processes still hold goes in the seconds after the last of them (connections, tasks,
        # garbage in cycles): a collection once the load has settled, cheap trims after it, and a last
        # collection when the load has stayed the same for REST_SECONDS.
        if quiet >= REST_SECONDS:
            self._rested = True
            return self._do(collect=True)
        if quiet >= SETTLE_SECONDS and not self._settled:
            self._settled = True
            return self._do(collect=True)
        return self._do(collect=False) if self._settled else False

    def _do(self, collect: bool) -> bool:
        if self._trim is None:
            return False
        self._trim(collect)
        self.trims += 1
        return True
