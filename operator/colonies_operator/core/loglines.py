"""The text of pod logs as the operator reads and ships it (pure: no I/O).

A `timestamps=true` log stream prefixes each line with the kubelet's RFC 3339 time; `split_timestamp` separates
them and `normalize_timestamp` makes their string order the time order. `ReplayCursor` remembers where a
follower is in terms a reconnect can use (`sinceTime`). With several containers in a process, each line
shipped starts with "[<pod index>/<container>] " (`line_prefix`). The operator's own lines start with "ColonyOS: "
(`note_line`); when Kubernetes replaces a disrupted pod, a `replacement_line` tells the new pod's lines from the
old one's, also for an operator that restarts and counts what it shipped.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Iterable, Iterator


# The operator's own lines in a process log (why it waits, a disrupted pod), as the official executors' debug lines.
NOTE_PREFIX = "ColonyOS: "
_REPLACEMENT = re.compile(r"^ColonyOS: pod (\S+) continues in pod (\S+) \(replacing ")


def line_prefix(pod_index: str, container: str, multi: bool) -> str:
    return f"[{pod_index}/{container}] " if multi else ""


def _index_of(prefix: str) -> str:
    return prefix[1:].split("/", 1)[0] if prefix else "0"


def note_line(text: str) -> str:
    return NOTE_PREFIX + text


def replacement_line(index: str, pod: str, replaced: str) -> str:
    """The line that says a pod index goes on in a new pod: lines of that index after it are the new pod's."""
    return f"{NOTE_PREFIX}pod {index} continues in pod {pod} (replacing {replaced}); its log follows"


def _lines(messages: Iterable[str]) -> Iterator[str]:
    for message in messages:
        yield from message.split("\n")[:-1] if message.endswith("\n") else message.split("\n")


def count_shipped_lines(messages: Iterable[str], prefixes: Iterable[str]) -> dict[str, int]:
    """How many lines of each prefix ("" for a single container) these log messages hold, counting for each pod
    index only the lines after its last replacement line (those of the pod that runs it now); the operator's own
    lines are not counted."""
    prefixes = list(prefixes)
    counts = {p: 0 for p in prefixes}
    for line in _lines(messages):
        replaced = _REPLACEMENT.match(line)
        if replaced:
            for prefix in prefixes:
                if _index_of(prefix) == replaced.group(1):
                    counts[prefix] = 0
            continue
        if line.startswith(NOTE_PREFIX):
            continue
        for prefix in prefixes:
            if line.startswith(prefix):
                counts[prefix] += 1
                break
    return counts


def current_pods(messages: Iterable[str]) -> dict[str, str]:
    """For each pod index that was replaced, the pod its last replacement line names."""
    pods = {}
    for line in _lines(messages):
        replaced = _REPLACEMENT.match(line)
        if replaced:
            pods[replaced.group(1)] = replaced.group(2)
    return pods


_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def normalize_timestamp(timestamp: str) -> str:
    """RFC 3339 with exactly nine fractional digits, so that string order is time order ("" if invalid).
    The API server trims trailing zeros, and ".12Z" would otherwise sort after ".123Z"."""
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


class ReplayCursor:
    """Where a follower is in a container's log, in the terms a reconnect can use. The stream is re-opened a
    few seconds before the newest line read (stdout and stderr lines reach the log slightly out of time
    order, and the kubelet drops lines stamped before `sinceTime`); the cursor counts the lines read in that
    window, which the new stream repeats first."""

    WINDOW_SECONDS = 2

    def __init__(self) -> None:
        self.newest = ""  # "YYYY-MM-DDTHH:MM:SS" of the newest line read
        self._per_second: dict[str, int] = {}

    def observe(self, timestamp: str) -> None:
        second = timestamp[:19]
        if second > self.newest:
            self.newest = second
            floor = self._window_start()
            self._per_second = {s: n for s, n in self._per_second.items() if s >= floor}
        if second >= self._window_start():
            self._per_second[second] = self._per_second.get(second, 0) + 1

    def _window_start(self) -> str:
        if not self.newest:
            return ""
        start = dt.datetime.fromisoformat(self.newest) - dt.timedelta(seconds=self.WINDOW_SECONDS)
        return start.strftime("%Y-%m-%dT%H:%M:%S")

    def since_time(self) -> str | None:
        return self._window_start() + "Z" if self.newest else None

    @property
    def replayed(self) -> int:
        """Lines a stream opened at `since_time()` repeats before the first new one."""
        return sum(self._per_second.values())
