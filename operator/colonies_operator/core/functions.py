"""The functions the executor registers in Colonies, with their documentation (pure: no I/O).

`colonies function ls` shows each function's description and arguments, so a user learns there how to call
`execute`. Registration is idempotent: addfunctionmsg adds a row per call, so the executor compares what is
registered with what it wants (sync_plan) and removes only what is stale or doubled.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from ..colonies.models import Function

EXECUTE_DESCRIPTION = (
    "Runs docker-image as a Kubernetes Job: cmd via sh -c, args as \"$@\"; output: what it writes to "
    "/dev/termination-log (a JSON list or text); a workflow step's input: $COLONIES_PROCESS_INPUT"
)

EXECUTE_ARGS: tuple[dict[str, Any], ...] = (
    {"name": "docker-image", "type": "string", "required": True,
     "description": "The container image to run, e.g. busybox:1.35."},
    {"name": "cmd", "type": "string", "required": True,
     "description": "The command line, run by sh -c, e.g. \"echo hello world\"."},
    {"name": "args", "type": "array", "description": "Strings passed to cmd as \"$@\", never pasted into it."},
    {"name": "init-cmd", "type": "string", "description": "A command line run before cmd, in the same shell."},
    {"name": "rebuild-image", "type": "boolean",
     "description": "true: pull the image again even if the node has it (imagePullPolicy Always)."},
    {"name": "debug", "type": "boolean",
     "description": "true: the executor adds what it does (the Job it creates) to the process log."},
)


@dataclasses.dataclass(frozen=True)
class FunctionDoc:
    funcname: str
    description: str
    args: tuple[dict[str, Any], ...]


def function_doc(funcname: str) -> FunctionDoc:
    """The documentation of a function this executor runs: every function runs a container the same way
    (spec.functions names the functions, `execute` by default)."""
    return FunctionDoc(funcname, EXECUTE_DESCRIPTION, EXECUTE_ARGS)


def _current(function: Function, doc: FunctionDoc, executortype: str) -> bool:
    return (function.funcname == doc.funcname and function.executortype == executortype
            and function.description == doc.description
            and [dict(a) for a in function.args or []] == [dict(a) for a in doc.args])


@dataclasses.dataclass(frozen=True)
class SyncPlan:
    remove: tuple[str, ...]  # function ids to remove (stale documentation, duplicates, functions no longer run)
    add: tuple[FunctionDoc, ...]  # functions to register

    @property
    def empty(self) -> bool:
        return not self.remove and not self.add


def sync_plan(registered: Iterable[Function], funcnames: Iterable[str], executortype: str) -> SyncPlan:
    """What to remove and add so that exactly one up-to-date registration of each function remains."""
    remove: list[str] = []
    add: list[FunctionDoc] = []
    registered = list(registered)
    kept: set[str] = set()
    wanted = {name: function_doc(name) for name in funcnames}
    for function in registered:
        doc = wanted.get(function.funcname)
        if doc and function.funcname not in kept and _current(function, doc, executortype):
            kept.add(function.funcname)
        else:
            remove.append(function.functionid)
    for name, doc in wanted.items():
        if name not in kept:
            add.append(doc)
    return SyncPlan(tuple(remove), tuple(add))
