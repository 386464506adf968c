"""Pod logs to Colonies: follow every container, batch lines, ship them in order, each line once.

A follower reads one container's log with timestamps and re-opens the stream when it ends while the
container still runs (kubelet log rotation, API server restarts). A shipper batches the lines of all
containers of one process attempt into few `addlog` RPCs. (The text of a log line, and ReplayCursor, are in
core/loglines.py.)

Exactly once:
- after a reconnect, the stream is asked from the second of the newest line read (`sinceTime` has one-second
  precision). The kubelet then sends, in file order, every line stamped at or after that second, and the first
  of them are exactly the lines already read with such stamps: `ReplayCursor` counts them, so a line that
  stdout and stderr interleaved out of time order is neither dropped nor repeated;
- after an operator restart, Colonies holds what was shipped: the lines of this attempt (logged after the
  attempt's start) are counted per container, and the follower skips that many from the log's beginning.
- a batch that fails is kept and sent again, in order, before any later line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import AsyncIterator, Awaitable, Callable

from ..colonies import ColoniesError
from ..core.loglines import ReplayCursor, split_timestamp
from . import metrics

log = logging.getLogger(__name__)

MAX_BATCH_LINES = 2000
MAX_BATCH_BYTES = 512 * 1024
FLUSH_INTERVAL_SECONDS = 1.0
MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # while Colonies is unreachable; beyond it the oldest lines go
TAIL_LINES = 20
MAX_TAIL_LINE_BYTES = 500
RETRY_SECONDS = 2.0
# A stream that delivered and then ended or broke while its container runs (the API server's timeout, a restart)
# is re-opened soon. One that could not be opened at all (the API server cannot reach the node's kubelet, a 5xx,
# a refusal) is retried after 30 s, then every minute: a node whose kubelet is gone, with a hundred containers,
# costs two requests a second rather than twenty, and a fake node that serves no log two or three per container.
# Whatever the pause, the container's end brings one last read at once: what the kubelet still has is read, from
# where the stream stopped, and closing is not delayed.
REOPEN_SECONDS = 0.5
OPEN_RETRY_SECONDS = (30.0, 60.0)
DONE_CHECK_SECONDS = 0.5  # how often a pause looks at the container (the cache: no request)


def open_retry_delay(failed_opens: int) -> float:
    """The pause after the `failed_opens`-th stream in a row that could not be opened (1 for the first)."""
    return OPEN_RETRY_SECONDS[min(failed_opens, len(OPEN_RETRY_SECONDS)) - 1]


class LogShipper:
    """Batches the lines of one attempt and sends them with `send(message)`, in order, each once."""

    def __init__(self, send: Callable[[str], Awaitable[None]], on_refused: Callable[[ColoniesError], None],
                 name: str) -> None:
        self._send = send
        self._on_refused = on_refused  # 403/400: the process may no longer be ours; the reconciler checks
        self._name = name
        self._lines: collections.deque[str] = collections.deque()
        self._bytes = 0
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.dropped = 0
        self.closed = False

    def add(self, line: str) -> None:
        if self.closed:
            return
        self._lines.append(line)
        self._bytes += len(line) + 1
        self.tail.append(line)
        while self._bytes > MAX_BUFFERED_BYTES:
            self._bytes -= len(self._lines.popleft()) + 1
            if not self.dropped:
                log.warning("%s: Colonies has taken no logs for too long: dropping the oldest lines beyond %d MiB",
                            self._name, MAX_BUFFERED_BYTES // (1024 * 1024))
            self.dropped += 1
        full = len(self._lines) >= MAX_BATCH_LINES or self._bytes >= MAX_BATCH_BYTES
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later(0 if full else FLUSH_INTERVAL_SECONDS))

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while not self.closed and not await self.flush():
            await asyncio.sleep(RETRY_SECONDS)

    async def flush(self) -> bool:
        """Sends everything buffered; False if Colonies did not take it (the lines stay, in order)."""
        async with self._lock:
            while self._lines and not self.closed:
                batch, size = [], 0
                for line in self._lines:
                    if len(batch) >= MAX_BATCH_LINES or size >= MAX_BATCH_BYTES:
                        break
                    batch.append(line)
                    size += len(line) + 1
                try:
                    await self._send("".join(line + "\n" for line in batch))
                except ColoniesError as err:
                    if err.status in (400, 403):
                        self._on_refused(err)
                    return False
                for _ in batch:
                    self._lines.popleft()
                self._bytes -= size
                metrics.log_shipped(len(batch), size)
            return not self._lines

    def close(self) -> None:
        """Drops whatever is left (the attempt is over) and stops retrying."""
        self.closed = True
        self._lines.clear()
        if self._flusher and not self._flusher.done():
            self._flusher.cancel()

    def failure_tail(self) -> list[str]:
        """The last lines of the log for a failed process's errors: NUL-free, each line capped."""
        lines = [line.replace("\x00", "\u2400")[:MAX_TAIL_LINE_BYTES] for line in self.tail]
        return ["last lines of the log:\n" + "\n".join(lines)] if lines else []


OpenStream = Callable[[str | None], AsyncIterator[bytes]]


class ContainerFollower:
    """Follows one container's log until the container has terminated and its stream is drained."""

    def __init__(self, *, open_stream: OpenStream, container_done: Callable[[], bool], shipper: LogShipper,
                 prefix: str, skip_lines: int, name: str, on_finished: Callable[[], None],
                 limiters: tuple[asyncio.Semaphore, ...],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] | None = None) -> None:
        self._open_stream = open_stream
        self._sleep, self._clock = sleep, clock  # a test's virtual time; the event loop's by default
        self._container_done = container_done
        self._shipper = shipper
        self._prefix = prefix
        self._skip_from_start = skip_lines  # already in Colonies (shipped before an operator restart)
        self.cursor = ReplayCursor()
        self.name = name
        self._on_finished = on_finished
        self._limiters = limiters  # per process, then in total: streams are connections to the API server
        self.finished = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=name)

    def stop(self) -> None:
        self.task.cancel()

    async def _run(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                for limiter in self._limiters:
                    await stack.enter_async_context(limiter)
                await self._follow()
        except asyncio.CancelledError:
            pass
        finally:
            self.finished.set()
            self._on_finished()

    async def _follow(self) -> None:
        failed_opens = 0
        while True:
            done_before = self._container_done()
            since = self.cursor.since_time()
            replayed = self.cursor.replayed if since else 0  # read already: skip without counting again
            delivered = False
            try:
                async for raw in self._open_stream(since):
                    delivered = True
                    timestamp, text = split_timestamp(raw)
                    if replayed > 0:
                        replayed -= 1
                        continue
                    self.cursor.observe(timestamp)
                    if self._skip_from_start > 0:  # in Colonies already
                        self._skip_from_start -= 1
                        continue
                    self._shipper.add(self._prefix + text)
                failed_opens = 0
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the stream broke, could not be opened, or the pod is gone
                if getattr(err, "status", None) == 404 or done_before:
                    return  # the pod is gone, or this was the last read after the container ended
                failed_opens = 0 if delivered else failed_opens + 1
                if failed_opens <= 1:
                    log.info("log stream %s %s (%s); re-opening it", self.name,
                             "broke" if delivered else "could not be opened", err)
                await self._pause(open_retry_delay(failed_opens) if failed_opens else REOPEN_SECONDS)
                continue
            # A stream that ended after the container terminated has delivered everything.
            if done_before:
                return
            await self._pause(REOPEN_SECONDS)

    async def _pause(self, seconds: float) -> None:
        """Sleeps `seconds`, or less if the container ends meanwhile (then its last lines are read at once)."""
        now = self._clock or asyncio.get_running_loop().time
        deadline = now() + seconds
        while not self._container_done() and (left := deadline - now()) > 0:
            await self._sleep(min(DONE_CHECK_SECONDS, left))
