"""The Kubernetes Job of one process attempt, and the patches the operator applies to it (pure: no I/O).

- `nodes` becomes an Indexed Job with that many pods running in parallel (the index is in
  JOB_COMPLETION_INDEX and COLONIES_NODE_INDEX); `processespernode` becomes that many containers per pod
  (COLONIES_PROCESS_INDEX). `walltime` counts the containers' running time: the operator enforces it
  (decide.py), as activeDeadlineSeconds would count queued and pending time too; the Job's annotation
  colonyos.io/walltime-seconds shows it.
- Pods get the pod security profile's settings (podsecurity.py), with the resource's own merged over them.
- The resource's pod template (spec.jobs.podTemplate) is merged under all of that (podtemplate.py).
- backoffLimit is 0: a container that fails fails the process at once. A pod the cluster disrupts (eviction,
  preemption, node shutdown, taint: the DisruptionTarget condition) is replaced without counting as a failure
  (podFailurePolicy Ignore; the operator caps these at spec.jobs.maxDisruptions).
- With spec.jobs.queueName the Job is created suspended with Kueue's queue label: Kueue unsuspends it when it is
  admitted, with or without Kueue's webhook.
- The process output: a container may write it to /dev/termination-log (a JSON list, or text that becomes
  one string); the first container of pod 0 speaks for the process.
- Every Job carries the labels and annotations a restarted operator finds its work by (names.py), and a
  finalizer until its process is closed.
"""

from __future__ import annotations

import json
from typing import Any

from ..colonies.models import Process
from . import fs
from .admission import profile_of
from .config import ExecutorConfig
from .names import (
    ANNOTATION_ASSIGNED_AT,
    ANNOTATION_ATTEMPT,
    ANNOTATION_EXECUTOR,
    ANNOTATION_EXECUTOR_ID,
    ANNOTATION_OUTCOME,
    ANNOTATION_PROCESS_ID,
    ANNOTATION_WALLTIME,
    JOB_FINALIZER,
    JOB_STATE_ACTIVE,
    JOB_STATE_CLOSED,
    KUEUE_QUEUE_LABEL,
    LABEL_EXECUTOR_ID,
    LABEL_JOB_STATE,
    LABEL_MANAGED_BY,
    LABEL_PROCESS_ID,
    MANAGED_BY,
    ProcessOutcome,
    job_name,
    label_value,
)
from .plan import INPUT_ENV, InvalidProcess, JobPlan
from .pod import TERMINATION_LOG, operator_pod_spec
from .podsecurity import security_contexts, volume_types
from .podtemplate import describe_env, merge_pod_template

# etcd stores objects up to 1.5 MiB; the whole Job (every container's command and env) stays well below.
MAX_JOB_BYTES = 900 * 1024


def build_job(process: Process, plan: JobPlan, config: ExecutorConfig, executor_id: str) -> dict[str, Any]:
    """The batch/v1 Job for one attempt of a process. Raises InvalidProcess when it is too big to store."""
    pid = process.processid
    name = job_name(pid, process.retries, executor_id, process.starttime)
    labels = dict(config.jobs.labels)
    labels.update({
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_EXECUTOR_ID: label_value(executor_id),
        LABEL_PROCESS_ID: label_value(pid),
    })
    pod_labels = dict(labels)
    labels[LABEL_JOB_STATE] = JOB_STATE_ACTIVE
    # The queue is the Job's: on pods, Kueue's pod integration (where enabled) would queue each pod on its own.
    pod_labels.pop(KUEUE_QUEUE_LABEL, None)
    if config.jobs.queue_name:
        labels[KUEUE_QUEUE_LABEL] = config.jobs.queue_name
    annotations = dict(config.jobs.annotations)
    annotations.update({
        ANNOTATION_PROCESS_ID: pid,
        ANNOTATION_EXECUTOR_ID: executor_id,
        ANNOTATION_EXECUTOR: f"{config.resource_namespace}/{config.resource_name}",
        ANNOTATION_ATTEMPT: str(process.retries),
    })
    if process.starttime:
        annotations[ANNOTATION_ASSIGNED_AT] = process.starttime.isoformat()
    if plan.walltime:
        annotations[ANNOTATION_WALLTIME] = str(plan.walltime)

    resources: dict[str, dict[str, str]] = {}
    if plan.cpu:
        resources.setdefault("requests", {})["cpu"] = plan.cpu
        resources.setdefault("limits", {})["cpu"] = plan.cpu
    if plan.memory:
        resources.setdefault("requests", {})["memory"] = plan.memory
        resources.setdefault("limits", {})["memory"] = plan.memory
    if plan.ephemeral_storage:
        resources.setdefault("requests", {})["ephemeral-storage"] = plan.ephemeral_storage
        resources.setdefault("limits", {})["ephemeral-storage"] = plan.ephemeral_storage
    if plan.gpus:
        resources.setdefault("limits", {})[config.gpu.resource_name] = str(plan.gpus)
    pod_context, container_context = security_contexts(profile_of(config), config.jobs.pod_security_context,
                                                       config.jobs.security_context)

    base_env = [{"name": k, "value": v} for k, v in sorted(plan.env.items())]
    base_env += [
        {"name": "COLONIES_PROCESS_ID", "value": pid},
        {"name": INPUT_ENV, "value": plan.input_json},
        {"name": "COLONIES_NODES", "value": str(plan.nodes)},
        {"name": "COLONIES_PROCESSES_PER_NODE", "value": str(plan.processes_per_node)},
        {"name": "COLONIES_NODE_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
    ]
    containers = []
    for index, container_name in enumerate(plan.container_names):
        container: dict[str, Any] = {
            "name": container_name,
            "image": plan.image,
            "imagePullPolicy": plan.image_pull_policy or config.jobs.image_pull_policy,
            "command": list(plan.command),
            "env": base_env + [{"name": "COLONIES_PROCESS_INDEX", "value": str(index)}],
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "File",
        }
        if resources:
            container["resources"] = json.loads(json.dumps(resources))
        if container_context:
            container["securityContext"] = json.loads(json.dumps(container_context))
        containers.append(container)

    pod_spec = operator_pod_spec(config, containers, pod_context,
                                 {config.gpu.node_label: plan.gpu_name} if plan.gpu_name else None)
    if plan.fs is not None:
        # ColonyFS: the files' volume, the steps around the command
        fs.add_to_pod(pod_spec, plan.fs, plan.ephemeral_storage, config)
    pod_metadata = {"labels": pod_labels, "annotations": {ANNOTATION_PROCESS_ID: pid}}
    if config.jobs.pod_template:  # the resource's own, under everything above
        merged = merge_pod_template(config.jobs.pod_template, pod_metadata, pod_spec,
                                    container_defaults=container_context)
        pod_metadata, pod_spec = merged.metadata, merged.spec

    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": plan.nodes,
        "parallelism": plan.nodes,
        "backoffLimit": 0,
        # A disrupted pod is replaced once it has stopped, never counted as a failure.
        "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [
            {"type": "DisruptionTarget", "status": "True"}]}]},
        "podReplacementPolicy": "Failed",
        "template": {"metadata": pod_metadata, "spec": pod_spec},
    }
    if config.jobs.queue_name:
        job_spec["suspend"] = True  # Kueue admits it by unsuspending it
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": config.jobs.namespace, "labels": labels, "annotations": annotations,
                     "finalizers": [JOB_FINALIZER]},
        "spec": job_spec,
    }
    size = len(json.dumps(job, separators=(",", ":")).encode())
    if size > MAX_JOB_BYTES:
        raise InvalidProcess(f"the Job would be {size // 1024} KiB, over the {MAX_JOB_BYTES // 1024} KiB the cluster "
                             f"stores ({plan.containers_total} containers, each with the command and env): pass "
                             "large inputs through a file or object store, or use fewer processes per node")
    return job


def debug_log(plan: JobPlan, job: dict[str, Any]) -> str:
    """With kwargs debug true: what the executor did, for the process log (the official executors' debug lines
    start with "ColonyOS: " too)."""
    meta, pod = job["metadata"], job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    lines = [f"Job {meta['namespace']}/{meta['name']}: {plan.nodes} pod(s) of {plan.processes_per_node} "
             f"container(s), image {plan.image} (imagePullPolicy {container['imagePullPolicy']})",
             f"command: {json.dumps(plan.command)}"]
    resources = container.get("resources", {}).get("limits")
    if resources:
        lines.append(f"limits: {json.dumps(resources, sort_keys=True)}")
    if pod.get("nodeSelector"):
        lines.append(f"nodeSelector: {json.dumps(pod['nodeSelector'], sort_keys=True)}")
    # Names and sources only: a value may be a secret.
    lines.append(f"env (names only): {', '.join(describe_env(container))}")
    if pod.get("volumes"):
        lines.append("volumes: " + ", ".join(f"{v.get('name')} ({'/'.join(volume_types(v))})"
                                             for v in pod["volumes"]))
    if pod.get("initContainers"):
        lines.append("init containers: " + ", ".join(
            f"{c['name']} ({c.get('image')}{', sidecar' if c.get('restartPolicy') == 'Always' else ''})"
            for c in pod["initContainers"]))
    if pod.get("priorityClassName"):
        lines.append(f"priorityClassName: {pod['priorityClassName']}")
    if plan.walltime:
        lines.append(f"walltime: {plan.walltime}s of running time, counted from the containers' start")
    if meta["labels"].get(KUEUE_QUEUE_LABEL):
        lines.append(f"queued: Kueue LocalQueue {meta['labels'][KUEUE_QUEUE_LABEL]} (the Job waits suspended)")
    lines.append(f"{INPUT_ENV}: {plan.input_json[:500]}")
    return "".join(f"ColonyOS: {line}\n" for line in lines)


def release_patch(outcome: ProcessOutcome | None, ttl_seconds: int | None = None) -> dict[str, Any]:
    """A strategic merge patch that drops the operator's finalizer and, with an outcome, labels the Job closed
    (the watches then stop carrying it) and sets its ttlSecondsAfterFinished. The TTL is set only now: a Job
    created with one could lose its pods to the TTL controller (which deletes them first, whatever holds the
    Job) before the operator read their outcome and logs."""
    patch: dict[str, Any] = {"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_FINALIZER]}}
    if outcome is not None:
        patch["metadata"]["labels"] = {LABEL_JOB_STATE: JOB_STATE_CLOSED}
        patch["metadata"]["annotations"] = {ANNOTATION_OUTCOME: outcome.value}
        if ttl_seconds is not None:
            patch["spec"] = {"ttlSecondsAfterFinished": ttl_seconds}
    return patch
