"""What a Colonies process asks to run, checked and resolved into a JobPlan (pure: no I/O).

The mapping (compatible with the official container executors' `execute` convention):
- kwargs `docker-image` (required) is the image; `cmd` (required) is a shell command line run by
  `sh -c`; `args` (a list of strings) are appended to it as positional parameters ("$@"), never pasted into
  the command text, so no quote in an argument can break or inject; `init-cmd` runs first.
  `{processid}` in `cmd`, `args` and `init-cmd` becomes the process id.
- conditions `cpu`, `mem` and `storage` are each container's requests and limits (cpu, memory,
  ephemeral-storage); `gpu.count` is each container's GPU limit under the configured resource name;
  `gpu.name` selects nodes by the configured label. A process that gives none of cpu, mem, storage or walltime
  gets the resource's default (spec.processDefaults), else the cluster admin's (policy.defaults).
- `nodes` pods run in parallel, `processespernode` containers each; `walltime` is the deadline.
- Every value is checked against the limits in force (the resource's spec.processLimits within the admin's
  policy.ceiling); a process beyond one is refused with the limit and who sets it. The image must match the
  allowed-image patterns of both.
- Workflows: Colonies hands a child its parents' outputs (concatenated, in the order of its parents) as the
  process's input (`in`); the container finds it in COLONIES_PROCESS_INPUT as a JSON list ("[]" outside a
  workflow). The official container executors pass no input, so this is the operator's own convention.
- kwargs of the official executors: `rebuild-image` true pulls the image again (imagePullPolicy Always);
  `debug` true asks the executor to add what it does to the process log. Kwargs the operator does not use
  are ignored, whatever their type.
- ColonyFS (spec.fs snapshots or synced dirs): checked by fs.plan_fs, and brought in and out of the pod as the
  official executors do (fs.py), on an executor with spec.fs; one without fails such a process at once, rather
  than run it without its files. Not with conditions.nodes > 1.
- With the cluster's GPU models known (capabilities), a process asking for another model fails at once:
  Colonies does not match conditions.gpu.name when it assigns, and an executor cannot hand a process back.
  The models of cordoned nodes count, and so do those the resource declares (spec.gpu.models: a pool an
  autoscaler scales from zero), whose pods wait for a node up to spec.jobs.scaleUpTimeoutSeconds.

jobs.build_job turns a plan into the Job manifest.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Collection

from ..colonies.models import Process
from . import admission
from .config import ExecutorConfig
from .fs import FsPlan, InvalidFs, plan_fs
from .images import image_matches, normalize_image
from .names import LABEL_VALUE_LIMIT
from .policy import compare_limit
from .quantity import cpu_from_conditions, memory_from_conditions

MAX_NODES = 127  # the Colonies scheduler never assigns more (math.MaxInt8)
MAX_PROCESSES_PER_NODE = 64
MAX_WALLTIME_SECONDS = 366 * 24 * 3600
MAX_GPUS = 1024
MAX_COMMAND_BYTES = 128 * 1024  # well under the API server's object size limit and ARG_MAX
MAX_ENV_BYTES = 256 * 1024
# One environment string must stay under Linux's MAX_ARG_STRLEN (128 KiB), or the container cannot start.
MAX_INPUT_BYTES = 64 * 1024
INPUT_ENV = "COLONIES_PROCESS_INPUT"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
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
    fs: FsPlan | None = None  # the process's ColonyFS dirs and snapshots (fs.py)

    @property
    def containers_total(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def container_names(self) -> list[str]:
        """The containers of each pod: `main`, or `proc-<i>` when a pod runs several processes."""
        return ["main"] if self.processes_per_node == 1 else [f"proc-{i}" for i in range(self.processes_per_node)]


def _substitute(text: str, process_id: str) -> str:
    return text.replace("{processid}", process_id)


def _flag(value: Any) -> bool:
    """A boolean kwarg as the official executors read it (true only for true; "true" too, as CLIs write it)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def plan_job(process: Process, config: ExecutorConfig, *, gpu_models: Collection[str] | None = None) -> JobPlan:
    """Validates the process against what the operator can run. Raises InvalidProcess.

    `gpu_models`: the GPU models of the cluster's nodes (capabilities.gpu_models_provided); None when not known,
    and then conditions.gpu.name is not checked here (its Job stays unschedulable, and fails after the pending
    timeout). The models of spec.gpu.models are always accepted.
    """
    spec = process.spec
    if spec.funcname not in config.functions:
        raise InvalidProcess(f"unsupported function {spec.funcname!r}: this executor runs "
                             f"{', '.join(repr(f) for f in config.functions)}")
    fs = _fs(process, config)
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
    if gpu_name and (len(gpu_name) > LABEL_VALUE_LIMIT or not _LABEL_VALUE.match(gpu_name)):
        raise InvalidProcess(f"conditions.gpu.name {gpu_name[:100]!r} cannot be matched against a node label: "
                             "use at most 63 letters, digits, '-', '_' or '.'")
    if gpu_name and gpu_models is not None and gpu_name not in gpu_models and gpu_name not in config.gpu.models:
        have = (f"its GPU models are {', '.join(repr(m) for m in sorted(gpu_models))}" if gpu_models
                else "no node with GPUs has a model")
        declared = (f"; spec.gpu.models declares {', '.join(repr(m) for m in config.gpu.models)}"
                    if config.gpu.models else "")
        raise InvalidProcess(f"conditions.gpu.name {gpu_name!r}: no node of this cluster has that GPU model "
                             f"({have}, per node label {config.gpu.node_label}{declared}); ask for one of those, "
                             "or submit to an executor that has it. If an autoscaler adds nodes of that model, "
                             "the executor's owner declares it in spec.gpu.models")
    walltime = conditions.walltime
    if not isinstance(walltime, int) or isinstance(walltime, bool) or walltime < 0:
        raise InvalidProcess(f"conditions.walltime must be a non-negative number of seconds, not {walltime!r}")
    if walltime > MAX_WALLTIME_SECONDS:
        raise InvalidProcess(f"conditions.walltime {walltime}s is more than a year; give the real limit in seconds")
    walltime = _resource(walltime or None, "conditions.walltime", config, "walltime_seconds")
    if fs is not None and nodes > 1:
        raise InvalidProcess(f"spec.fs with conditions.nodes {nodes}: ColonyFS is synced by one pod, and this process "
                             "would have one per node, each syncing the same labels down and up on its own. Use "
                             "nodes 1 (with processespernode for containers that share the files), or move the files "
                             "in cmd")
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
                   debug=_flag(kwargs.get("debug")), fs=fs)


def _fs(process: Process, config: ExecutorConfig) -> FsPlan | None:
    spec = process.spec
    if not spec.uses_fs:
        return None
    if config.fs is None:
        raise InvalidProcess(f"spec.fs asks for ColonyFS (snapshots or synced directories), and ColoniesExecutor "
                             f"{config.resource_namespace}/{config.resource_name} has no spec.fs (the S3 storage its "
                             "Jobs would use): the process would run without its files. Submit it to an executor "
                             "with spec.fs, or ask its owner to set spec.fs.s3SecretRef")
    try:
        return plan_fs(spec.fs, process.processid)
    except InvalidFs as err:
        raise InvalidProcess(str(err)) from None


def probe_plan(config: ExecutorConfig) -> JobPlan:
    """The plan of a process that asks for nothing (`true`), for a dry run of this executor's Jobs: the defaults
    apply; the allowed images and per-process limits do not, as no process is being judged."""
    return JobPlan(image="busybox:1.35", command=["sh", "-c", "true", "sh"], env={}, nodes=1, processes_per_node=1,
                   cpu=_resource(None, "", config, "cpu"), memory=_resource(None, "", config, "memory"), gpus=0,
                   gpu_name="", walltime=_resource(None, "", config, "walltime_seconds"),
                   ephemeral_storage=_resource(None, "", config, "ephemeral_storage"))


def _check_image(image: str, config: ExecutorConfig) -> None:
    """The image must match a pattern of every allowed-images list in force."""
    limits = admission.allowed_image_limits(config)
    if not limits:
        return
    try:
        full = normalize_image(image)
    except ValueError as err:
        raise InvalidProcess(f"kwargs 'docker-image' {err}") from None
    for limit in limits:
        if not any(image_matches(full, pattern) for pattern in limit.value):
            raise InvalidProcess(f"image {full} is not allowed: {limit.describe()}, allows only "
                                 f"{', '.join(limit.value)}; use an image that matches")


def _within(value: int, what: str, config: ExecutorConfig, field: str) -> int:
    limit = admission.limit_for(config, field)
    if limit is not None and value > limit.value:
        raise InvalidProcess(f"{what} {value} is above the limit of {limit.value} ({limit.describe()})")
    return value


def _resource(value: Any, what: str, config: ExecutorConfig, field: str) -> Any:
    """A quantity or walltime within its limit; absent, the default (no more than the limit)."""
    limit = admission.limit_for(config, field)
    if value is None:
        value = admission.default_for(config, field)
        if value is not None and limit is not None and compare_limit(field, value, limit.value) > 0:
            value = limit.value
        return value
    if limit is not None and compare_limit(field, value, limit.value) > 0:
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
    try:
        return cpu_from_conditions(value)
    except ValueError as err:
        raise InvalidProcess(f"conditions.cpu {err}") from None


def _memory(value: Any, what: str = "conditions.mem") -> str | None:
    try:
        return memory_from_conditions(value)
    except ValueError as err:
        raise InvalidProcess(f"{what} {err}") from None
