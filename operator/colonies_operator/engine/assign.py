"""The assign loop of one executor: take work while there is room, stay alive in Colonies when there is none.

Colonies counts only assign calls as signs of life (an executor silent for 10 minutes is removed and its
running processes re-queued), so at the cap, or while Kubernetes refuses this executor's Jobs, the loop sends
an assign that no process can match. A paused colony (408/503) is waited out; Colonies unreachable or
answering 5xx is retried: neither re-registers, fails or deletes anything.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from ..colonies import AssignmentsPaused, ColoniesError, ColoniesUnreachable, Forbidden, Process
from ..core.conditions import ASSIGNING, REACHABLE, REGISTERED, Problem
from ..core.config import ExecutorConfig
from .interrupts import Interrupts
from .registration import Identity
from .status import StatusWriter

log = logging.getLogger(__name__)

MAX_HEARTBEAT_INTERVAL = 60.0  # Colonies removes executors that have not called assign for 10 minutes
NEVER_MATCHING_CPU = "-1m"  # an assign that refreshes "last heard from" but can match no process
NO_ROOM_LOOK_SECONDS = 5.0  # at the cap: how often room and Kubernetes' refusal are looked at again


class AssignLoop:
    """Runs until the runtime stops or reloads; raises Problem when Colonies refuses the executor itself.

    It asks the runtime only whether there is `room()`, hands it what it is assigned (`take(process)`), waits on
    `slot_freed` at the cap, and, while Kubernetes refuses the executor's Jobs, has it `recheck_jobs()`; a long-poll
    under way ends when `room_lost` is set (Kubernetes began refusing its Jobs). What it learns of Colonies goes
    into the status's conditions."""

    def __init__(self, config: ExecutorConfig, identity: Identity, *, status: StatusWriter, interrupts: Interrupts,
                 room: Callable[[], bool], take: Callable[[Process], None], slot_freed: asyncio.Event,
                 recheck_jobs: Callable[[], Awaitable[None]], name: str,
                 room_lost: asyncio.Event | None = None) -> None:
        self.config, self.identity, self.status, self.interrupts = config, identity, status, interrupts
        self._room, self._take, self._slot_freed, self._recheck_jobs = room, take, slot_freed, recheck_jobs
        self._room_lost = room_lost or asyncio.Event()
        self.name = name

    async def run(self) -> None:
        config, identity, status, interrupts = self.config, self.identity, self.status, self.interrupts
        clock = asyncio.get_running_loop().time
        client, last_heartbeat, paused_delay, unreachable_delay = identity.client, float("-inf"), 1.0, 1.0
        while not interrupts.stopping:
            try:
                if self._room():
                    self._room_lost.clear()
                    process = await interrupts.interruptible(client.assign(config.colony_name,
                                                                           config.assign_timeout_seconds,
                                                                           identity.prvkey), self._room_lost)
                    last_heartbeat = clock()
                    if not status.condition_ok(REACHABLE):
                        status.set_condition(REACHABLE, True, "Connected", client.url)
                        status.changed()
                    paused_delay = 1.0
                    if process is not None:
                        self._take(process)
                else:
                    # No room (at the cap, or Kubernetes refuses Jobs), but Colonies counts only assign calls
                    # as signs of life: an assign that no process can match keeps the executor and its work.
                    heartbeat = min(MAX_HEARTBEAT_INTERVAL, 3.0 * config.assign_timeout_seconds)
                    if clock() - last_heartbeat >= heartbeat:
                        process = await client.assign(config.colony_name, -1, identity.prvkey,
                                                      available_cpu=NEVER_MATCHING_CPU)
                        last_heartbeat = clock()
                        if process is not None:  # only a process asking for negative cpu matches: invalid
                            self._take(process)
                    self._slot_freed.clear()
                    await interrupts.wait(min(NO_ROOM_LOOK_SECONDS, heartbeat), self._slot_freed)
                    await self._recheck_jobs()
            except AssignmentsPaused as err:
                # The colony owner paused assignments: wait for the resume, nothing to re-register or count.
                if status.condition_ok(ASSIGNING):
                    log.info("executor %s: colony %s has paused assignments", self.name, config.colony_name)
                    await identity.log(f"colonies-operator: colony {config.colony_name} has paused assignments: "
                                       "waiting for the resume")
                status.set_condition(ASSIGNING, False, "Paused", f"colony {config.colony_name} has paused "
                                     f"assignments ({err.message}); resuming by itself when they resume")
                await status.report()
                await interrupts.sleep(paused_delay)
                paused_delay = min(paused_delay * 2, 15.0)
                last_heartbeat = clock()
                continue
            except Forbidden as err:
                raise Problem(REGISTERED, "Forbidden", f"Colonies refused this executor ({err.message}); "
                              "re-checking the registration") from None
            except ColoniesError as err:
                # Unreachable or a server error: transient. Running work goes on; assign is retried, with no
                # re-registration.
                reason = "Unreachable" if isinstance(err, ColoniesUnreachable) else "ServerError"
                if status.condition_ok(REACHABLE):
                    log.warning("executor %s: Colonies %s: %s", self.name, reason, err)
                status.set_condition(REACHABLE, False, reason, f"{err}; retrying")
                await status.report()
                await interrupts.sleep(unreachable_delay)
                unreachable_delay = min(unreachable_delay * 2, 15.0)
                continue
            unreachable_delay = 1.0
            if not status.condition_ok(ASSIGNING):
                log.info("executor %s: colony %s assigns again", self.name, config.colony_name)
                await identity.log(f"colonies-operator: colony {config.colony_name} assigns again")
                status.set_condition(ASSIGNING, True, "Assigning", "the colony's assignments are not paused")
                await status.report()
