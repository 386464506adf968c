"""What a Job and its pods mean for the Colonies process (pure: no I/O).

Reads the Job's conditions and every container's state, so that a crash, an OOM kill, a deadline, an image
that cannot be pulled or a pod that cannot be scheduled each end the process FAILED with the real reason.

A pod the cluster disrupts (DisruptionTarget: eviction, preemption, node shutdown, a taint) is no failure: the
Job controller replaces it (jobs.py), so it is left out here, and `disruption_of` describes it for the log and
the cap (decide.py). A suspended Job (Kueue's queue) is "queued": its pods are stopped and nothing times out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Iterable

from .fs import STEP_IN, STEP_OUT, STEPS
from .names import COMPLETION_INDEX, FailureReason

IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
BROKEN_CONTAINER_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# The kubelet's words when a non-root pod (the restricted profile) meets an image that runs as root or as a user
# name it cannot check: no retry helps, so the process fails at once, saying what to change.
NON_ROOT_REFUSED = "runAsNonRoot and image"
MAX_OUTPUT_BYTES = 4096  # the kubelet's own limit on a termination message


@dataclasses.dataclass(frozen=True)
class Outcome:
    """`state` is one of queued, pending, running, succeeded, failed."""

    state: str
    errors: tuple[str, ...] = ()
    output: tuple[Any, ...] = ()
    reason: FailureReason | None = None  # why it failed

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


def parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The object's status condition of this type, or None."""
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return found
    return None


def job_finished(job: dict[str, Any]) -> bool:
    """True once the Job controller has decided: Complete, Failed or FailureTarget."""
    return any((condition(job, kind) or {}).get("status") == "True" for kind in ("Complete", "Failed", "FailureTarget"))


def job_suspended(job: dict[str, Any]) -> bool:
    """True while the Job is suspended (created so for Kueue, or suspended again by it): its pods are stopped."""
    if "suspend" in (job.get("spec") or {}):
        return bool(job["spec"]["suspend"])
    return (condition(job, "Suspended") or {}).get("status") == "True"


def _start_of_waiting(job: dict[str, Any], now: dt.datetime) -> dt.datetime:
    """Since when the Job may create pods: its creation, or its last unsuspension (Kueue's admission)."""
    suspended = condition(job, "Suspended")
    if suspended and suspended.get("status") == "True":
        return now  # unsuspended this moment (its spec says so): the Job controller has not taken it up yet
    times = [parse_time((job.get("metadata") or {}).get("creationTimestamp")) or now,
             parse_time((job.get("status") or {}).get("startTime"))]
    if suspended and suspended.get("status") == "False":
        times.append(parse_time(suspended.get("lastTransitionTime")))
    return max(t for t in times if t is not None)


@dataclasses.dataclass(frozen=True)
class Disruption:
    """A pod the cluster stopped (its DisruptionTarget condition), not the process's own failure."""

    pod: str
    index: str
    reason: str
    message: str

    def describe(self) -> str:
        return f"pod {self.index} ({self.pod}): {self.reason}: {self.message}"


def disruption_of(pod: dict[str, Any]) -> Disruption | None:
    """The disruption of a pod the cluster stopped or is stopping, else None."""
    target = condition(pod, "DisruptionTarget")
    if not target or target.get("status") != "True":
        return None
    meta = pod.get("metadata") or {}
    message = (pod.get("status") or {}).get("message") or target.get("message") or "no message"
    return Disruption(pod=meta.get("name", "?"), index=(meta.get("annotations") or {}).get(COMPLETION_INDEX, "0"),
                      reason=target.get("reason") or "DisruptionTarget", message=message)


def disruptions_to_annotation(disruptions: Iterable[Disruption]) -> str:
    return json.dumps([dataclasses.asdict(d) for d in disruptions], separators=(",", ":"))


def disruptions_from_annotation(value: str | None) -> list[Disruption]:
    """The disruptions a Job's annotation records; [] for none or a value that is not such a list."""
    try:
        items = json.loads(value) if value else []
        return [Disruption(**{k: str(item.get(k, "")) for k in ("pod", "index", "reason", "message")})
                for item in items if isinstance(item, dict)]
    except (ValueError, TypeError, AttributeError):
        return []


def disruption_note(disruption: Disruption, count: int, limit: int, nodes: int) -> str:
    """The process log's line for a disruption."""
    others = " (the process's other pods run on; the new one starts its part over)" if nodes > 1 else ""
    if count > limit:
        then = f"that is more than spec.jobs.maxDisruptions ({limit}): the process fails"
    else:
        then = (f"Kubernetes starts a new pod in its place{others}; disruption {count} of the {limit} the process "
                "may have (spec.jobs.maxDisruptions)")
    return f"pod {disruption.index} ({disruption.pod}) was disrupted: {disruption.reason}: {disruption.message}; {then}"


def too_many_disruptions(disruptions: Iterable[Disruption], limit: int) -> str:
    """The error of a process failed for its disruptions, listing them."""
    found = list(disruptions)
    listed = "; ".join(d.describe() for d in found)
    return (f"the process's pods were disrupted {len(found)} times, more than spec.jobs.maxDisruptions ({limit}) "
            f"allows: {listed}. The cluster kept stopping this work (node drains, preemption, spot reclaims, node "
            "pressure): submit it again, give its Jobs a higher priority or nodes that are not reclaimed, or raise "
            "spec.jobs.maxDisruptions")


def running_since(pods: Iterable[dict[str, Any]]) -> dt.datetime | None:
    """When the process's current pods started running: the earliest container start among pods not disrupted
    (a replacement pod starts the clock again). None while none has started."""
    starts = []
    for pod in pods:
        if disruption_of(pod) is not None:
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            started = (state.get("running") or state.get("terminated") or {}).get("startedAt")
            if started:
                starts.append(parse_time(started))
    return min(starts) if starts else None


def _pod_label(pod: dict[str, Any]) -> str:
    index = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX)
    return f"pod {index}" if index is not None else f"pod {pod['metadata']['name']}"


def output_from_termination_message(message: str | None) -> tuple[Any, ...]:
    """A JSON list is the output as is; any other text is one string."""
    if not message or not message.strip():
        return ()
    text = message.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return (text,)
    return tuple(value) if isinstance(value, list) else (value,)


def _init_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers' statuses (a pod template's) while no process container has started: one that ended
    badly then stopped the pod. Once the process runs, those still listed are native sidecars, stopped with it.
    The ColonyFS steps are not among them: _step_failures says how they failed."""
    status = pod.get("status") or {}
    started = any({"running", "terminated"} & set(s.get("state") or {})
                  for s in status.get("containerStatuses") or [])
    return [] if started else [s for s in status.get("initContainerStatuses") or [] if s.get("name") not in STEPS]


def _container_failures(pod: dict[str, Any]) -> list[str]:
    failures = []
    statuses = [("init container", s) for s in _init_statuses(pod)] + \
        [("container", s) for s in (pod.get("status") or {}).get("containerStatuses") or []]
    for kind, status in statuses:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            reason = terminated.get("reason") or "Error"
            what = f"{kind} {status['name']} in {_pod_label(pod)}"
            if reason == "OOMKilled":
                failures.append(f"{what} was killed for running out of memory (OOMKilled, exit code "
                                f"{terminated.get('exitCode')}): raise conditions.mem")
            else:
                failures.append(f"{what} exited with code {terminated.get('exitCode')} ({reason})")
    return failures


def _step_failures(pod: dict[str, Any]) -> list[str]:
    """The ColonyFS steps (fs.py) of the pod that failed, with the reason each wrote (or the kubelet's)."""
    failures = []
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if status.get("name") not in STEPS or not terminated or terminated.get("exitCode", 0) == 0:
            continue
        when = "before the command" if status["name"] == STEP_IN else "after the command"
        what = f"ColonyFS {when} ({status['name']} in {_pod_label(pod)})"
        message = (terminated.get("message") or "").strip()
        if terminated.get("reason") == "OOMKilled":
            failures.append(f"{what} ran out of memory: raise spec.fs.resources.limits.memory")
        elif status["name"] == STEP_OUT and terminated.get("exitCode") == 137 and not message:
            failures.append(f"{what} was stopped before the upload finished (spec.fs.uploadTimeoutSeconds): the "
                            "results are not all in ColonyFS")
        else:
            failures.append(f"{what}: {message or 'exit code ' + str(terminated.get('exitCode'))}")
    return failures


def _evictions(pods: list[dict[str, Any]]) -> list[str]:
    """The pods the kubelet evicted without marking them disrupted (a failure of the process, which Colonies does
    not retry), with the node's reason."""
    found = []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("reason") == "Evicted" and disruption_of(pod) is None:
            found.append(f"{_pod_label(pod)} was evicted from its node ({status.get('message') or 'no message'}); "
                         "a failed process is not run again: submit it again, asking for resources the node can "
                         "keep (requests = limits)")
    return found


def _failure_kind(pods: list[dict[str, Any]]) -> FailureReason:
    if _evictions(pods):
        return FailureReason.EVICTED
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("reason") == "OOMKilled":
                return FailureReason.OOM
            if terminated.get("exitCode"):
                return FailureReason.EXIT_CODE
    if any(_step_failures(pod) for pod in pods):
        return FailureReason.COLONYFS
    return FailureReason.OTHER


def _pod_output(pods: list[dict[str, Any]]) -> tuple[Any, ...]:
    def index(pod):
        value = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX)
        return int(value) if value and value.isdigit() else 1 << 30

    for pod in sorted(pods, key=index):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for status in sorted(statuses, key=lambda s: (s["name"] != "main", s["name"])):
            terminated = (status.get("state") or {}).get("terminated") or {}
            output = output_from_termination_message(terminated.get("message"))
            if output:
                return output
        return ()
    return ()


def outcome_of(job: dict[str, Any], pods: list[dict[str, Any]], now: dt.datetime, *,
               pending_timeout: int, image_pull_grace: int, walltime: int | None = None,
               had_pods: bool = False) -> Outcome:
    """The process's state as the Job and its pods show it at `now`. Disrupted pods are left out: the Job
    controller replaces them. `had_pods`: the Job is known to have had pods (a disrupted one), whatever its status
    says for a moment."""
    pods = [pod for pod in pods if disruption_of(pod) is None]
    complete = condition(job, "Complete")
    if complete and complete.get("status") == "True":
        # The command succeeded; its results must have reached ColonyFS too (a sidecar's exit does not fail a pod).
        steps = [failure for pod in pods for failure in _step_failures(pod)]
        if steps:
            return Outcome("failed", errors=tuple(steps), reason=FailureReason.COLONYFS)
        return Outcome("succeeded", output=_pod_output(pods))

    # FailureTarget comes first (the controller then stops the pods and sets Failed).
    failed = condition(job, "Failed") or condition(job, "FailureTarget")
    if failed and failed.get("status") == "True":
        errors = []
        reason = failed.get("reason") or "Failed"
        kind = FailureReason.DEADLINE if reason == "DeadlineExceeded" else _failure_kind(pods)
        if reason == "DeadlineExceeded":
            limit = f" of {walltime}s" if walltime else ""
            errors.append(f"walltime{limit} exceeded: the containers ran that long (counted from their start; "
                          "time queued or waiting for a node does not count) and were stopped (DeadlineExceeded); "
                          "raise conditions.walltime if the work needs longer")
        errors.extend(_evictions(pods))
        for pod in pods:
            errors.extend(_container_failures(pod) + _step_failures(pod))
        if not errors:
            errors.append(f"the Job failed ({reason}): {failed.get('message') or 'no message'}")
        return Outcome("failed", errors=tuple(errors), reason=kind)

    if job_suspended(job):
        return Outcome("queued")  # its pods are being stopped, not failing; nothing times out while it waits

    # Still going: look for pods that will never run.
    created = _start_of_waiting(job, now)
    errors = []
    kind = FailureReason.OTHER
    any_running = False
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Failed" and (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue  # deleted by someone (or stopped as its Job is suspended): the Job's verdict decides
        if phase == "Failed":
            # backoffLimit 0 fails the Job next; say so now with the real reason.
            return Outcome("failed", errors=tuple(_evictions([pod]) or _container_failures(pod) + _step_failures(pod)
                                                  or [f"{_pod_label(pod)} failed: "
                                                      f"{(pod.get('status') or {}).get('message') or 'no message'}"]),
                           reason=_failure_kind([pod]))
        any_running = any_running or phase in ("Running", "Succeeded")
        scheduled = condition(pod, "PodScheduled")
        sandbox = condition(pod, "PodReadyToStartContainers")
        if (phase == "Pending" and sandbox and sandbox.get("status") == "False"
                and (scheduled or {}).get("status") == "True"):
            # The kubelet sets up volumes before the sandbox: a ConfigMap, Secret or claim a pod template names
            # that does not exist keeps the pod here, with the reason only in its events.
            since = parse_time(sandbox.get("lastTransitionTime")) or created
            if (now - since).total_seconds() >= pending_timeout:
                errors.append(f"{_pod_label(pod)} did not start within {pending_timeout}s: its volumes could not be "
                              "mounted (a ConfigMap, Secret or PersistentVolumeClaim that does not exist?) or its "
                              "sandbox not created; kubectl describe pod shows the kubelet's events")
        if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            since = parse_time(scheduled.get("lastTransitionTime")) or created
            pod_created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or since
            if (now - min(since, pod_created)).total_seconds() >= pending_timeout:
                kind = FailureReason.UNSCHEDULABLE
                errors.append(f"{_pod_label(pod)} could not be scheduled for {pending_timeout}s: "
                              f"{scheduled.get('message') or 'Unschedulable'}; ask for fewer resources (cpu, mem, "
                              "gpu.count) or a gpu.name that nodes have")
        status_of = pod.get("status") or {}
        for status in (status_of.get("initContainerStatuses") or []) + (status_of.get("containerStatuses") or []):
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            pod_created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or created
            waited = (now - pod_created).total_seconds()
            if reason in IMAGE_PULL_REASONS and (waited >= image_pull_grace or reason in
                                                   ("InvalidImageName", "ErrImageNeverPull")):
                kind = FailureReason.IMAGE_PULL
                check = "spec.fs.image" if status["name"] in STEPS else "kwargs 'docker-image'"
                errors.append(f"image {status.get('image')!r} for container {status['name']} in {_pod_label(pod)} "
                              f"cannot be pulled ({reason}): {waiting.get('message') or 'no message'}; check "
                              f"{check} and the image pull secrets")
            elif reason in BROKEN_CONTAINER_REASONS and NON_ROOT_REFUSED in (waiting.get("message") or ""):
                errors.append(f"container {status['name']} in {_pod_label(pod)} cannot start ({reason}): "
                              f"{waiting['message']}; the executor's pods must not run as root (pod security "
                              "profile restricted): use an image whose USER is a non-root numeric id, or ask the "
                              "ColoniesExecutor's owner to set spec.jobs.podSecurityContext.runAsUser")
            elif reason in BROKEN_CONTAINER_REASONS and waited >= image_pull_grace:
                errors.append(f"container {status['name']} in {_pod_label(pod)} cannot start ({reason}): "
                              f"{waiting.get('message') or 'no message'}")
    if errors:
        return Outcome("failed", errors=tuple(errors), reason=kind)
    job_status = job.get("status") or {}
    pods_existed = had_pods or any(job_status.get(k) for k in ("active", "ready", "failed", "succeeded",
                                                                 "terminating"))
    if (now - created).total_seconds() >= pending_timeout and not pods and not pods_existed:
        return Outcome("failed", errors=(f"no pod was created for the Job within {pending_timeout}s; check the "
                                         "namespace's ResourceQuota and the Job's events",),
                       reason=FailureReason.UNSCHEDULABLE)
    return Outcome("running" if any_running else "pending")


def recheck_after(job: dict[str, Any], pods: list[dict[str, Any]], now: dt.datetime, *, pending_timeout: int,
                  image_pull_grace: int) -> float | None:
    """Seconds until a time limit could change the outcome of a Job that waits (a pending pod, an image that
    cannot be pulled yet); None when only an event can change it."""
    if job_suspended(job):
        return None
    created = _start_of_waiting(job, now)
    limits = []
    if not pods:
        limits.append(created + dt.timedelta(seconds=pending_timeout))
    for pod in pods:
        pod_created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or created
        if (pod.get("status") or {}).get("phase") == "Pending":
            limits.append(pod_created + dt.timedelta(seconds=pending_timeout))
            limits.append(pod_created + dt.timedelta(seconds=image_pull_grace))
            sandbox = parse_time((condition(pod, "PodReadyToStartContainers") or {}).get("lastTransitionTime"))
            if sandbox:
                limits.append(sandbox + dt.timedelta(seconds=pending_timeout))
    future = [(limit - now).total_seconds() for limit in limits if limit > now]
    return max(0.5, min(future) + 0.5) if future else None
