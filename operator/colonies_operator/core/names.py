"""The names the operator shares with the cluster (pure: no I/O).

The API group and the custom resource, the labels and annotations on every Job, the Job's name for a process
attempt, and the enums of outcomes and failure reasons. A restarted operator finds its work by these names
alone, so they never change meaning.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib

GROUP, VERSION, PLURAL, KIND = "colonyos.io", "v1alpha1", "coloniesexecutors", "ColoniesExecutor"
API_VERSION = f"{GROUP}/{VERSION}"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "colonies-operator"
LABEL_EXECUTOR_ID = f"{GROUP}/executor-id"
LABEL_PROCESS_ID = f"{GROUP}/process-id"
ANNOTATION_PROCESS_ID = f"{GROUP}/process-id"
ANNOTATION_EXECUTOR_ID = f"{GROUP}/executor-id"
ANNOTATION_EXECUTOR = f"{GROUP}/executor"
ANNOTATION_ATTEMPT = f"{GROUP}/attempt"
# When Colonies assigned the attempt (its starttime): a process handed back and assigned again keeps its attempt
# number, so the assignment tells a Job of an earlier one from the current one.
ANNOTATION_ASSIGNED_AT = f"{GROUP}/assigned-at"
# Active while the process runs; the operator sets it to closed once the process is closed in Colonies, and
# its watches select active Jobs only, so finished Jobs kept for `kubectl logs` cost nothing.
LABEL_JOB_STATE = f"{GROUP}/state"
JOB_STATE_ACTIVE, JOB_STATE_CLOSED = "active", "closed"
# Holds a Job (TTL cleanup, a person's kubectl delete) until its process is closed in Colonies, so a Job
# can never vanish unseen: a RUNNING process with no Job was never started, and is started.
JOB_FINALIZER = f"{GROUP}/close-process"
# On a closed Job: how its process ended in Colonies (succeeded or failed), for people reading the Job.
ANNOTATION_OUTCOME = f"{GROUP}/outcome"
# On an active Job: how far each container's log was shipped to Colonies (core/loglines.py, Checkpoint), so a
# restarted operator resumes there. Written every few seconds while lines are shipped.
ANNOTATION_LOG_CHECKPOINT = f"{GROUP}/log-checkpoint"
# On a Job: the disruptions of its pods so far (JSON), so that a restarted operator keeps counting them against
# spec.jobs.maxDisruptions (the disrupted pods themselves are gone by then).
ANNOTATION_DISRUPTIONS = f"{GROUP}/disruptions"
# On a Job: the process's walltime in seconds of running time, which the operator enforces (not activeDeadlineSeconds,
# which would count the time queued and pending too).
ANNOTATION_WALLTIME = f"{GROUP}/walltime-seconds"
FINALIZER = f"{GROUP}/executor-cleanup"
OWN_KEY_FIELD = "executorPrvKey"

# The Job controller's own labels and annotations.
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

# Kueue's: a Job created suspended with this label waits in that LocalQueue; Kueue labels the Workload it makes for
# the Job with the Job's uid.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"

LABEL_VALUE_LIMIT = 63  # characters in a label value


def job_name(process_id: str, attempt: int, executor_id: str, assigned_at: dt.datetime | None) -> str:
    """Deterministic: the same assignment of a process attempt always maps to the same Job. The name carries the
    executor and the assignment (Colonies' starttime), so another executor given the process, or this one given
    it again after a hand-back, never meets this Job under its own name."""
    stamp = assigned_at.isoformat() if assigned_at else ""
    token = hashlib.sha256(f"{executor_id}/{stamp}".encode()).hexdigest()[:6]
    return f"colonies-{process_id[:32].lower()}-{attempt}-{token}"


def label_value(value: str) -> str:
    """Ids are 64 hex characters, longer than a label value may be; labels carry a prefix, annotations
    the whole id."""
    return value[:LABEL_VALUE_LIMIT]


def owned_selector(executor_id: str | None = None) -> str:
    """The label selector of the Jobs and pods of this operator (of one executor, when given)."""
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
    return f"{selector},{LABEL_EXECUTOR_ID}={label_value(executor_id)}" if executor_id else selector


def own_key_secret(resource_name: str) -> str:
    """The Secret holding the executor key the operator generated for a resource."""
    return f"{resource_name}-executor-key"


class ProcessOutcome(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FailureReason(str, enum.Enum):
    """Why a process failed; a bounded set, used as a metrics label."""

    EXIT_CODE = "exit_code"
    OOM = "oom"
    DEADLINE = "deadline"
    IMAGE_PULL = "image_pull"
    UNSCHEDULABLE = "unschedulable"
    EVICTED = "evicted"
    INVALID = "invalid"
    JOB_REFUSED = "job_refused"
    JOB_DELETED = "job_deleted"
    COLONYFS = "colonyfs"  # moving the process's ColonyFS files in or out failed
    OTHER = "other"
