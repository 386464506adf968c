"""One process attempt (process id, attempt number): what the operator knows of it and has done for it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from ..colonies import Process
from ..core.config import ExecutorConfig
from ..core.decide import ProcessView
from ..core.names import FailureReason, ProcessOutcome, job_name
from ..core.outcome import Disruption
from ..core.plan import JobPlan
from .attempt_logs import AttemptLogs

if TYPE_CHECKING:
    from .registration import Identity

Key = tuple[str, int]


@dataclasses.dataclass(eq=False)
class Attempt:
    """What the operator knows and has done for one process attempt."""

    process: Process
    config: ExecutorConfig  # as it was when the attempt began: a later spec change applies to new ones
    identity: "Identity"
    adopted: bool
    logs: AttemptLogs
    # Found only as a Job (after a restart): the process is read from Colonies before anything is planned.
    known_from_job: bool = False
    view: ProcessView = ProcessView.RUNNING_HERE
    plan: JobPlan | None = None
    invalid: str | None = None
    job_refused: str | None = None
    job_direct: dict[str, Any] | None = None  # from a create or a direct read, until the view shows the Job
    job_expected: bool = False
    job_absent_confirmed: bool = False
    job_deleted: bool = False
    job_released: bool = False
    final_pods: tuple[dict[str, Any], ...] | None = None
    departed_pods: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # last seen, by name
    create_error: str | None = None
    create_failing_since: float | None = None
    create_delay: float = 1.0
    unknown_until: float = 0.0
    close_refusals: int = 0
    outcome: ProcessOutcome | None = None
    failure_reason: FailureReason | None = None
    added_at: float = dataclasses.field(default_factory=time.monotonic)
    fixed_job_name: str = ""
    assignment: dt.datetime | None = None  # of a Job found after a start (its annotation), until the process is read
    # The pods the cluster disrupted (by pod name), the last note written to the process log, and whether the
    # Job waits in a queue now.
    disruptions: dict[str, Disruption] = dataclasses.field(default_factory=dict)
    disruptions_recorded: int = 0  # on the Job's annotation
    walltime_stopped: bool = False  # the Job's deadline was set: it stops now
    note: str | None = None  # the last written
    queued: bool = False

    @property
    def key(self) -> Key:
        return (self.process.processid, self.process.retries)

    @property
    def pid(self) -> str:
        return self.process.processid

    @property
    def namespace(self) -> str:
        return self.config.jobs.namespace

    @property
    def job_name(self) -> str:
        """The Job's name, fixed when the attempt is taken on (an adopted Job's own)."""
        if not self.fixed_job_name:
            self.fixed_job_name = job_name(self.process.processid, self.process.retries, self.identity.executor_id,
                                           self.process.starttime)
        return self.fixed_job_name

    @property
    def assigned_at(self) -> dt.datetime | None:
        """When Colonies assigned this attempt here (its starttime), as the attempt first knew it."""
        return self.assignment if self.assignment is not None else self.process.starttime
