"""From a Colonies process to a Kubernetes Job manifest (pure: no I/O).

Mapping (compatible with the official container executors' `execute` convention):
- kwargs `docker-image` (required) is the image; `cmd` (required) is a shell command line run by
  `sh -c`; `args` (a list of strings) are appended to it as positional parameters ("$@"), never pasted into
  the command text, so no quote in an argument can break or inject; `init-cmd` runs first.
  `{processid}` in `cmd`, `args` and `init-cmd` becomes the process id.
- conditions `cpu`, `mem` and `storage` are each container's requests and limits (cpu, memory,
  ephemeral-storage); `gpu.count` is each container's GPU limit under the configured resource name;
  `gpu.name` selects nodes by the configured label. A process that gives none of cpu, mem, storage or walltime
  gets the resource's default (spec.processDefaults), else the cluster admin's (policy.defaults).
- `nodes` becomes an Indexed Job with that many pods running in parallel (the index is in
  JOB_COMPLETION_INDEX and COLONIES_NODE_INDEX); `processespernode` becomes that many containers per pod
  (COLONIES_PROCESS_INDEX); `walltime` becomes the Job's activeDeadlineSeconds.
- Every value is checked against the limits in force (the resource's spec.processLimits within the admin's
  policy.ceiling); a process beyond one is refused with the limit and who sets it. The image must match the
  allowed-image patterns of both.
- Pods get the pod security profile's settings (podsecurity.py), with the resource's own merged over them.
- backoffLimit is 0: Colonies' maxretries owns retries.
- The process output: a container may write it to /dev/termination-log (a JSON list, or text that becomes
  one string); the first container of pod 0 speaks for the process.
- Workflows: Colonies hands a child its parents' outputs (concatenated, in the order of its parents) as the
  process's input (`in`); the container finds it in COLONIES_PROCESS_INPUT as a JSON list ("[]" outside a
  workflow). The official container executors pass no input, so this is the operator's own convention.
- kwargs of the official executors: `rebuild-image` true pulls the image again (imagePullPolicy Always);
  `debug` true asks the executor to add what it does to the process log. Kwargs the operator does not use
  are ignored, whatever their type.
- ColonyFS (spec.fs snapshots or synced dirs) is not supported yet: such a process fails at once, rather than
  run without its files.
- With the cluster's GPU models known (capabilities), a process asking for another model fails at once:
  Colonies does not match conditions.gpu.name when it assigns, and an executor cannot hand a process back.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Collection

from . import policy as pol
from .colonies.models import Process
from .config import ExecutorConfig
from .names import (
    ANNOTATION_ATTEMPT,
    ANNOTATION_EXECUTOR,
    ANNOTATION_EXECUTOR_ID,
    ANNOTATION_PROCESS_ID,
    JOB_FINALIZER,
    JOB_STATE_ACTIVE,
    LABEL_EXECUTOR_ID,
    LABEL_JOB_STATE,
    LABEL_MANAGED_BY,
    LABEL_PROCESS_ID,
    MANAGED_BY,
    job_name,
    label_value,
)
from .podsecurity import security_contexts

TERMINATION_LOG = "/dev/termination-log"

MAX_NODES = 127  # the Colonies scheduler never assigns more (math.MaxInt8)
MAX_PROCESSES_PER_NODE = 64
MAX_WALLTIME_SECONDS = 366 * 24 * 3600
MAX_GPUS = 1024
MAX_COMMAND_BYTES = 128 * 1024  # well under the API server's object size limit and ARG_MAX
MAX_ENV_BYTES = 256 * 1024
# etcd stores objects up to 1.5 MiB; the whole Job (every container's command and env) stays well below.
MAX_JOB_BYTES = 900 * 1024
# One environment string must stay under Linux's MAX_ARG_STRLEN (128 KiB), or the container cannot start.
MAX_INPUT_BYTES = 64 * 1024
INPUT_ENV = "COLONIES_PROCESS_INPUT"
_LABEL_VALUE_LIMIT = 63
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_CPU = re.compile(r"^(\d+)m$")
_MEM = re.compile(r"^(\d+)(Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB|K|KB|Kb|k|M|MB|Mb|G|GB|Gb|T|TB|Tb)?$")
_MEM_UNITS = {"": "", "Ki": "Ki", "KiB": "Ki", "Mi": "Mi", "MiB": "Mi", "Gi": "Gi", "GiB": "Gi", "Ti": "Ti",
              "TiB": "Ti", "K": "k", "KB": "k", "Kb": "k", "k": "k", "M": "M", "MB": "M", "Mb": "M", "G": "G",
              "GB": "G", "Gb": "G", "T": "T", "TB": "T", "Tb": "T"}
_RESERVED_ENV = {"COLONIES_PROCESS_ID", "COLONIES_NODE_INDEX", "COLONIES_PROCESS_INDEX", "COLONIES_NODES",
                 "COLONIES_PROCESSES_PER_NODE", INPUT_ENV}


class InvalidProcess(ValueError):
    """The process cannot become a Job; the message tells the submitter what to fix."""


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """What a valid process asks for, after validation."""

    image: str
    command: list[str]
    env: dict[str, str]
    nodes: int
    processes_per_node: int
    cpu: str | None
    memory: str | None
    gpus: int
    gpu_name: str
    walltime: int | None
    input_json: str = "[]"  # the process's input (its workflow parents' outputs), as COLONIES_PROCESS_INPUT
    image_pull_policy: str | None = None  # kwargs rebuild-image: "Always"; None: the resource's policy
    debug: bool = False  # kwargs debug: the executor adds what it does to the process log
    ephemeral_storage: str | None = None

    @property
    def containers_total(self) -> int:
        return self.nodes * self.processes_per_node


def _substitute(text: str, process_id: str) -> str:
    return text.replace("{processid}", process_id)


def _flag(value: Any) -> bool:
    """A boolean kwarg as the official executors read it (true only for true; "true" too, as CLIs write it)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def plan_job(process: Process, config: ExecutorConfig, *, gpu_models: Collection[str] | None = None) -> JobPlan:
    """Validates the process against what the operator can run. Raises InvalidProcess.

    `gpu_models`: the GPU models of the cluster (capabilities.gpu_models); None when not known, and then
    conditions.gpu.name is not checked here (its Job stays unschedulable, and fails after the pending timeout).
    """
    spec = process.spec
    if spec.funcname not in config.functions:
        raise InvalidProcess(f"unsupported function {spec.funcname!r}: this executor runs "
                             f"{', '.join(repr(f) for f in config.functions)}")
    if spec.uses_fs:
        raise InvalidProcess("spec.fs asks for ColonyFS (snapshots or synced directories), which this executor "
                             "does not support yet: the process would run without its files. Submit it without "
                             "fs (fetch the files in cmd instead), or to an executor that syncs ColonyFS")
    kwargs = spec.kwargs if isinstance(spec.kwargs, dict) else {}
    image = kwargs.get("docker-image")
    if not isinstance(image, str) or not image.strip():
        raise InvalidProcess("kwargs 'docker-image' is required: the container image to run, e.g. \"busybox:1.35\"")
    if any(c.isspace() for c in image) or "\x00" in image:
        raise InvalidProcess(f"kwargs 'docker-image' {image[:100]!r} is not an image reference")
    _check_image(image.strip(), config)
    cmd = kwargs.get("cmd")
    if not isinstance(cmd, str) or not cmd.strip():
        raise InvalidProcess("kwargs 'cmd' is required: the command line to run, e.g. \"echo hello world\"")
    args = kwargs.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidProcess("kwargs 'args' must be a list of strings, e.g. [\"hello\", \"world\"]; "
                             "quote numbers and booleans")
    init_cmd = kwargs.get("init-cmd", "")
    if init_cmd is None:
        init_cmd = ""
    if not isinstance(init_cmd, str):
        raise InvalidProcess("kwargs 'init-cmd' must be a string")
    for what, text in [("cmd", cmd), ("init-cmd", init_cmd)] + [("args", a) for a in args]:
        if "\x00" in text:
            raise InvalidProcess(f"kwargs '{what}' contains a NUL byte, which no command line can carry")
    pid = process.processid
    # Arguments follow the command as "$@" (never pasted into the text); without any, the command is
    # left as written, so one ending in a compound statement ("...; done") stays valid.
    script = _substitute(cmd, pid) + (' "$@"' if args else "")
    if init_cmd.strip():
        script = _substitute(init_cmd, pid) + "\n" + script
    command = ["sh", "-c", script, "sh"] + [_substitute(a, pid) for a in args]
    if sum(len(part.encode()) for part in command) > MAX_COMMAND_BYTES:
        raise InvalidProcess(f"kwargs 'cmd', 'init-cmd' and 'args' together exceed {MAX_COMMAND_BYTES // 1024} KiB; "
                             "pass large inputs through a file or object store instead")

    env = spec.env or {}
    if not isinstance(env, dict):
        raise InvalidProcess("env must map names to string values")
    checked_env: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise InvalidProcess(f"env name {str(name)[:100]!r} is invalid: use letters, digits, '_', '.' or '-', "
                                 "not starting with a digit")
        if name in _RESERVED_ENV:
            raise InvalidProcess(f"env name {name!r} is set by the executor; choose another name")
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidProcess(f"env {name!r} must be a string without NUL bytes")
        checked_env[name] = value
    if sum(len(k) + len(v) for k, v in checked_env.items()) > MAX_ENV_BYTES:
        raise InvalidProcess(f"env exceeds {MAX_ENV_BYTES // 1024} KiB")

    conditions = spec.conditions
    nodes = _within(_count(conditions.nodes, "conditions.nodes", MAX_NODES), "conditions.nodes", config, "nodes")
    per_node = _within(_count(conditions.processespernode, "conditions.processespernode", MAX_PROCESSES_PER_NODE),
                       "conditions.processespernode", config, "processes_per_node")
    _within(nodes * per_node, "conditions.nodes × processespernode (containers)", config, "containers_per_process")
    cpu = _resource(_cpu(conditions.cpu), "conditions.cpu", config, "cpu")
    memory = _resource(_memory(conditions.mem), "conditions.mem", config, "memory")
    storage = _resource(_memory(conditions.storage, "conditions.storage"), "conditions.storage", config,
                        "ephemeral_storage")
    gpus = conditions.gpu.count
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not 0 <= gpus <= MAX_GPUS:
        raise InvalidProcess(f"conditions.gpu.count must be a whole number from 0 to {MAX_GPUS}, not {gpus!r}")
    if gpus:
        _within(gpus, "conditions.gpu.count", config, "gpus")
    gpu_name = conditions.gpu.name or ""
    if gpu_name and (len(gpu_name) > _LABEL_VALUE_LIMIT or not _LABEL_VALUE.match(gpu_name)):
        raise InvalidProcess(f"conditions.gpu.name {gpu_name[:100]!r} cannot be matched against a node label: "
                             "use at most 63 letters, digits, '-', '_' or '.'")
    if gpu_name and gpu_models is not None and gpu_name not in gpu_models:
        have = (f"its GPU models are {', '.join(repr(m) for m in sorted(gpu_models))}" if gpu_models
                else "no node with GPUs has a model")
        raise InvalidProcess(f"conditions.gpu.name {gpu_name!r}: no node of this cluster has that GPU model "
                             f"({have}, per node label {config.gpu.node_label}); ask for one of those, or "
                             "submit to an executor that has it")
    walltime = conditions.walltime
    if not isinstance(walltime, int) or isinstance(walltime, bool) or walltime < 0:
        raise InvalidProcess(f"conditions.walltime must be a non-negative number of seconds, not {walltime!r}")
    if walltime > MAX_WALLTIME_SECONDS:
        raise InvalidProcess(f"conditions.walltime {walltime}s is more than a year; give the real limit in seconds")
    walltime = _resource(walltime or None, "conditions.walltime", config, "walltime_seconds")
    inputs = process.inputs if isinstance(process.inputs, list) else []
    input_json = json.dumps(inputs, separators=(",", ":"), ensure_ascii=False)
    try:
        input_json.encode()
    except UnicodeEncodeError:  # a lone surrogate: the API server takes UTF-8 only, so escape it
        input_json = json.dumps(inputs, separators=(",", ":"))
    if len(input_json.encode()) > MAX_INPUT_BYTES:
        raise InvalidProcess(f"the process's input (its parents' outputs) is {len(input_json.encode()) // 1024} KiB, "
                             f"more than the {MAX_INPUT_BYTES // 1024} KiB that {INPUT_ENV} can carry; let the "
                             "parents output where their results are (a URL or an object key), not the results")
    return JobPlan(image=image.strip(), command=command, env=checked_env, nodes=nodes, processes_per_node=per_node,
                   cpu=cpu, memory=memory, gpus=gpus, gpu_name=gpu_name, walltime=walltime, ephemeral_storage=storage,
                   input_json=input_json, image_pull_policy="Always" if _flag(kwargs.get("rebuild-image")) else None,
                   debug=_flag(kwargs.get("debug")))


def probe_plan(config: ExecutorConfig) -> JobPlan:
    """The plan of a process that asks for nothing (`true`), for a dry run of this executor's Jobs: the defaults
    apply; the allowed images and per-process limits do not, as no process is being judged."""
    return JobPlan(image="busybox:1.35", command=["sh", "-c", "true", "sh"], env={}, nodes=1, processes_per_node=1,
                   cpu=_resource(None, "", config, "cpu"), memory=_resource(None, "", config, "memory"), gpus=0,
                   gpu_name="", walltime=_resource(None, "", config, "walltime_seconds"),
                   ephemeral_storage=_resource(None, "", config, "ephemeral_storage"))


def _check_image(image: str, config: ExecutorConfig) -> None:
    """The image must match a pattern of every allowed-images list in force."""
    limits = pol.allowed_image_limits(config)
    if not limits:
        return
    try:
        full = pol.normalize_image(image)
    except ValueError as err:
        raise InvalidProcess(f"kwargs 'docker-image' {err}") from None
    for limit in limits:
        if not any(pol.image_matches(full, pattern) for pattern in limit.value):
            raise InvalidProcess(f"image {full} is not allowed: {limit.describe()}, allows only "
                                 f"{', '.join(limit.value)}; use an image that matches")


def _within(value: int, what: str, config: ExecutorConfig, field: str) -> int:
    limit = pol.limit_for(config, field)
    if limit is not None and value > limit.value:
        raise InvalidProcess(f"{what} {value} is above the limit of {limit.value} ({limit.describe()})")
    return value


def _resource(value: Any, what: str, config: ExecutorConfig, field: str) -> Any:
    """A quantity or walltime within its limit; absent, the default (no more than the limit)."""
    limit = pol.limit_for(config, field)
    if value is None:
        value = pol.default_for(config, field)
        if value is not None and limit is not None and pol.compare_limit(field, value, limit.value) > 0:
            value = limit.value
        return value
    if limit is not None and pol.compare_limit(field, value, limit.value) > 0:
        per = " per container" if field in ("cpu", "memory", "ephemeral_storage") else ""
        raise InvalidProcess(f"{what} {value} is above the limit of {limit.value}{per} ({limit.describe()})")
    return value


def _count(value: Any, what: str, limit: int) -> int:
    if value in (0, None):
        return 1  # absent in the spec: one
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise InvalidProcess(f"{what} must be a whole number from 1 to {limit}, not {value!r}")
    return value


def _cpu(value: Any) -> str | None:
    if value in ("", None, "0m", "0"):
        return None
    match = _CPU.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidProcess(f"conditions.cpu {str(value)[:50]!r} is not understood: give millicores, e.g. \"500m\" "
                             "(Colonies reads only this form)")
    return None if int(match.group(1)) == 0 else f"{int(match.group(1))}m"


def _memory(value: Any, what: str = "conditions.mem") -> str | None:
    if value in ("", None):
        return None
    match = _MEM.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidProcess(f"{what} {str(value)[:50]!r} is not understood: give a whole number with a "
                             "unit, e.g. \"256Mi\" or \"2Gi\"")
    amount = int(match.group(1))
    return None if amount == 0 else f"{amount}{_MEM_UNITS[match.group(2) or '']}"


def build_job(process: Process, plan: JobPlan, config: ExecutorConfig, executor_id: str) -> dict[str, Any]:
    """The batch/v1 Job for one attempt of a process. Raises InvalidProcess when it is too big to store."""
    pid = process.processid
    name = job_name(pid, process.retries)
    labels = dict(config.jobs.labels)
    labels.update({
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_EXECUTOR_ID: label_value(executor_id),
        LABEL_PROCESS_ID: label_value(pid),
    })
    pod_labels = dict(labels)
    labels[LABEL_JOB_STATE] = JOB_STATE_ACTIVE
    annotations = dict(config.jobs.annotations)
    annotations.update({
        ANNOTATION_PROCESS_ID: pid,
        ANNOTATION_EXECUTOR_ID: executor_id,
        ANNOTATION_EXECUTOR: f"{config.resource_namespace}/{config.resource_name}",
        ANNOTATION_ATTEMPT: str(process.retries),
    })

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
    pod_context, container_context = security_contexts(pol.profile_of(config), config.jobs.pod_security_context,
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
    for index in range(plan.processes_per_node):
        container: dict[str, Any] = {
            "name": "main" if plan.processes_per_node == 1 else f"proc-{index}",
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

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": containers,
        "automountServiceAccountToken": config.jobs.automount_service_account_token,
        "enableServiceLinks": False,
    }
    node_selector = dict(config.jobs.node_selector)
    if plan.gpu_name:
        node_selector[config.gpu.node_label] = plan.gpu_name
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if config.jobs.tolerations:
        pod_spec["tolerations"] = list(config.jobs.tolerations)
    if config.jobs.service_account_name:
        pod_spec["serviceAccountName"] = config.jobs.service_account_name
    if config.jobs.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in config.jobs.image_pull_secrets]
    if pod_context:
        pod_spec["securityContext"] = pod_context

    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": plan.nodes,
        "parallelism": plan.nodes,
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": config.jobs.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": pod_labels, "annotations": {ANNOTATION_PROCESS_ID: pid}},
                     "spec": pod_spec},
    }
    if plan.walltime:
        job_spec["activeDeadlineSeconds"] = plan.walltime
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
    if plan.walltime:
        lines.append(f"activeDeadlineSeconds: {plan.walltime}")
    lines.append(f"{INPUT_ENV}: {plan.input_json[:500]}")
    return "".join(f"ColonyOS: {line}\n" for line in lines)
