"""The Jobs `build_job` makes for a few representative processes, held against files in tests/unit/golden/: a
change to a generated Job shows as a diff of those files in review. After an intended change, rewrite them with
`UPDATE_GOLDEN=1 make unit` and read the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from colonies_operator.colonies import Process
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.jobs import build_job
from colonies_operator.core.plan import plan_job

GOLDEN = Path(__file__).parent / "golden"
PID = "ab" * 32
EXECUTOR_ID = "cd" * 32
RESOURCE = {"server": {"host": "colonies.example.org"}, "colonyName": "dev",
            "credentials": {"colonyKeySecret": {"name": "colony-key"}}}

CASES = {
    # the tutorial's spec
    "single": ({}, {"kwargs": {"docker-image": "busybox:1.35", "cmd": "echo", "args": ["hello", "world"]},
                    "conditions": {"nodes": 1, "processespernode": 1, "cpu": "500m", "mem": "256Mi",
                                   "walltime": 60}, "env": {"GREETING": "hi"}}),
    # two pods of two containers, an input from workflow parents, the defaults for what is not asked
    "multi-node": ({}, {"kwargs": {"docker-image": "registry.example.org/mpi:2", "cmd": "run --rank $RANK"},
                        "conditions": {"nodes": 2, "processespernode": 2}, "in": ["parent output"]}),
    # a GPU model on a labelled node pool, with tolerations from the resource
    "gpu": ({"jobs": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                      "nodeSelector": {"pool": "gpu"}}},
            {"kwargs": {"docker-image": "nvcr.io/nvidia/pytorch:24.01", "cmd": "python train.py"},
             "conditions": {"nodes": 1, "processespernode": 1, "cpu": "4000m", "mem": "32Gi",
                            "gpu": {"count": 2, "name": "nvidia-a100"}, "walltime": 3600}}),
    # the restricted pod security profile with the resource's own user, labels and annotations
    "restricted": ({"jobs": {"podSecurityProfile": "restricted", "podSecurityContext": {"runAsUser": 1000},
                             "labels": {"team": "science"}, "annotations": {"cost-center": "42"},
                             "serviceAccountName": "", "imagePullSecrets": ["registry-creds"]}},
                   {"kwargs": {"docker-image": "busybox:1.35", "cmd": "id", "rebuild-image": True},
                    "conditions": {"nodes": 1, "processespernode": 1}}),
    # a pod template: a dataset, a token from a Secret, a GPU pool by affinity, a sidecar, a priority class; its
    # attempt to replace the image and command of main is ignored
    "pod-template": ({"jobs": {"priorityClassName": "batch-low", "podTemplate": {
        "metadata": {"labels": {"team": "science"}},
        "spec": {"volumes": [{"name": "dataset", "persistentVolumeClaim": {"claimName": "imagenet", "readOnly": True}},
                             {"name": "results", "emptyDir": {}}],
                 "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                     {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}]}}},
                 "containers": [{"name": "main", "image": "evil:1", "command": ["sh"],
                                 "env": [{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-token",
                                                                                              "key": "token"}}}],
                                 "volumeMounts": [{"name": "dataset", "mountPath": "/data", "readOnly": True},
                                                  {"name": "results", "mountPath": "/results"}]}],
                 "initContainers": [{"name": "uploader", "image": "registry.example.org/uploader:1",
                                     "restartPolicy": "Always", "args": ["--watch", "/results"],
                                     "volumeMounts": [{"name": "results", "mountPath": "/results"}]}]}}}},
                     {"kwargs": {"docker-image": "busybox:1.35", "cmd": "train --data /data --out /results"},
                      "conditions": {"nodes": 1, "processespernode": 2, "cpu": "1000m", "mem": "1Gi"}}),
    # ColonyFS: a snapshot and a label in, results out, the files also at the old kube executor's mount
    "colonyfs": ({"fs": {"s3SecretRef": {"name": "colonies-s3"}}},
                 {"kwargs": {"docker-image": "python:3.12", "cmd": "python /cfs/code/run.py /cfs/data /cfs/out"},
                  "conditions": {"nodes": 1, "processespernode": 1, "mem": "1Gi", "walltime": 600},
                  "fs": {"mount": "/data", "snapshots": [
                      {"snapshotid": "ef" * 32, "label": "/code", "dir": "/code", "keepfiles": False,
                       "keepsnapshot": False}],
                      "dirs": [{"label": "/datasets/one", "dir": "/data", "keepfiles": False,
                                "onconflicts": {"onstart": {"keeplocal": False}, "onclose": {"keeplocal": False}}},
                               {"label": "/results/{processid}", "dir": "/out", "keepfiles": False,
                                "onconflicts": {"onstart": {"keeplocal": False}, "onclose": {"keeplocal": True}}}]}}),
}


def job_for(case: str) -> dict:
    spec_overrides, process_overrides = CASES[case]
    config = config_from_spec({**RESOURCE, **spec_overrides}, namespace="science", name="cluster")
    spec = {"funcname": "execute", **{k: v for k, v in process_overrides.items() if k != "in"}}
    process = Process.from_dict({"processid": PID, "retries": 1, "spec": spec,
                                 "in": process_overrides.get("in", [])})
    return build_job(process, plan_job(process, config), config, EXECUTOR_ID)


@pytest.mark.parametrize("case", CASES)
def test_the_job_is_the_golden_one(case: str):
    path = GOLDEN / f"{case}.yaml"
    # through JSON: containers share their env lists, which YAML would write as anchors
    made = yaml.safe_dump(json.loads(json.dumps(job_for(case))), sort_keys=True, width=120)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(made)
    assert path.exists(), f"{path} is missing: UPDATE_GOLDEN=1 make unit writes it"
    assert made == path.read_text(), f"the Job for {case!r} changed: UPDATE_GOLDEN=1 make unit rewrites " \
                                     f"{path.name}; read the diff"
