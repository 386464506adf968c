"""The assign loop of one executor: take work while there is room, stay alive in Colonies when there is none.

Colonies counts only assign calls as signs of life (an executor silent for 10 minutes is removed and its
running processes re-queued), so at the cap, or while Kubernetes refuses this executor's Jobs, the loop sends
an assign that no process can match. A paused colony (408/503) is waited out; Colonies unreachable or
answering 5xx is retried: neither re-registers, fails or deletes anything.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Protocol

from .colonies import AssignmentsPaused, ColoniesError, ColoniesUnreachable, Forbidden, Process
from .config import ExecutorConfig
from .registration import Identity
from .status import PAUSED, REACHABLE, REGISTERED, Problem

log = logging.getLogger(__name__)

MAX_HEARTBEAT_INTERVAL = 60.0  # Colonies removes executors that have not called assign for 10 minutes
NEVER_MATCHING_CPU = "-1m"  # an assign that refreshes "last heard from" but can match no process


class Runtime(Protocol):
    """What the loop needs of the executor's runtime (executor.py)."""

    namespace: str
    name: str
    stopping: bool

    def has_room(self, config: ExecutorConfig) -> bool: ...
    def take(self, process: Process, config: ExecutorConfig, identity: Identity) -> None: ...
    async def interruptible(self, call: Awaitable[Any]) -> Any: ...
    async def wait_slot(self, timeout: float) -> None: ...
    async def retry_jobs_check(self) -> None: ...
    async def sleep(self, seconds: float) -> None: ...
    def reachable(self, client: Any) -> None: ...
    def condition_ok(self, kind: str) -> bool: ...
    def set_condition(self, kind: str, ok: bool, reason: str, message: str) -> None: ...
    async def report(self) -> None: ...


class AssignLoop:
    """Runs until the runtime stops or reloads; raises Problem when Colonies refuses the executor itself."""

    def __init__(self, runtime: Runtime, config: ExecutorConfig, identity: Identity) -> None:
        self.runtime, self.config, self.identity = runtime, config, identity

    async def run(self) -> None:
        runtime, config, identity = self.runtime, self.config, self.identity
        client, last_heartbeat, paused_delay, unreachable_delay = identity.client, 0.0, 1.0, 1.0
        while not runtime.stopping:
            room = runtime.has_room(config)
            try:
                if room:
                    process = await runtime.interruptible(client.assign(config.colony_name,
                                                                      config.assign_timeout_seconds,
                                                                      identity.prvkey))
                    last_heartbeat = time.monotonic()
                    runtime.reachable(client)
                    paused_delay = 1.0
                    if process is not None:
                        runtime.take(process, config, identity)
                else:
                    # No room (at the cap, or Kubernetes refuses Jobs), but Colonies counts only assign calls
                    # as signs of life: an assign that no process can match keeps the executor and its work.
                    heartbeat = min(MAX_HEARTBEAT_INTERVAL, 3.0 * config.assign_timeout_seconds)
                    if time.monotonic() - last_heartbeat >= heartbeat:
                        process = await client.assign(config.colony_name, -1, identity.prvkey,
                                                      available_cpu=NEVER_MATCHING_CPU)
                        last_heartbeat = time.monotonic()
                        if process is not None:  # only a process asking for negative cpu matches: invalid
                            runtime.take(process, config, identity)
                    await runtime.wait_slot(min(5.0, heartbeat))
                    await runtime.retry_jobs_check()
            except AssignmentsPaused as err:
                # The colony owner paused assignments: wait for the resume, nothing to re-register or count.
                if runtime.condition_ok(PAUSED):
                    log.info("executor %s/%s: colony %s has paused assignments", runtime.namespace, runtime.name,
                             config.colony_name)
                    await identity.log(f"colonies-operator: colony {config.colony_name} has paused assignments: "
                                       "waiting for the resume")
                runtime.set_condition(PAUSED, False, "Paused", f"colony {config.colony_name} has paused assignments "
                          f"({err.message}); resuming by itself when they resume")
                await runtime.report()
                await runtime.sleep(paused_delay)
                paused_delay = min(paused_delay * 2, 15.0)
                last_heartbeat = time.monotonic()
                continue
            except Forbidden as err:
                raise Problem(REGISTERED, "Forbidden", f"Colonies refused this executor ({err.message}); "
                              "re-checking the registration") from None
            except ColoniesError as err:
                # Unreachable or a server error: transient. Running work goes on; assign is retried, with no
                # re-registration.
                reason = "Unreachable" if isinstance(err, ColoniesUnreachable) else "ServerError"
                if runtime.condition_ok(REACHABLE):
                    log.warning("executor %s/%s: Colonies %s: %s", runtime.namespace, runtime.name, reason, err)
                runtime.set_condition(REACHABLE, False, reason, f"{err}; retrying")
                await runtime.report()
                await runtime.sleep(unreachable_delay)
                unreachable_delay = min(unreachable_delay * 2, 15.0)
                continue
            unreachable_delay = 1.0
            if not runtime.condition_ok(PAUSED):
                log.info("executor %s/%s: colony %s assigns again", runtime.namespace, runtime.name, config.colony_name)
                await identity.log(f"colonies-operator: colony {config.colony_name} assigns again")
                runtime.set_condition(PAUSED, True, "Assigning", "the colony's assignments are not paused")
                await runtime.report()
