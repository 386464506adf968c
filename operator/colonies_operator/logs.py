"""Pod logs to Colonies: follow every container, batch lines, ship them in order, each line once.

A follower reads one container's log with timestamps and re-opens the stream when it ends while the
container still runs (kubelet log rotation, API server restarts), skipping what it already read. A
shipper batches the lines of all containers of one process into few `addlog` RPCs. Where a process has
several containers, each line is prefixed with "[<pod index>/<container>] ".

Exactly once across operator restarts: Colonies holds what was shipped, so an adopted process counts the
lines already there for each container and its followers skip that many.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from typing import Callable, Iterable, Iterator

from . import metrics
from .colonies import ColoniesUnreachable

log = logging.getLogger(__name__)

MAX_BATCH_LINES = 2000
MAX_BATCH_BYTES = 512 * 1024
FLUSH_INTERVAL_SECONDS = 1.0
MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # while Colonies is unreachable; beyond it the oldest lines go
TAIL_LINES = 20


def line_prefix(pod_index: str, container: str, multi: bool) -> str:
    return f"[{pod_index}/{container}] " if multi else ""


def count_shipped_lines(messages: Iterable[str], prefixes: Iterable[str]) -> dict[str, int]:
    """How many lines of each prefix ("" for a single container) Colonies already holds."""
    prefixes = list(prefixes)
    counts = {p: 0 for p in prefixes}
    for message in messages:
        for line in message.split("\n")[:-1] if message.endswith("\n") else message.split("\n"):
            for prefix in prefixes:
                if line.startswith(prefix):
                    counts[prefix] += 1
                    break
    return counts


class LogShipper:
    """Batches lines for one process and sends them with `send(message)`; thread-safe."""

    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one batch in flight, so batches stay in order
        self._lines: collections.deque[str] = collections.deque()
        self._bytes = 0
        self._last_flush = time.monotonic()
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.dropped = 0

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self._bytes += len(line) + 1
            self.tail.append(line)
            while self._bytes > MAX_BUFFERED_BYTES:
                self._bytes -= len(self._lines.popleft()) + 1
                if not self.dropped:
                    log.warning("Colonies has been unreachable too long: dropping the oldest log lines beyond "
                                "%d MiB buffered", MAX_BUFFERED_BYTES // (1024 * 1024))
                self.dropped += 1
            full = len(self._lines) >= MAX_BATCH_LINES or self._bytes >= MAX_BATCH_BYTES
        if full:
            self.flush()

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_SECONDS:
            self.flush()

    def flush(self) -> bool:
        """Sends everything buffered; False if Colonies could not be reached (the lines stay buffered)."""
        with self._send_lock:
            self._last_flush = time.monotonic()
            while True:
                with self._lock:
                    batch, size = [], 0
                    while self._lines and len(batch) < MAX_BATCH_LINES and size < MAX_BATCH_BYTES:
                        batch.append(self._lines[0])
                        size += len(self._lines.popleft()) + 1
                    self._bytes -= size
                if not batch:
                    return True
                try:
                    self._send("".join(line + "\n" for line in batch))
                except ColoniesUnreachable:
                    with self._lock:
                        self._lines.extendleft(reversed(batch))
                        self._bytes += size
                    return False
                metrics.log_shipped(len(batch), size)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._lines)


class StreamPosition:
    """Where a follower is in a container's log: the last timestamp read and how many lines carried it,
    plus how many lines to skip that an earlier operator already shipped."""

    def __init__(self, skip_lines: int = 0) -> None:
        self.skip_lines = skip_lines
        self.last_timestamp = ""
        self.lines_at_last_timestamp = 0
        self.lines_read = 0

    def accept(self, timestamp: str, resuming: bool) -> bool:
        """True if the line with this timestamp is new. After a reconnect, lines up to the last position
        are replayed by the API server (sinceTime has one-second precision) and are skipped here."""
        if resuming and self.last_timestamp:
            if timestamp < self.last_timestamp:
                return False
            if timestamp == self.last_timestamp and self._replayed_at_last < self.lines_at_last_timestamp:
                self._replayed_at_last += 1
                return False
        if timestamp == self.last_timestamp:
            self.lines_at_last_timestamp += 1
        else:
            self.last_timestamp, self.lines_at_last_timestamp = timestamp, 1
        self.lines_read += 1
        return self.lines_read > self.skip_lines

    def begin_resume(self) -> None:
        self._replayed_at_last = 0

    def since_time(self) -> str | None:
        """An RFC 3339 time at one-second precision, at or before the last line read."""
        return self.last_timestamp[:19] + "Z" if self.last_timestamp else None


def split_timestamped_lines(chunks: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """(timestamp, text) for each line of a `timestamps=true` log stream."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            yield _split_timestamp(raw)
    if pending:
        yield _split_timestamp(pending)


_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def normalize_timestamp(timestamp: str) -> str:
    """RFC 3339 with exactly nine fractional digits, so that string order is time order ("" if invalid).
    The API server trims trailing zeros, and ".12Z" would otherwise sort after ".123Z"."""
    match = _TIMESTAMP.match(timestamp)
    if not match:
        return ""
    return f"{match.group(1)}.{(match.group(2) or '').ljust(9, '0')}Z"


def _split_timestamp(raw: bytes) -> tuple[str, str]:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    timestamp, _, rest = text.partition(" ")
    normalized = normalize_timestamp(timestamp)
    if not normalized:
        raise ValueError(f"not a timestamped log line: {text[:80]!r}")
    return normalized, rest


class ContainerFollower(threading.Thread):
    """Follows one container's log until the container has terminated and the stream is drained."""

    def __init__(self, *, open_stream: Callable[[str | None], Iterable[bytes]], container_done: Callable[[], bool],
                 shipper: LogShipper, prefix: str, position: StreamPosition, stop: threading.Event,
                 name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._open_stream = open_stream
        self._container_done = container_done
        self._shipper = shipper
        self._prefix = prefix
        self.position = position
        self._stop = stop
        self.finished = threading.Event()

    def run(self) -> None:
        resuming = False
        failures = 0
        try:
            while not self._stop.is_set():
                done_before = self._container_done()
                try:
                    self.position.begin_resume()
                    for timestamp, text in split_timestamped_lines(self._open_stream(self.position.since_time())):
                        if self.position.accept(timestamp, resuming):
                            self._shipper.add(self._prefix + text)
                        if self._stop.is_set():
                            return
                    failures = 0
                except Exception as err:  # the stream broke: re-open it after a pause
                    failures += 1
                    if failures == 1:
                        log.info("log stream %s broke (%s); re-opening it", self.name, err)
                    self._stop.wait(min(5.0, 0.2 * 2 ** failures))
                # A stream that ended after the container terminated has delivered everything.
                if done_before:
                    return
                resuming = True
                if not self._container_done():
                    self._stop.wait(0.5)
        finally:
            self.finished.set()


def ship_errors(shipper: LogShipper) -> list[str]:
    """The last lines of the log, for the errors of a failed process."""
    lines = list(shipper.tail)
    return ["last lines of the log:\n" + "\n".join(lines)] if lines else []


__all__ = ["ContainerFollower", "LogShipper", "StreamPosition", "count_shipped_lines",
           "line_prefix", "ship_errors", "split_timestamped_lines"]
