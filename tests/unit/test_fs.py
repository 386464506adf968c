"""ColonyFS (core/fs.py): a process's fs section as the official executors read it, refused when it cannot be
honoured, and what its pod gets: the volume, the steps, the mounts, and nothing secret for the process."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from colonies_operator.colonies import Process
from colonies_operator.core import fs as cfs
from colonies_operator.core.config import DEFAULT_FS_IMAGE, InvalidSpec, config_from_spec
from colonies_operator.core.jobs import build_job
from colonies_operator.core.plan import InvalidProcess, plan_job

PID = "ab" * 32
RESOURCE = {"server": {"host": "colonies.example.org"}, "colonyName": "dev",
            "credentials": {"colonyKeySecret": {"name": "colony-key"}}}
FS = {"s3SecretRef": {"name": "s3"}}


def config(**spec):
    return config_from_spec({**RESOURCE, "fs": FS, **spec}, namespace="science", name="cluster")


def process(fs, conditions=None, cmd="cat /cfs/in/a.txt", args=None):
    kwargs = {"docker-image": "busybox:1.35", "cmd": cmd, **({"args": args} if args else {})}
    return Process.from_dict({"processid": PID, "spec": {"funcname": "execute", "kwargs": kwargs, "fs": fs,
                                                         "conditions": {"nodes": 1, **(conditions or {})}}})


def dir_entry(label, path, start=False, close=False, keep=False):
    return {"label": label, "dir": path, "keepfiles": keep,
            "onconflicts": {"onstart": {"keeplocal": start}, "onclose": {"keeplocal": close}}}


def pod_for(fs, cfg=None, **kwargs):
    cfg = cfg or config()
    p = process(fs, **kwargs)
    return build_job(p, plan_job(p, cfg), cfg, "cd" * 32)["spec"]["template"]["spec"]


# -- the fs section, as the official executors read it -----------------------------------------------------------

@pytest.mark.parametrize("entry, path", [
    ("/in", "/cfs/in"),
    ("", "/cfs"),  # "/cfs" + dir, as text
    ("/out/{processid}/x/{processid}", f"/cfs/out/{PID}/x/{{processid}}"),  # the first occurrence only
    ("/a//b/", "/cfs/a//b/"),
], ids=["a-dir-is-under-cfs", "no-dir-is-cfs-itself", "processid-replaced-at-its-first-occurrence",
        "the-path-is-kept-as-written"])
def test_a_dir_is_its_path_under_cfs(entry, path):
    plan = cfs.plan_fs({"mount": "/cfs", "dirs": [dir_entry("/l", entry)]}, PID)
    assert plan.dirs[0].path == path


def test_labels_keep_flags_and_the_servers_nulls():
    plan = cfs.plan_fs({"mount": "/cfs", "snapshots": None, "dirs": [
        dir_entry("/r/{processid}{processid}", "/o", start=True, close=False, keep=True),
        {"label": "/plain", "dir": "/p", "keepfiles": "true", "onconflicts": None}]}, PID)
    first, second = plan.dirs
    assert (first.label, first.keep_local_on_start, first.keep_local_on_close, first.keep_files) == \
        (f"/r/{PID}{{processid}}", True, False, True)
    # Go's bools: a string is not true.
    assert (second.keep_files, second.keep_local_on_start, second.keep_local_on_close) == (False, False, False)
    assert plan.snapshots == ()


@pytest.mark.parametrize("fs, step_in, step_out", [
    ({"mount": "/cfs", "dirs": [dir_entry("/l", "/d")]}, True, True),
    ({"mount": "", "dirs": [dir_entry("/l", "/d")]}, False, True),  # no mount: nothing before, every dir after
    ({"mount": "/cfs", "snapshots": [{"snapshotid": "s", "dir": "/s", "keepsnapshot": True}]}, True, False),
    ({"mount": "/cfs", "snapshots": [{"snapshotid": "s", "dir": "/s"}]}, True, True),  # removed after
    ({"mount": "", "snapshots": [{"snapshotid": "s", "dir": "/s"}]}, False, False),  # ignored without a mount
    ({"mount": "/cfs", "snapshots": [{"snapshotid": "", "label": "/x", "dir": "/s"}]}, True, False),  # logged
], ids=["dirs-both-ways", "no-mount-syncs-up-only", "a-kept-snapshot-needs-no-step-after",
        "a-snapshot-is-removed-after", "snapshots-need-a-mount", "a-snapshot-without-id-is-skipped-with-a-line"])
def test_which_steps_a_process_gets(fs, step_in, step_out):
    plan = cfs.plan_fs(fs, PID)
    assert (plan.has_step_in, plan.has_step_out) == (step_in, step_out)


@pytest.mark.parametrize("mount, extra", [("/cfs", ""), ("", ""), ("/data", "/data"),
                                          ("/home/user/work", "/home/user/work")])
def test_the_files_are_also_at_another_mount(mount, extra):
    assert cfs.plan_fs({"mount": mount, "dirs": [dir_entry("/l", "/d")]}, PID).extra_mount == extra


@pytest.mark.parametrize("fs, message", [
    ("cfs", "fs must be an object"),
    ({"mount": "/cfs", "dirs": [dir_entry("/l", "in")]}, "fs.dirs[0].dir 'in' must start with '/': it is a path "
                                                         "under /cfs"),
    ({"mount": "/cfs", "dirs": [dir_entry("/l", "/../etc")]}, "must stay under /cfs: no '..'"),
    ({"mount": "/cfs", "dirs": [dir_entry("", "/d")]}, "fs.dirs[0].label is required"),
    ({"mount": "/cfs", "dirs": [dir_entry("/", "/d")]}, "fs.dirs[0].label is required"),
    ({"mount": "/cfs", "dirs": [dir_entry("/l\nx", "/d")]}, "contains a control character"),
    ({"mount": "/cfs", "snapshots": [{"snapshotid": 7, "dir": "/s"}]}, "fs.snapshots[0].snapshotid must be a string"),
    ({"mount": "/cfs", "dirs": {"label": "/l"}}, "fs.dirs must be a list of objects"),
    ({"mount": "/cfs", "dirs": [dir_entry(f"/l{i}", "/d") for i in range(65)]}, "more than 64"),
    ({"mount": "/", "dirs": [dir_entry("/l", "/d")]}, "would hide what the image needs"),
    ({"mount": "/usr", "dirs": [dir_entry("/l", "/d")]}, "would hide what the image needs"),
    ({"mount": "/proc/x", "dirs": [dir_entry("/l", "/d")]}, "would hide what the image needs"),
    ({"mount": "/run", "dirs": [dir_entry("/l", "/d")]}, "would hide what the image needs"),
    ({"mount": "/cfs/data", "dirs": [dir_entry("/l", "/d")]}, "inside /cfs"),
    ({"mount": "data", "dirs": [dir_entry("/l", "/d")]}, "must be an absolute path"),
    ({"mount": "/data/", "dirs": [dir_entry("/l", "/d")]}, "must be an absolute path"),
    ({"mount": "/data/../etc", "dirs": [dir_entry("/l", "/d")]}, "must be an absolute path"),
], ids=["not-an-object", "a-relative-dir", "a-dir-leaving-cfs", "a-dir-without-label", "a-root-label",
        "a-control-character", "a-non-string", "dirs-not-a-list", "too-many-dirs", "mount-root", "mount-usr",
        "mount-in-proc", "mount-run", "mount-inside-cfs", "mount-relative", "mount-trailing-slash", "mount-dot-dot"])
def test_an_fs_section_that_cannot_be_honoured_is_refused_saying_why(fs, message):
    with pytest.raises(cfs.InvalidFs) as err:
        cfs.plan_fs(fs, PID)
    assert message in str(err.value)


def test_plan_job_refuses_fs_without_spec_fs_and_with_several_nodes():
    fs = {"mount": "/cfs", "dirs": [dir_entry("/l", "/d")]}
    bare = config_from_spec(RESOURCE, namespace="science", name="cluster")
    with pytest.raises(InvalidProcess, match="ColoniesExecutor science/cluster has no spec.fs"):
        plan_job(process(fs), bare)
    with pytest.raises(InvalidProcess, match=r"spec.fs with conditions.nodes 2: ColonyFS is synced by one pod"):
        plan_job(process(fs, conditions={"nodes": 2}), config())
    with pytest.raises(InvalidProcess, match=r"fs.dirs\[0\].dir 'd' must start with '/'"):
        plan_job(process({"mount": "/cfs", "dirs": [dir_entry("/l", "d")]}), config())
    assert plan_job(process(fs, conditions={"processespernode": 3}), config()).fs.dirs[0].path == "/cfs/d"


# -- spec.fs of the resource --------------------------------------------------------------------------------------

def test_spec_fs_defaults_and_refusals():
    settings = config().fs
    assert (settings.s3_secret, settings.image, settings.persistent_volume_claim,
            settings.upload_timeout_seconds) == ("s3", DEFAULT_FS_IMAGE, "", 600)
    assert settings.resources == {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
    assert config_from_spec(RESOURCE, namespace="science", name="cluster").fs is None
    for spec, message in [
        ({"fs": {}}, "spec.fs.s3SecretRef.name is required"),
        ({"fs": {"s3SecretRef": "s3"}}, "spec.fs.s3SecretRef.name is required"),
        ({"fs": {**FS, "persistentVolumeClaimName": "Not_A_Claim"}}, "is not a PersistentVolumeClaim name"),
        ({"fs": {**FS, "uploadTimeoutSeconds": 0}}, "spec.fs.uploadTimeoutSeconds must be a positive integer"),
        ({"fs": FS, "jobs": {"namespace": "elsewhere"}}, "spec.fs needs the Jobs in the resource's own namespace"),
    ]:
        with pytest.raises(InvalidSpec, match=message):
            config_from_spec({**RESOURCE, **spec}, namespace="science", name="cluster")


# -- the pod --------------------------------------------------------------------------------------------------------

def test_the_pod_gets_the_volume_the_steps_and_the_mounts():
    pod = pod_for({"mount": "/data", "dirs": [dir_entry("/in", "/in"), dir_entry("/out/{processid}", "/out")]},
                  conditions={"storage": "5Gi", "processespernode": 2})
    assert pod["volumes"] == [{"name": "colonyfs", "emptyDir": {"sizeLimit": "5Gi"}},
                              {"name": "colonyfs-status", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
    step_in, step_out = pod["initContainers"]
    assert (step_in["name"], step_out["name"]) == ("colonyfs-in", "colonyfs-out")
    assert "restartPolicy" not in step_in and step_out["restartPolicy"] == "Always"  # a native sidecar
    assert step_in["image"] == step_out["image"] == DEFAULT_FS_IMAGE
    assert step_out["volumeMounts"] == [{"name": "colonyfs", "mountPath": "/cfs"},
                                        {"name": "colonyfs-status", "mountPath": cfs.STATUS_DIR, "readOnly": True}]
    assert pod["terminationGracePeriodSeconds"] == 600
    for container in pod["containers"]:
        assert container["volumeMounts"] == [{"name": "colonyfs", "mountPath": "/cfs"},
                                             {"name": "colonyfs", "mountPath": "/data"},
                                             {"name": "colonyfs-status", "mountPath": cfs.STATUS_DIR}]
        assert container["command"][2].count(f"{cfs.STATUS_DIR}/{container['name']}") == 1
    assert f"fs sync -l /out/{PID} -d /cfs/out --keeplocal=false --yes --quite" in step_out["command"][2]
    assert "containers='proc-0 proc-1'" in step_out["command"][2]


def test_only_the_steps_see_the_executor_key_and_the_s3_settings():
    pod = pod_for({"mount": "/cfs", "dirs": [dir_entry("/in", "/in")]})
    env = {e["name"]: e for e in pod["initContainers"][0]["env"]}
    assert env["COLONIES_PRVKEY"] == {"name": "COLONIES_PRVKEY", "valueFrom": {"secretKeyRef": {
        "name": "cluster-executor-key", "key": "executorPrvKey"}}}
    assert env["AWS_S3_SECRETKEY"]["valueFrom"] == {"secretKeyRef": {"name": "s3", "key": "AWS_S3_SECRETKEY"}}
    assert env["AWS_S3_REGION"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert {k: env[k]["value"] for k in ("COLONIES_SERVER_HOST", "COLONIES_SERVER_PORT", "COLONIES_TLS",
                                         "COLONIES_COLONY_NAME")} == \
        {"COLONIES_SERVER_HOST": "colonies.example.org", "COLONIES_SERVER_PORT": "50080", "COLONIES_TLS": "false",
         "COLONIES_COLONY_NAME": "dev"}
    (container,) = pod["containers"]
    assert "secretKeyRef" not in json.dumps(container) and "secret" not in json.dumps(pod["volumes"])
    assert pod["automountServiceAccountToken"] is False and "shareProcessNamespace" not in pod
    admin_key = config_from_spec({**RESOURCE, "fs": FS, "credentials": {"executorKeySecret": {"name": "ek",
                                                                                               "key": "k"}}},
                                 namespace="science", name="cluster")
    env = pod_for({"mount": "/cfs", "dirs": [dir_entry("/in", "/in")]}, admin_key)["initContainers"][0]["env"]
    assert {"name": "COLONIES_PRVKEY", "valueFrom": {"secretKeyRef": {"name": "ek", "key": "k"}}} in env


def test_a_claim_a_private_ca_and_the_resources_from_spec_fs():
    cfg = config(fs={**FS, "persistentVolumeClaimName": "shared-cfs", "uploadTimeoutSeconds": 60,
                     "image": "registry.example.org/colonies:v1.9.12", "resources": {"limits": {"memory": "2Gi"}}},
                 server={"host": "colonies.example.org", "tls": True, "caBundle": {"configMapName": "ca"}})
    pod = pod_for({"mount": "/cfs", "dirs": [dir_entry("/in", "/in", keep=False)]}, cfg)
    assert pod["volumes"][0] == {"name": "colonyfs", "persistentVolumeClaim": {"claimName": "shared-cfs"}}
    assert {"name": "colonyfs-ca", "configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}} \
        in pod["volumes"]
    step = pod["initContainers"][1]
    assert step["image"] == "registry.example.org/colonies:v1.9.12"
    assert step["resources"] == {"limits": {"memory": "2Gi"}}
    assert {"name": "SSL_CERT_DIR", "value": cfs.CA_DIR} in step["env"]
    assert {"name": "colonyfs-ca", "mountPath": cfs.CA_DIR, "readOnly": True} in step["volumeMounts"]
    assert pod["terminationGracePeriodSeconds"] == 60
    # On a claim, the files are removed after unless keepfiles: the official executors' fs dir.
    assert "rm -rf /cfs/in" in step["command"][2]
    assert "rm -rf" not in pod_for({"mount": "/cfs", "dirs": [dir_entry("/in", "/in")]})["initContainers"][1][
        "command"][2]


def test_the_steps_follow_the_pod_security_profile():
    cfg = config(jobs={"podSecurityProfile": "restricted", "podSecurityContext": {"runAsUser": 1000}})
    pod = pod_for({"mount": "/cfs", "dirs": [dir_entry("/in", "/in")]}, cfg)
    for step in pod["initContainers"]:
        assert step["securityContext"] == pod["containers"][0]["securityContext"]
        assert step["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_process_without_fs_gets_none_of_it():
    p = Process.from_dict({"processid": PID, "spec": {"funcname": "execute", "kwargs": {
        "docker-image": "busybox:1.35", "cmd": "true"}, "fs": {"mount": "", "snapshots": None, "dirs": None}}})
    pod = build_job(p, plan_job(p, config()), config(), "cd" * 32)["spec"]["template"]["spec"]
    assert "initContainers" not in pod and "volumes" not in pod and "terminationGracePeriodSeconds" not in pod


# -- the scripts, run by a real shell ------------------------------------------------------------------------------

@pytest.mark.parametrize("fs", [
    {"mount": "/cfs", "snapshots": [{"snapshotid": "s1", "dir": "/snap"}, {"label": "/x", "dir": "/s2"}],
     "dirs": [dir_entry("/in", "/in"), dir_entry("/o'ut $(x)", "/o\"ut `x`", close=True)]},
    {"mount": "", "dirs": [dir_entry("/in", "")]},
])
def test_the_step_scripts_are_valid_shell(fs):
    plan = cfs.plan_fs(fs, PID)
    for script in (cfs.script_in(plan), cfs.script_out(plan, ["main"], True)):
        result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def run_wrapped(tmp_path, script, args=(), **popen):
    command = cfs.wrap_command(["sh", "-c", script, "sh", *args], "main", status_dir=str(tmp_path))
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("code", [0, 3])
def test_the_wrapped_command_keeps_its_arguments_and_exit_code_and_records_it(tmp_path, code):
    proc = run_wrapped(tmp_path, 'echo "$0|$1|$2|$#"; exit ' + str(code), ["a b", "c'\"$d"])
    out, _ = proc.communicate(timeout=30)
    assert out == "sh|a b|c'\"$d|2\n"
    assert proc.returncode == code
    assert (tmp_path / "main").read_text() == f"{code}\n"


def test_a_wrapped_command_stopped_by_sigterm_is_recorded_as_stopped(tmp_path):
    proc = run_wrapped(tmp_path, "echo started; exec sleep 30")
    try:
        assert proc.stdout.readline() == "started\n"  # the command runs: the wrapper's trap is set
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert (tmp_path / "main").read_text() == "stopped\n"
