"""The process -> Job translation: validation messages and the manifest's mapping."""

import pytest

from colonies_operator.colonies import Process
from colonies_operator.config import config_from_spec
from colonies_operator.jobs import InvalidProcess, build_job, job_name, plan_job

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
    assert job["metadata"]["name"] == job_name(PID, 0) == f"colonies-{PID[:32]}-0"
    assert job["metadata"]["namespace"] == "work"
    assert job["metadata"]["annotations"]["colonyos.io/process-id"] == PID
    assert job["metadata"]["labels"]["colonyos.io/process-id"] == PID[:63]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 60
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
    assert job["spec"]["ttlSecondsAfterFinished"] == 60


def test_a_retried_attempt_gets_its_own_job_name():
    assert job_for(process(retries=2))["metadata"]["name"].endswith("-2")


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
