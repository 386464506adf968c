"""The text of pod logs as the operator reads and ships it (pure: no I/O).

A `timestamps=true` log stream prefixes each line with the kubelet's RFC 3339 time; `split_timestamp` separates
them and `normalize_timestamp` makes their string order the time order. `LineSplitter` cuts a byte stream into
lines, and a line longer than PIECE_BYTES into pieces of that size (each but the last shipped ending with
CONTINUED). With several containers in a process, each line shipped starts with "[<pod index>/<container>] "
(`line_prefix`).

Where a container's log was shipped up to is a `LogPosition`: the kubelet's time of the last line (or piece)
shipped and a digest of that line, which a new stream, opened a little before that time (`since_time`), finds
again (whatever the kubelet rotated meanwhile). The positions are kept on the Job (`Checkpoint`) with the
Colonies time of the newest log entry they account for, so a restarted operator reads only the entries after
it (`AlreadyShipped`).

The operator's own lines start with "ColonyOS: " (`note_line`); when Kubernetes replaces a disrupted pod, a
`replacement_line` tells the new pod's lines from the old one's, also for an operator that restarts and reads
what it shipped (`replaced_pod`).
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import hashlib
import json
import re
from typing import Iterable

_REPLACEMENT = re.compile(r"^ColonyOS: pod (\S+) continues in pod (\S+) \(replacing ")

PIECE_BYTES = 256 * 1024  # a longer line is read, and shipped, in pieces of this many bytes
CONTINUED = "\u21a9"  # "↩" ends every piece of a long line but its last
WINDOW_SECONDS = 2  # a stream re-opened at a position starts this long before it (stdout/stderr interleave)
# The start of every line the operator itself adds to a process log (why it waits, a disrupted pod), as the
# official executors' debug lines.
OPERATOR_LINE = "ColonyOS: "


def line_prefix(pod_index: str, container: str, multi: bool) -> str:
    return f"[{pod_index}/{container}] " if multi else ""


def note_line(text: str) -> str:
    return OPERATOR_LINE + text


def replacement_line(index: str, pod: str, replaced: str) -> str:
    """The line that says a pod index goes on in a new pod: lines of that index after it are the new pod's."""
    return f"{OPERATOR_LINE}pod {index} continues in pod {pod} (replacing {replaced}); its log follows"


def replaced_pod(line: str) -> tuple[str, str] | None:
    """(pod index, new pod) when `line` is a replacement line."""
    match = _REPLACEMENT.match(line)
    return (match.group(1), match.group(2)) if match else None


_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def normalize_timestamp(timestamp: str) -> str:
    """RFC 3339 with exactly nine fractional digits, so that string order is time order ("" if invalid).
    The API server trims trailing zeros, and ".12Z" would otherwise sort after ".123Z"."""
    if len(timestamp) == 30 and timestamp[19] == "." and timestamp[29] == "Z" and timestamp[10] == "T" \
            and timestamp[:4].isdigit() and timestamp[20:29].isdigit():
        return timestamp  # the common case, nine digits already
    match = _TIMESTAMP.match(timestamp)
    if not match:
        return ""
    return f"{match.group(1)}.{(match.group(2) or '').ljust(9, '0')}Z"


def split_timestamp(raw: bytes) -> tuple[str, str]:
    """(timestamp, text) of one line of a `timestamps=true` log stream."""
    text = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
    timestamp, _, rest = text.partition(" ")
    normalized = normalize_timestamp(timestamp)
    if not normalized:
        raise ValueError(f"not a timestamped log line: {text[:80]!r}")
    return normalized, rest


def seconds_after(timestamp: str, seconds: int) -> str:
    """The normalized timestamp `seconds` later (earlier when negative)."""
    moved = dt.datetime.fromisoformat(timestamp[:19]) + dt.timedelta(seconds=seconds)
    return moved.strftime("%Y-%m-%dT%H:%M:%S") + timestamp[19:]


class LineSplitter:
    """Cuts a byte stream into lines (each ending with b"\\n") and, with `piece_bytes`, a longer line into pieces
    of exactly that many bytes (without b"\\n"), so the pieces of a line are the same whatever the network's
    chunks. Without `piece_bytes`, a line longer than `max_line_bytes` raises ValueError."""

    def __init__(self, piece_bytes: int | None = None, max_line_bytes: int = 64 * 1024 * 1024) -> None:
        self._piece, self._max = piece_bytes, max_line_bytes
        self._partial: list[bytes] = []
        self._partial_len = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        parts = chunk.split(b"\n")
        piece = self._piece or self._max
        for part in parts[:-1]:
            if not self._partial and len(part) <= piece:
                out.append(part + b"\n")  # the common case: a whole short line
            else:
                self._take(part, out, line_ends=True)
        if parts[-1]:
            self._take(parts[-1], out, line_ends=False)
        return out

    def _take(self, segment: bytes, out: list[bytes], *, line_ends: bool) -> None:
        self._partial.append(segment)
        self._partial_len += len(segment)
        if not line_ends and (self._piece is None or self._partial_len <= self._piece):
            if self._piece is None and self._partial_len > self._max:
                raise ValueError(f"a line of more than {self._max} bytes")
            return
        line = b"".join(self._partial) if len(self._partial) > 1 else self._partial[0]
        start = 0
        if self._piece is not None:  # whole pieces while more follows (a line of exactly one piece stays whole)
            while len(line) - start > self._piece:
                out.append(line[start:start + self._piece])
                start += self._piece
        rest = line[start:] if start else line
        if line_ends:
            out.append(rest + b"\n")
            self._partial, self._partial_len = [], 0
        else:
            self._partial, self._partial_len = [rest], len(rest)

    def end(self) -> bytes | None:
        """What is left when the stream ends without a final b"\\n" (a line cut short), if anything."""
        rest = b"".join(self._partial)
        self._partial, self._partial_len = [], 0
        return rest or None


def digest(text: str) -> str:
    """A short digest of a line's text (of its first piece, for a long line)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


@dataclasses.dataclass(frozen=True)
class LogPosition:
    """Where a container's log was read or shipped up to: the line stamped `stamp` whose first piece has `digest`,
    all of it (`pieces` None) or its first `pieces` pieces."""

    stamp: str
    digest: str
    pieces: int | None = None

    def since_time(self) -> str:
        """The `sinceTime` of a stream that holds this line and every later one (a little earlier: stdout and
        stderr lines reach the log slightly out of time order)."""
        return seconds_after(self.stamp, -WINDOW_SECONDS)[:19] + "Z"

    def __str__(self) -> str:
        return f"{self.stamp} {self.digest}" + (f" {self.pieces}" if self.pieces is not None else "")

    @classmethod
    def parse(cls, text: str) -> "LogPosition | None":
        parts = text.split()
        if len(parts) not in (2, 3) or not normalize_timestamp(parts[0]) or not re.fullmatch(r"[0-9a-f]{16}",
                                                                                             parts[1]):
            return None
        if len(parts) == 3 and not parts[2].isdigit():
            return None
        return cls(normalize_timestamp(parts[0]), parts[1], int(parts[2]) if len(parts) == 3 else None)


_POD_KEY = "pod "  # a checkpoint's key for the pod of an index: "pod 0"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """Per container (by "<pod index>/<container>"): its position, and the Colonies time (nanoseconds) of the
    newest log entry of the process that the position accounts for. Lines of the container in later entries come
    after the position. `pods`: the pod whose log each pod index's positions are in (one may replace another)."""

    containers: dict[str, tuple[int, LogPosition | None]]
    pods: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_annotation(self) -> str:
        data = {key: f"{mark} {position or '-'}" for key, (mark, position) in sorted(self.containers.items())}
        data.update({f"{_POD_KEY}{index}": pod for index, pod in sorted(self.pods.items())})
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_annotation(cls, text: str | None) -> "Checkpoint":
        """The checkpoint an annotation holds; an empty one for anything unreadable (then Colonies says more)."""
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return cls({})
        containers: dict[str, tuple[int, LogPosition | None]] = {}
        pods: dict[str, str] = {}
        for key, value in (data.items() if isinstance(data, dict) else ()):
            if str(key).startswith(_POD_KEY):
                pods[str(key)[len(_POD_KEY):]] = str(value)
                continue
            mark, _, rest = str(value).partition(" ")
            if not mark.isdigit():
                continue
            position = None if rest.strip() == "-" else LogPosition.parse(rest)
            if position is None and rest.strip() != "-":
                continue
            containers[str(key)] = (int(mark), position)
        return cls(containers, pods)


def message_lines(message: str) -> list[str]:
    """The lines of one Colonies log entry as the operator ships them (each ends with "\\n")."""
    lines = message.split("\n")
    return lines[:-1] if message.endswith("\n") else lines


class AlreadyShipped:
    """The lines of one container that Colonies holds after its checkpoint: a restarted operator reads the log
    from the checkpoint's position, and skips each line it finds here, in order. Lines the operator itself added
    (and lines the kubelet rotated away) are passed over. Only a digest per line is kept."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self._digests = array.array("q")
        self._next = 0
        self.holds_container_lines = False  # not only the operator's own
        for line in lines:
            self.add(line)

    def add(self, line: str) -> None:
        self._digests.append(hash(line))
        if not line.startswith(OPERATOR_LINE):
            self.holds_container_lines = True

    def __len__(self) -> int:
        return len(self._digests) - self._next

    def consume(self, line: str) -> bool:
        """True when `line` (as shipped, with its prefix) is in Colonies already; the first line that is not
        ends the matching: every later one is new."""
        if self._next >= len(self._digests):
            return False
        wanted = hash(line)
        try:
            found = self._digests.index(wanted, self._next)
        except ValueError:
            self._digests, self._next = array.array("q"), 0
            return False
        self._next = found + 1
        return True
