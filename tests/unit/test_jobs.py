"""The process -> Job translation: validation messages and the manifest's mapping."""

import json

import pytest

from colonies_operator.colonies import Process
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.jobs import build_job, debug_log, release_patch
from colonies_operator.core.names import JOB_FINALIZER, ProcessOutcome, job_name
from colonies_operator.core.plan import InvalidProcess, plan_job

PID = "ab" * 32
EXECUTOR_ID = "cd" * 32


def config(**spec_overrides):
    spec = {"server": {"host": "h"}, "colonyName": "dev", "credentials": {"colonyKeySecret": {"name": "k"}}}
    spec.update(spec_overrides)
    return config_from_spec(spec, namespace="work", name="exec1")


def process(kwargs=None, conditions=None, env=None, funcname="execute", retries=0):
    return Process.from_dict({
        "processid": PID, "retries": retries,
        "spec": {"funcname": funcname, "kwargs": {"docker-image": "busybox:1.35", "cmd": "echo", **(kwargs or {})},
                 "conditions": {"nodes": 1, "processespernode": 1, **(conditions or {})}, "env": env or {}},
    })


def job_for(p, cfg=None):
    cfg = cfg or config()
    return build_job(p, plan_job(p, cfg), cfg, EXECUTOR_ID)


def test_tutorial_spec_becomes_a_job():
    job = job_for(process({"cmd": "echo hello world"}, {"cpu": "500m", "mem": "256Mi", "walltime": 60}))
    assert job["metadata"]["name"] == job_name(PID, 0, EXECUTOR_ID, None)
    assert job["metadata"]["name"].startswith(f"colonies-{PID[:32]}-0-")
    assert job["metadata"]["namespace"] == "work"
    assert job["metadata"]["annotations"]["colonyos.io/process-id"] == PID
    assert job["metadata"]["labels"]["colonyos.io/process-id"] == PID[:63]
    spec = job["spec"]
    # Walltime counts running time, enforced by the operator: no deadline that would count pending time too.
    assert spec["backoffLimit"] == 0 and "activeDeadlineSeconds" not in spec
    assert job["metadata"]["annotations"]["colonyos.io/walltime-seconds"] == "60"
    assert spec["podFailurePolicy"] == {"rules": [{"action": "Ignore", "onPodConditions": [
        {"type": "DisruptionTarget", "status": "True"}]}]} and spec["podReplacementPolicy"] == "Failed"
    assert "suspend" not in spec and "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    assert spec["completions"] == spec["parallelism"] == 1 and spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["sh", "-c", "echo hello world", "sh"]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "2Gi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "2Gi"}}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["COLONIES_PROCESS_ID"] == PID


def test_args_are_positional_parameters_so_quotes_cannot_break_out():
    evil = "'; rm -rf / #"
    job = job_for(process({"cmd": "printf '%s\\n'", "args": ["a b", evil, "{processid}"]}))
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["sh", "-c", "printf '%s\\n' \"$@\"", "sh", "a b", evil, PID]


def test_init_cmd_runs_first_and_processid_is_substituted():
    job = job_for(process({"cmd": "run {processid}", "init-cmd": "prepare", "args": ["x"]}))
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][2] == f'prepare\nrun {PID} "$@"'


@pytest.mark.parametrize("nodes, per_node, gpus", [(1, 1, 0), (3, 1, 1), (2, 4, 2), (127, 1, 0)])
def test_nodes_processes_per_node_and_gpus(nodes, per_node, gpus):
    job = job_for(process(conditions={"nodes": nodes, "processespernode": per_node,
                                      "gpu": {"count": gpus, "name": "a100" if gpus else ""}}),
                  config(gpu={"resourceName": "example.com/gpu", "nodeLabel": "gpu-model"}))
    spec = job["spec"]
    assert spec["completions"] == spec["parallelism"] == nodes
    containers = spec["template"]["spec"]["containers"]
    assert len(containers) == per_node
    assert len({c["name"] for c in containers}) == per_node
    for index, container in enumerate(containers):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["COLONIES_PROCESS_INDEX"] == str(index)
        assert env["COLONIES_NODES"] == str(nodes)
        limits = container.get("resources", {}).get("limits", {})
        assert limits.get("example.com/gpu") == (str(gpus) if gpus else None)
    assert spec["template"]["spec"].get("nodeSelector") == ({"gpu-model": "a100"} if gpus else None)


@pytest.mark.parametrize("mem, quantity", [("1Gi", "1Gi"), ("512MiB", "512Mi"), ("2G", "2G"), ("100KB", "100k"),
                                           ("0Mi", "256Mi"), ("", "256Mi")])
def test_memory_units_become_kubernetes_quantities(mem, quantity):
    container = job_for(process(conditions={"mem": mem}))["spec"]["template"]["spec"]["containers"][0]
    assert container.get("resources", {}).get("limits", {}).get("memory") == quantity


def test_the_resource_spec_shapes_the_pod():
    cfg = config(jobs={"serviceAccountName": "runner", "nodeSelector": {"pool": "batch"},
                       "tolerations": [{"key": "batch", "operator": "Exists"}], "imagePullSecrets": ["regcred"],
                       "labels": {"team": "a"}, "annotations": {"note": "x"}, "ttlSecondsAfterFinished": 60,
                       "podSecurityContext": {"runAsNonRoot": True}, "securityContext": {"readOnlyRootFilesystem": True}})
    job = job_for(process(), cfg)
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runner" and pod["nodeSelector"] == {"pool": "batch"}
    assert pod["tolerations"] == [{"key": "batch", "operator": "Exists"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"] == {"readOnlyRootFilesystem": True,
                                                       "allowPrivilegeEscalation": False, "privileged": False}
    assert job["metadata"]["labels"]["team"] == "a" and job["metadata"]["annotations"]["note"] == "x"


def test_a_jobs_ttl_is_set_only_when_its_process_is_closed():
    # The TTL controller deletes a finished Job's pods first, whatever finalizer holds the Job: created with
    # ttlSecondsAfterFinished 0, a Job lost its pods before the operator read the output and the exit codes.
    cfg = config(jobs={"ttlSecondsAfterFinished": 0})
    assert "ttlSecondsAfterFinished" not in job_for(process(), cfg)["spec"]
    patch = release_patch(ProcessOutcome.SUCCEEDED, cfg.jobs.ttl_seconds_after_finished)
    assert patch["spec"] == {"ttlSecondsAfterFinished": 0}
    assert patch["metadata"]["$deleteFromPrimitiveList/finalizers"] == [JOB_FINALIZER]
    assert "spec" not in release_patch(None), "a Job about to be deleted needs no TTL"


def test_a_retried_attempt_gets_its_own_job_name():
    assert f"-{PID[:32]}-2-" in job_for(process(retries=2))["metadata"]["name"]


def test_the_job_name_is_the_assignments_another_executor_or_assignment_gets_another_job():
    import datetime as dt

    at = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
    name = job_name(PID, 0, EXECUTOR_ID, at)
    assert name == job_name(PID, 0, EXECUTOR_ID, at) and len(name) <= 63
    assert name != job_name(PID, 0, "ef" * 32, at), "another executor given the process"
    assert name != job_name(PID, 0, EXECUTOR_ID, at + dt.timedelta(seconds=3)), "handed back, assigned here again"
    p = process()
    p.starttime = at
    job = job_for(p)
    assert job["metadata"]["name"] == name and job["metadata"]["annotations"]["colonyos.io/assigned-at"] == \
        at.isoformat()


@pytest.mark.parametrize("kwargs, conditions, env, funcname, message", [
    ({}, {}, {}, "train", "unsupported function 'train'"),
    ({"docker-image": ""}, {}, {}, "execute", "'docker-image' is required"),
    ({"cmd": None}, {}, {}, "execute", "'cmd' is required"),
    ({"args": ["ok", 3]}, {}, {}, "execute", "list of strings"),
    ({"args": "not a list"}, {}, {}, "execute", "list of strings"),
    ({}, {"cpu": "2"}, {}, "execute", "millicores"),
    ({}, {"cpu": "-5m"}, {}, "execute", "millicores"),
    ({}, {"mem": "1.5Gi"}, {}, "execute", "whole number with a unit"),
    ({}, {"walltime": -1}, {}, "execute", "non-negative"),
    ({}, {"walltime": 10 ** 9}, {}, "execute", "more than a year"),
    ({}, {"nodes": 500}, {}, "execute", "from 1 to 127"),
    ({}, {"gpu": {"count": -1}}, {}, "execute", "gpu.count"),
    ({"cmd": "echo \x00"}, {}, {}, "execute", "NUL"),
    ({"cmd": "x" * 200_000}, {}, {}, "execute", "exceed 128 KiB"),
    ({}, {}, {"1BAD": "x"}, "execute", "env name '1BAD' is invalid"),
    ({}, {}, {"COLONIES_PROCESS_ID": "x"}, "execute", "set by the executor"),
])
def test_bad_input_is_refused_with_a_message_saying_what_to_fix(kwargs, conditions, env, funcname, message):
    with pytest.raises(InvalidProcess, match=message.replace("(", r"\(").replace("'", "'")):
        plan_job(process(kwargs, conditions, env, funcname), config())


# -- Colonies v1.9 conventions: workflows' input, the official executors' kwargs, ColonyFS, GPU models ----------

def container_of(job):
    return job["spec"]["template"]["spec"]["containers"][0]


def env_of(job):
    return {e["name"]: e.get("value") for e in container_of(job)["env"]}


def test_a_workflow_childs_input_reaches_the_container_as_a_json_list():
    p = process()
    assert env_of(job_for(p))["COLONIES_PROCESS_INPUT"] == "[]"
    p.inputs = ["from parent 1", 2, {"k": "ü"}]
    assert json.loads(env_of(job_for(p))["COLONIES_PROCESS_INPUT"]) == ["from parent 1", 2, {"k": "ü"}]
    with pytest.raises(InvalidProcess, match="set by the executor"):
        plan_job(process(env={"COLONIES_PROCESS_INPUT": "x"}), config())


def test_an_input_too_large_for_an_environment_variable_fails_with_the_fix():
    p = process()
    p.inputs = ["x" * (70 * 1024)]
    with pytest.raises(InvalidProcess, match="70 KiB, more than the 64 KiB that COLONIES_PROCESS_INPUT can carry"):
        plan_job(p, config())


@pytest.mark.parametrize("value, policy", [(True, "Always"), ("true", "Always"), (False, "IfNotPresent"),
                                           (None, "IfNotPresent"), ("yes please", "IfNotPresent")])
def test_rebuild_image_pulls_the_image_again(value, policy):
    assert container_of(job_for(process({"rebuild-image": value})))["imagePullPolicy"] == policy
    assert container_of(job_for(process({"rebuild-image": value}), config(jobs={"imagePullPolicy": "Never"}))) \
        ["imagePullPolicy"] == ("Always" if policy == "Always" else "Never")


def test_debug_is_a_flag_and_its_log_says_what_was_created():
    assert plan_job(process({"debug": True}), config()).debug is True
    assert plan_job(process({"debug": False}), config()).debug is False
    p = process({"debug": True, "cmd": "echo hi"}, {"cpu": "100m", "walltime": 30})
    cfg = config()
    plan = plan_job(p, cfg)
    text = debug_log(plan, build_job(p, plan, cfg, EXECUTOR_ID))
    assert all(line.startswith("ColonyOS: ") for line in text.splitlines())
    assert f"Job work/colonies-{PID[:32]}-0-" in text and "busybox:1.35" in text and '"echo hi"' in text
    assert "walltime: 30s of running time" in text


@pytest.mark.parametrize("extra", [{"keep_snapshots": True}, {"debug": {"nested": [1, 2]}}, {"rebuild-image": 3},
                                   {"priority-hint": 7.5}, {"labels": ["a", 1]}, {"nothing": None}])
def test_kwargs_the_operator_does_not_use_never_fail_a_process(extra):
    job = job_for(process({"cmd": "echo ok", **extra}))
    assert container_of(job)["command"] == ["sh", "-c", "echo ok", "sh"]


@pytest.mark.parametrize("fs", [
    {"mount": "/cfs", "snapshots": [{"label": "data", "dir": "/data"}], "dirs": []},
    {"mount": "", "snapshots": None, "dirs": [{"label": "out", "dir": "/out"}]},
])
def test_a_process_asking_for_colonyfs_of_an_executor_without_spec_fs_fails_rather_than_run_without_its_files(fs):
    p = process()
    p.spec.fs = fs
    with pytest.raises(InvalidProcess, match=r"ColonyFS .* ColoniesExecutor work/exec1 has no spec.fs .*: the process "
                                             r"would run without its files"):
        plan_job(p, config())
    assert plan_job(p, config(fs={"s3SecretRef": {"name": "s3"}})).fs is not None


def test_an_empty_fs_as_the_server_sends_it_is_no_request_for_colonyfs():
    p = process()
    p.spec.fs = {"mount": "", "snapshots": None, "dirs": None}
    assert plan_job(p, config()).image == "busybox:1.35"


def test_a_gpu_model_the_cluster_lacks_is_refused_naming_the_models_it_has():
    p = process(conditions={"gpu": {"count": 1, "name": "h100"}})
    with pytest.raises(InvalidProcess, match=r"no node of this cluster has that GPU model \(its GPU models are "
                                             r"'a100', 't4', per node label nvidia.com/gpu.product\)"):
        plan_job(p, config(), gpu_models={"t4", "a100"})
    with pytest.raises(InvalidProcess, match="no node with GPUs has a model, per node label"):
        plan_job(p, config(), gpu_models=set())
    assert plan_job(p, config(), gpu_models={"h100"}).gpu_name == "h100"
    assert plan_job(p, config()).gpu_name == "h100"  # models unknown: not checked here
    assert plan_job(process(conditions={"gpu": {"count": 0}}), config(), gpu_models=set()).gpus == 0


def test_spec_location_name_is_the_executors_location():
    from colonies_operator.core.config import InvalidSpec

    assert config().location_name == ""
    assert config(locationName="lab-a").location_name == "lab-a"
    with pytest.raises(InvalidSpec, match="spec.locationName"):
        config(locationName=" lab-a")


def test_a_gpu_model_the_resource_declares_is_taken_though_no_node_has_it():
    p = process(conditions={"gpu": {"count": 1, "name": "h100"}})
    assert plan_job(p, config(gpu={"models": ["h100"]}), gpu_models=set()).gpu_name == "h100"
    with pytest.raises(InvalidProcess, match=r"\(no node with GPUs has a model, per node label nvidia.com/gpu.product; "
                                             r"spec.gpu.models declares 'a100'\).* declares it in spec.gpu.models"):
        plan_job(p, config(gpu={"models": ["a100"]}), gpu_models=set())


def test_a_queue_name_creates_the_job_suspended_with_kueues_label_on_the_job_only():
    job = job_for(process(), config(jobs={"queueName": "team-a"}))
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    # The label as the CRD once suggested it: taken as the queue, so the Job is suspended too.
    labelled = job_for(process(), config(jobs={"labels": {"kueue.x-k8s.io/queue-name": "team-a"}}))
    assert labelled["spec"]["suspend"] is True
    assert labelled["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


@pytest.mark.parametrize("jobs, message", [
    ({"queueName": "Team A"}, "is not a LocalQueue name"),
    ({"queueName": "a", "labels": {"kueue.x-k8s.io/queue-name": "b"}}, "differ: set the queue in spec.jobs.queueName"),
    ({"maxDisruptions": -1}, "spec.jobs.maxDisruptions must be a non-negative integer"),
    ({"scaleUpTimeoutSeconds": 0}, "spec.jobs.scaleUpTimeoutSeconds must be a positive integer"),
], ids=["a queue name that is no name", "two different queues", "negative max disruptions", "zero scale-up timeout"])
def test_queue_and_disruption_settings_are_checked(jobs, message):
    from colonies_operator.core.config import InvalidSpec

    with pytest.raises(InvalidSpec, match=message):
        config(jobs=jobs)


def test_gpu_models_must_be_label_values():
    from colonies_operator.core.config import InvalidSpec

    assert config(gpu={"models": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"]}).gpu.models == \
        ("NVIDIA-A100-SXM4-80GB",)
    with pytest.raises(InvalidSpec, match="spec.gpu.models must be a list of GPU model names"):
        config(gpu={"models": ["has space"]})
