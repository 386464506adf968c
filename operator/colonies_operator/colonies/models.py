"""Typed views of the Colonies JSON objects the operator reads and writes.

Each model keeps the fields it does not know in `extra` and writes them back in `to_dict()`, so a newer
server's fields survive a round trip. JSON keys that are Python keywords get other attribute names
(`in` -> `inputs`, `out` -> `output`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from enum import IntEnum
from typing import Any, ClassVar

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


class ProcessState(IntEnum):
    WAITING = 0
    RUNNING = 1
    SUCCESS = 2
    FAILED = 3
    CANCELLED = 4


class ExecutorState(IntEnum):
    PENDING = 0
    APPROVED = 1
    REJECTED = 2
    UNREGISTERED = 3


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time from the server; None for the Go zero time or nothing."""
    if not value or value == GO_ZERO_TIME or value.startswith("0001-01-01"):
        return None
    return dt.datetime.fromisoformat(value)


def format_time(value: dt.datetime | None) -> str:
    if value is None:
        return GO_ZERO_TIME
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _json_key(field: dataclasses.Field) -> str:
    return field.metadata.get("json", field.name)


def json_field(key: str, **kwargs: Any) -> Any:
    return dataclasses.field(metadata={"json": key}, **kwargs)


@dataclasses.dataclass
class Model:
    """Base: from_dict/to_dict over the dataclass fields, nested models, times, and `extra`."""

    _nested: ClassVar[dict[str, type["Model"]]] = {}
    _times: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        data = dict(data or {})
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name == "extra":
                continue
            key = _json_key(field)
            if key not in data:
                continue
            raw = data.pop(key)
            if field.name in cls._nested:
                raw = cls._nested[field.name].from_dict(raw)
            elif field.name in cls._times:
                raw = parse_time(raw)
            elif raw is None and isinstance(field.default_factory, type):  # server sends null for []
                raw = field.default_factory()
            values[field.name] = raw
        return cls(**values, extra=data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for field in dataclasses.fields(self):
            if field.name == "extra":
                continue
            value = getattr(self, field.name)
            if isinstance(value, Model):
                value = value.to_dict()
            elif field.name in self._times:
                value = format_time(value)
            out[_json_key(field)] = value
        return out


@dataclasses.dataclass
class Gpu(Model):
    name: str = ""
    mem: str = ""
    count: int = 0
    nodecount: int = 0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Conditions(Model):
    colonyname: str = ""
    executortype: str = ""
    executornames: list[str] = dataclasses.field(default_factory=list)
    nodes: int = 0
    cpu: str = ""
    processes: int = 0
    processespernode: int = 0
    mem: str = ""
    storage: str = ""
    gpu: Gpu = dataclasses.field(default_factory=Gpu)
    walltime: int = 0
    dependencies: list[str] = dataclasses.field(default_factory=list)
    locationname: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    _nested: ClassVar[dict[str, type[Model]]] = {"gpu": Gpu}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.locationname:  # the server omits it when empty; so do we
            out.pop("locationname")
        return out


@dataclasses.dataclass
class FunctionSpec(Model):
    """A function spec to submit. maxexectime defaults to -1 (no limit): 0 would make the server fail
    or re-queue the process within a second of assignment."""

    funcname: str = ""
    nodename: str = ""
    args: list[Any] = dataclasses.field(default_factory=list)
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 0
    maxwaittime: int = -1
    maxexectime: int = -1
    maxretries: int = 0
    conditions: Conditions = dataclasses.field(default_factory=Conditions)
    label: str = ""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    # ColonyFS: {"mount", "snapshots": [...], "dirs": [...]}; the server sends empty lists as null.
    fs: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    _nested: ClassVar[dict[str, type[Model]]] = {"conditions": Conditions}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.fs:
            out.pop("fs")
        return out

    @property
    def uses_fs(self) -> bool:
        """True when the spec asks for ColonyFS: snapshots or synced directories to mount."""
        fs = self.fs if isinstance(self.fs, dict) else {}
        return bool(fs.get("snapshots") or fs.get("dirs"))


@dataclasses.dataclass
class Process(Model):
    processid: str = ""
    initiatorid: str = ""
    initiatorname: str = ""
    assignedexecutorid: str = ""
    isassigned: bool = False
    state: int = ProcessState.WAITING
    prioritytime: int = 0
    submissiontime: dt.datetime | None = None
    starttime: dt.datetime | None = None
    endtime: dt.datetime | None = None
    waitdeadline: dt.datetime | None = None
    execdeadline: dt.datetime | None = None
    retries: int = 0
    attributes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    spec: FunctionSpec = dataclasses.field(default_factory=FunctionSpec)
    waitforparents: bool = False
    parents: list[str] = dataclasses.field(default_factory=list)
    children: list[str] = dataclasses.field(default_factory=list)
    processgraphid: str = ""
    # In a workflow, the server sets `in` at assignment to its parents' outputs, concatenated in the order of
    # `parents`.
    inputs: list[Any] = json_field("in", default_factory=list)
    output: list[Any] = json_field("out", default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    _nested: ClassVar[dict[str, type[Model]]] = {"spec": FunctionSpec}
    _times: ClassVar[frozenset[str]] = frozenset(
        {"submissiontime", "starttime", "endtime", "waitdeadline", "execdeadline"}
    )

    @property
    def state_name(self) -> str:
        try:
            return ProcessState(self.state).name
        except ValueError:
            return str(self.state)


@dataclasses.dataclass
class Executor(Model):
    executorid: str = ""
    executorname: str = ""
    executortype: str = ""
    colonyname: str = ""
    state: int = ExecutorState.PENDING
    commissiontime: dt.datetime | None = None
    lastheardfromtime: dt.datetime | None = None
    locationname: str = ""
    # {"hardware": [...], "software": [...]}: lists since v1.9 (see colonies_operator.capabilities).
    capabilities: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    _times: ClassVar[frozenset[str]] = frozenset({"commissiontime", "lastheardfromtime"})

    @property
    def hardware(self) -> list[dict[str, Any]]:
        return list((self.capabilities or {}).get("hardware") or [])

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.locationname:
            out.pop("locationname")
        if not self.capabilities:
            out.pop("capabilities")
        # The server stores lastheardfromtime as sent; omit it so it stays "never heard from" until
        # the first assign, which keeps a fresh executor out of the stale-executor cleanup.
        if self.lastheardfromtime is None:
            out.pop("lastheardfromtime")
        if self.commissiontime is None:
            out.pop("commissiontime")
        return out


@dataclasses.dataclass
class Function(Model):
    """A registered function. `args` documents its arguments: [{"name", "type", "description", "required",
    "enum"}] (the server omits empty descriptions and args)."""

    functionid: str = ""
    executorname: str = ""
    executortype: str = ""
    colonyname: str = ""
    funcname: str = ""
    description: str = ""
    args: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ProcessGraph(Model):
    """A submitted workflow: its processes, and which of them start first."""

    processgraphid: str = ""
    colonyname: str = ""
    initiatorname: str = ""
    state: int = ProcessState.WAITING
    rootprocessids: list[str] = dataclasses.field(default_factory=list)
    processids: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LogEntry(Model):
    processid: str = ""
    colonyname: str = ""
    executorname: str = ""
    message: str = ""
    timestamp: int = 0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
