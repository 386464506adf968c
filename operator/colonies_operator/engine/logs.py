"""Pod logs to Colonies: follow every container, batch lines, ship them in order, each line once.

A follower reads one container's log with timestamps and re-opens the stream when it ends while the
container still runs (an API server's timeout or restart). A shipper batches the lines of all containers of one
process attempt into few `addlog` RPCs. (The text of a log line, positions and checkpoints are in
core/loglines.py.)

Exactly once:
- a follower knows the position of the last line it read (the kubelet's time and a digest of the line). A stream
  is re-opened a little before that time (`sinceTime` has one-second precision, and stdout and stderr lines reach
  the log slightly out of time order); the lines up to that one are passed over, and what follows is new. A
  position the kubelet no longer serves (it rotated the file, and serves only the current one) means every line
  it serves is new: they are shipped, and the process log says that lines in between may be missing;
- after an operator restart, the positions come from the Job (written every few seconds, with the Colonies time
  of the newest entry they account for), and the lines of the entries Colonies holds after that are passed over
  as they come (attempt_logs.py);
- a batch that fails is kept and sent again, in order, before any later line; when the failure leaves it unknown
  whether Colonies stored it (a timeout, a 5xx), the newest entry Colonies holds is read first, and the batch is
  sent again only if it is not that one.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from ..colonies import ColoniesError, LogEntry
from ..colonies.wire import LOG_NUL_REPLACEMENT
from ..core.loglines import (
    CONTINUED,
    OPERATOR_LINE,
    AlreadyShipped,
    LogPosition,
    digest,
    normalize_timestamp,
    seconds_after,
)
from . import metrics

log = logging.getLogger(__name__)

MAX_BATCH_LINES = 2000
MAX_BATCH_BYTES = 512 * 1024  # an entry Colonies stores, and a restarted operator reads back (a few at a time)
FLUSH_INTERVAL_SECONDS = 1.0
MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # while Colonies is unreachable; beyond it the oldest lines go
# The followers of a process stop reading while this much of it is not shipped yet: a container that writes
# faster than Colonies takes its lines waits in the kubelet's file, not in the operator's memory.
HIGH_WATER_BYTES = 4 * 1024 * 1024
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
LOCATE_SECONDS = 2  # a line stamped this much after a position, before it was found: the position is gone


def open_retry_delay(failed_opens: int) -> float:
    """The pause after the `failed_opens`-th stream in a row that could not be opened (1 for the first)."""
    return OPEN_RETRY_SECONDS[min(failed_opens, len(OPEN_RETRY_SECONDS)) - 1]


Cursor = tuple[str, str, "int | None"]  # (stamp, text of the line's first piece, pieces so far or None: whole)


def position_of(cursor: Cursor | None) -> LogPosition | None:
    return None if cursor is None else LogPosition(cursor[0], digest(cursor[1]), cursor[2])


class LogShipper:
    """Batches the lines of one attempt and sends them with `send(message)`, in order, each once.

    `newest()` reads the newest entry of the process's log (None when there is none): it tells whether a batch
    whose answer was lost was stored, and the Colonies time of a stored batch (its mark). After each batch stored,
    `on_stored(mark)` is called, with a mark every `mark_seconds()` from the first batch (None otherwise): a
    process that logs for a few seconds only costs no mark."""

    def __init__(self, send: Callable[[str], Awaitable[None]], on_refused: Callable[[ColoniesError], None],
                 name: str, *, newest: Callable[[], Awaitable[LogEntry | None]] | None = None,
                 on_stored: Callable[[int | None], None] | None = None,
                 mark_seconds: Callable[[], float] = lambda: 10.0,
                 clock: Callable[[], float] | None = None) -> None:
        self._send = send
        self._on_refused = on_refused  # 403/400: the process may no longer be ours; the reconciler checks
        self._name = name
        self._newest, self._on_stored, self._mark_seconds = newest, on_stored, mark_seconds
        self._clock = clock or asyncio.get_running_loop().time
        # (text, source, cursor): `source.shipped` becomes `cursor` once the line is stored
        self._lines: collections.deque[tuple[str, Any, Any]] = collections.deque()
        self._bytes = 0
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task | None = None
        self._flusher_waits = False  # the flusher waits FLUSH_INTERVAL_SECONDS before sending
        # (lines, size, message) of the last batch sent, when its failure left it unknown whether it was stored
        self._unsure: tuple[int, int, str] | None = None
        self._last_mark = 0  # the Colonies time of the newest batch known stored
        self._marked_at: float | None = None
        self._room = asyncio.Event()
        self._room.set()
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.dropped = 0
        self.closed = False

    def add(self, line: str, source: Any = None, cursor: Any = None) -> None:
        if self.closed:
            return
        self._lines.append((line, source, cursor))
        self._bytes += len(line) + 1
        self.tail.append(line)
        while self._bytes > MAX_BUFFERED_BYTES:
            self._bytes -= len(self._lines.popleft()[0]) + 1
            self._unsure = None  # that batch is no longer at the head: what is left is sent
            if not self.dropped:
                log.warning("%s: Colonies has taken no logs for too long: dropping the oldest lines beyond %d MiB",
                            self._name, MAX_BUFFERED_BYTES // (1024 * 1024))
            self.dropped += 1
        if self._bytes >= HIGH_WATER_BYTES:
            self._room.clear()
        full = self._whole_batch()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later(0 if full else FLUSH_INTERVAL_SECONDS))
        elif full and self._flusher_waits:  # a full batch goes at once, not after the wait
            self._flusher.cancel()
            self._flusher_waits = False
            self._flusher = asyncio.create_task(self._flush_later(0))

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    @property
    def full(self) -> bool:
        """Followers wait (`room()`) before they read on."""
        return not self._room.is_set()

    async def room(self) -> None:
        await self._room.wait()

    def note(self, text: str) -> None:
        """A line of the operator's own ("ColonyOS: ...") in the process log, in order with the others."""
        self.add(OPERATOR_LINE + text)

    async def _flush_later(self, delay: float) -> None:
        """Whole batches at once; what is left (less than a batch) after FLUSH_INTERVAL_SECONDS, unless a whole
        batch comes first; after a failure, everything RETRY_SECONDS later."""
        while not self.closed and self._lines:
            if delay:
                self._flusher_waits = True
                await asyncio.sleep(delay)
                self._flusher_waits = False
            if await self.flush(whole_batches=not delay):
                delay = FLUSH_INTERVAL_SECONDS
            else:
                delay = RETRY_SECONDS

    def _batch(self) -> tuple[int, int, str]:
        """(lines, size, message) of the next batch: at most MAX_BATCH_LINES lines and MAX_BATCH_BYTES (a single
        longer line alone)."""
        count, size, texts = 0, 0, []
        for text, _, _ in self._lines:
            if count >= MAX_BATCH_LINES or (count and size + len(text) + 1 > MAX_BATCH_BYTES):
                break
            texts.append(text)
            count += 1
            size += len(text) + 1
        texts.append("")
        return count, size, "\n".join(texts).replace("\x00", LOG_NUL_REPLACEMENT)

    def _whole_batch(self) -> bool:
        return len(self._lines) >= MAX_BATCH_LINES or self._bytes >= MAX_BATCH_BYTES

    async def flush(self, *, whole_batches: bool = False) -> bool:
        """Sends everything buffered (with `whole_batches`, as long as a whole batch is); False if Colonies did
        not take it (the lines stay, in order)."""
        async with self._lock:
            while self._lines and not self.closed:
                if whole_batches and not self._whole_batch() and self._unsure is None:
                    return True
                if self._unsure is not None:
                    # That very batch (more lines may have come since) is looked for as the newest entry.
                    count, size, message = self._unsure
                    try:
                        newest = await self._newest()  # type: ignore[misc]
                    except ColoniesError as err:
                        log.debug("%s: cannot tell yet whether Colonies stored the last batch (%s)", self._name, err)
                        return False
                    self._unsure = None
                    if newest is not None and newest.message == message and newest.timestamp > self._last_mark:
                        log.info("%s: Colonies had stored the batch whose answer was lost; not sending it again",
                                 self._name)
                        self._stored(count, size, newest.timestamp)
                        continue
                count, size, message = self._batch()
                try:
                    await self._send(message)
                except ColoniesError as err:
                    if err.status in (400, 403):
                        self._on_refused(err)
                    elif self._newest is not None and (err.status is None or err.status >= 500):
                        self._unsure = (count, size, message)  # a timeout or a gateway's error: maybe stored
                    return False
                self._stored(count, size, await self._mark(message))
            return not self._lines

    async def _mark(self, message: str) -> int | None:
        """The Colonies time of the batch just stored, when one is due."""
        if self._newest is None:
            return None
        if self._marked_at is None:
            self._marked_at = self._clock()
        if self._clock() - self._marked_at < self._mark_seconds():
            return None
        self._marked_at = self._clock()
        try:
            newest = await self._newest()
        except ColoniesError:
            return None
        return newest.timestamp if newest is not None and newest.message == message else None

    def _stored(self, count: int, size: int, mark: int | None) -> None:
        for _ in range(count):
            _, source, cursor = self._lines.popleft()
            if source is not None:
                source.shipped = cursor
        self._bytes -= size
        if self._bytes < HIGH_WATER_BYTES // 2:
            self._room.set()
        metrics.log_shipped(count, size)
        if mark is not None:
            self._last_mark = mark
        if self._on_stored is not None:
            self._on_stored(mark)

    def close(self) -> None:
        """Drops whatever is left (the attempt is over) and stops retrying."""
        self.closed = True
        self._lines.clear()
        self._room.set()
        if self._flusher and not self._flusher.done():
            self._flusher.cancel()

    def failure_tail(self) -> list[str]:
        """The last lines of the log for a failed process's errors: NUL-free, each line capped."""
        lines = [line.replace("\x00", "\u2400")[:MAX_TAIL_LINE_BYTES] for line in self.tail]
        return ["last lines of the log:\n" + "\n".join(lines)] if lines else []


OpenStream = Callable[[str | None, bool], AsyncIterator[bytes]]  # (sinceTime, follow)


class _Gone(Exception):
    """The position looked for is not in the file the kubelet serves (rotated away): `certain` when a later line
    came first, else the stream ended without it."""

    def __init__(self, stamp: str, certain: bool) -> None:
        super().__init__(stamp)
        self.stamp, self.certain = stamp, certain


class ContainerFollower:
    """Follows one container's log until the container has terminated and its stream is drained.

    It reads from `position` (None: the beginning), passing over the lines `shipped_ahead` holds. It needs a slot
    of each of `limiters` (per process, then in total) to follow; one still waiting when `final_read` is set (the
    process is ending) reads the log once, in full, with a slot of `final_limiter` instead."""

    def __init__(self, *, open_stream: OpenStream, container_done: Callable[[], bool], shipper: LogShipper,
                 prefix: str, position: LogPosition | None = None, shipped_ahead: AlreadyShipped | None = None,
                 name: str, on_finished: Callable[[], None], limiters: tuple[asyncio.Semaphore, ...],
                 final_limiter: asyncio.Semaphore | None = None, final_read: asyncio.Event | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] | None = None) -> None:
        self._open_stream = open_stream
        self._sleep, self._clock = sleep, clock  # a test's virtual time; the event loop's by default
        self._container_done = container_done
        self._shipper = shipper
        self._prefix = prefix
        self._ahead = shipped_ahead if shipped_ahead is not None and len(shipped_ahead) else None
        self._start = position  # shipped before this follower began (from the Job's checkpoint)
        self._read: Cursor | None = None  # the last piece read
        self.shipped: Cursor | None = None  # the last piece Colonies has stored (set by the shipper)
        self._decoder: Any = None  # for the pieces of a long line
        # A position is gone: the next new line tells from when to when lines may be missing ("": from the start,
        # when Colonies holds lines of the container but no position says where they were).
        self._gap_from: str | None = None
        if position is None and self._ahead is not None and self._ahead.holds_container_lines:
            self._gap_from = ""
        self._delivered = False  # the current stream delivered something
        self.name = name
        self._on_finished = on_finished
        self._limiters = limiters
        self._final_limiter = final_limiter or asyncio.Semaphore(1)
        self._final_read = final_read or asyncio.Event()
        self.reading = False  # holds a slot and reads
        self.waiting = False  # for the shipper to take its lines (not stalled)
        self.progress_at = self._now()  # when it last read a line (or started reading)
        self.finished = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=name)

    def stop(self) -> None:
        self.task.cancel()

    @property
    def pending(self) -> bool:
        """Lines Colonies holds beyond the checkpoint position are still to be passed over."""
        return self._ahead is not None and len(self._ahead) > 0

    def shipped_position(self) -> LogPosition | None:
        return position_of(self.shipped) if self.shipped is not None else self._start

    def _now(self) -> float:
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time
        return self._clock()

    async def _run(self) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                if not await self._take_slots(stack):
                    await stack.enter_async_context(self._final_limiter)
                self.reading, self.progress_at = True, self._now()
                await self._follow()
        except asyncio.CancelledError:
            pass
        finally:
            self.reading = False
            self.finished.set()
            self._on_finished()

    async def _take_slots(self, stack: contextlib.AsyncExitStack) -> bool:
        """True with a slot of every limiter; False, holding none, if the final read was asked for first."""
        for limiter in self._limiters:
            acquire = asyncio.ensure_future(limiter.acquire())
            final = asyncio.ensure_future(self._final_read.wait())
            try:
                await asyncio.wait({acquire, final}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                final.cancel()
                if not acquire.done():
                    acquire.cancel()
                    await asyncio.gather(acquire, return_exceptions=True)
            if acquire.cancelled() or acquire.exception() is not None:
                await stack.aclose()  # the slots taken so far go back
                return False
            stack.callback(limiter.release)
        return True

    async def _follow(self) -> None:
        failed_opens = 0
        catch_up = self._start is not None  # a position from elsewhere: first what the kubelet holds from it
        unsure = 0  # streams in a row that ended without the position (one cut short would too)
        while True:
            done_before = self._container_done()
            position = position_of(self._read) if self._read is not None else self._start
            self._delivered = False
            try:
                if catch_up and position is not None:
                    # Up to what the kubelet holds now (a stream that follows would wait for new lines before
                    # it could tell that the position is gone), then on from there.
                    await self._read_stream(position, follow=False)
                    catch_up, failed_opens, unsure = False, 0, 0
                    if done_before:
                        return
                    continue
                await self._read_stream(position, follow=not done_before)
                failed_opens = unsure = 0
            except asyncio.CancelledError:
                raise
            except _Gone as gone:
                unsure = 0 if gone.certain else unsure + 1
                if unsure == 1:
                    catch_up = True
                    continue
                # The kubelet no longer serves the position: every line it serves is new.
                self._gap_from, unsure = gone.stamp, 0
                self._read = self._start = None
                catch_up = False
                continue
            except Exception as err:  # the stream broke, could not be opened, or the pod is gone
                if getattr(err, "status", None) == 404 or done_before:
                    return  # the pod is gone, or this was the last read after the container ended
                failed_opens = 0 if self._delivered else failed_opens + 1
                if failed_opens <= 1:
                    log.info("log stream %s %s (%s); re-opening it", self.name,
                             "broke" if self._delivered else "could not be opened", err)
                catch_up = True
                await self._pause(open_retry_delay(failed_opens) if failed_opens else REOPEN_SECONDS)
                continue
            # A stream that ended after the container terminated has delivered everything.
            if done_before:
                return
            catch_up = True
            await self._pause(REOPEN_SECONDS)

    async def _read_stream(self, position: LogPosition | None, *, follow: bool) -> None:
        """Reads one stream, from `position` (its line passed over) or from the beginning. Raises _Gone when the
        position is not in what the kubelet serves."""
        found = position is None
        skipping: int | None = 0  # pieces of the position's line still to pass over (None: all of them)
        line_start = True
        async for piece in self._open_stream(position.since_time() if position is not None else None, follow):
            self._delivered = True
            whole = piece.endswith(b"\n")
            if not found:
                assert position is not None
                if line_start:
                    stamp, text = self._first_piece(piece)
                    if stamp == position.stamp and digest(text) == position.digest:
                        found = True
                        self._read = (stamp, text, None if whole else 1)
                        if not whole:
                            skipping = None if position.pieces is None else position.pieces - 1
                    elif stamp > seconds_after(position.stamp, LOCATE_SECONDS):
                        raise _Gone(position.stamp, certain=True)
                line_start = whole
                continue
            if skipping is None or skipping > 0:  # the rest of the position's line, shipped already
                read = self._read
                assert read is not None and read[2] is not None
                self._decoder.decode(piece[:-1] if whole else piece, final=whole)
                self._read = (read[0], read[1], None if whole else read[2] + 1)
                skipping = 0 if whole else (None if skipping is None else skipping - 1)
                continue
            self._take(piece)
            if self._shipper.full:  # Colonies is behind: the lines wait in the kubelet's file
                self.waiting = True
                await self._shipper.room()
                self.waiting, self.progress_at = False, self._now()
        if not found:
            assert position is not None
            raise _Gone(position.stamp, certain=False)

    def _first_piece(self, piece: bytes) -> tuple[str, str]:
        """(timestamp, text) of the first piece of a line."""
        whole = piece.endswith(b"\n")
        if whole:
            text = piece[:-1].decode("utf-8", "replace").rstrip("\r")
        else:
            self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
            text = self._decoder.decode(piece)
        timestamp, _, rest = text.partition(" ")
        stamp = normalize_timestamp(timestamp)
        if not stamp:
            raise ValueError(f"not a timestamped log line: {text[:80]!r}")
        return stamp, rest

    def _take(self, piece: bytes) -> None:
        """One piece read after the position: shipped, unless Colonies holds it already."""
        self.progress_at = self._now()
        whole = piece.endswith(b"\n")
        read = self._read
        if read is None or read[2] is None:  # a new line
            stamp, text = self._first_piece(piece)
            cursor: Cursor = (stamp, text, None if whole else 1)
        else:  # the next piece of a long line
            text = self._decoder.decode(piece[:-1] if whole else piece, final=whole)
            if whole:
                text = text.rstrip("\r")
            cursor = (read[0], read[1], None if whole else read[2] + 1)
        self._read = cursor
        line = self._prefix + text + ("" if whole else CONTINUED)
        if self._ahead is not None:
            if self._ahead.consume(line):
                self.shipped = cursor  # in Colonies already
                self._gap_from = None
                return
            self._ahead = None
        if self._gap_from is not None:
            when = (f"between {self._gap_from} and {cursor[0]}" if self._gap_from
                    else f"before {cursor[0]}, after those shipped,")
            self._shipper.note(f"{self._prefix}lines written {when} may be missing: the kubelet rotated them out "
                               "of the log file it serves (only the current one) before the operator read them")
            log.warning("%s: lines written %s may be missing (the kubelet rotated its log file before they were "
                        "read)", self.name, when)
            self._gap_from = None
        self._shipper.add(line, self, cursor)

    async def _pause(self, seconds: float) -> None:
        """Sleeps `seconds`, or less if the container ends meanwhile (then its last lines are read at once)."""
        now = self._clock or asyncio.get_running_loop().time
        deadline = now() + seconds
        while not self._container_done() and (left := deadline - now()) > 0:
            await self._sleep(min(DONE_CHECK_SECONDS, left))
