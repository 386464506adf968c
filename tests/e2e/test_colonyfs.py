"""ColonyFS end to end: files synced with the colonies CLI reach a process's containers, its results come back, and
every failure says what went wrong. The real operator, cluster, Colonies server and S3 server (MinIO, the
`s3_server` fixture); the users' side is the colonies CLI of hack/build-colonies.sh. The Jobs' steps run the
`colonies` image (hack/images/build.sh colonies, imported into the local cluster's containerd; on another cluster,
COLONIES_OPERATOR_FS_IMAGE or the upstream image)."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from colonies_operator.colonies import ColoniesError, ProcessState
from devtools.colonies_server import Colony, colonies_binary
from devtools.waiting import wait_for
from tests.e2e.conftest import job_of, log_text, tutorial_spec, wait_final
from tests.fixtures.s3 import S3Server, s3_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

REPO = Path(__file__).resolve().parents[2]
S3_SECRET = "colonies-s3"


@pytest.fixture(scope="session")
def fs_image(kube_cluster) -> str:
    """The image of the Jobs' ColonyFS steps, as the cluster has it."""
    if os.environ.get("COLONIES_OPERATOR_FS_IMAGE"):
        return os.environ["COLONIES_OPERATOR_FS_IMAGE"]
    if not kube_cluster.project_cluster:
        from colonies_operator.core.config import DEFAULT_FS_IMAGE

        return DEFAULT_FS_IMAGE  # a cluster that pulls: upstream's image
    result = subprocess.run([str(REPO / "hack" / "load-image.sh"), "colonies"], capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"hack/load-image.sh colonies failed:\n{result.stderr[-3000:]}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]


class User:
    """A colony user at a terminal, with the colonies CLI and the S3 settings (the tutorial's env file)."""

    def __init__(self, colony: Colony, s3: S3Server, workdir: Path) -> None:
        self.colony, self.workdir = colony, workdir
        self.env = {**colony.cli_env(), **s3.env}
        self.binary = colonies_binary()

    def colonies(self, *args: str) -> str:
        result = subprocess.run([self.binary, *args], env=self.env, cwd=self.workdir, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"colonies {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result.stdout

    def put(self, label: str, files: dict[str, str]) -> None:
        """Writes the files into a folder and syncs it to the label, as the tutorial does."""
        folder = self.workdir / f"put-{secrets.token_hex(3)}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        self.colonies("fs", "sync", "-l", label, "-d", str(folder), "--yes")

    def get(self, label: str) -> dict[str, str]:
        """The label's files, synced into a fresh folder."""
        folder = self.workdir / f"get-{secrets.token_hex(3)}"
        self.colonies("fs", "sync", "-l", label, "-d", str(folder), "--keeplocal=false", "--yes")
        return {p.name: p.read_text() for p in folder.iterdir() if p.is_file() and p.name != ".cfs"}

    def snapshot(self, label: str) -> str:
        """A snapshot of the label, made with the CLI; its id."""
        name = f"snap-{secrets.token_hex(4)}"
        self.colonies("fs", "snapshot", "create", "-l", label, "-n", name)
        return self.snapshot_by_name(name)["snapshotid"]

    def snapshot_by_name(self, name: str) -> dict[str, Any]:
        return self.colony.client.rpc("getsnapshotmsg", {"colonyname": self.colony.name, "snapshotid": "",
                                                         "name": name}, self.colony.user_prvkey)

    def snapshot_exists(self, snapshot_id: str) -> bool:
        try:
            self.colony.client.rpc("getsnapshotmsg", {"colonyname": self.colony.name, "snapshotid": snapshot_id,
                                                      "name": ""}, self.colony.user_prvkey)
        except ColoniesError as err:
            assert "not found" in str(err).lower() or "does not exist" in str(err).lower(), err
            return False
        return True


@pytest.fixture
def user(colony, s3_server, tmp_path) -> User:  # noqa: F811 (the fixture)
    return User(colony, s3_server, tmp_path)


def s3_secret(core: client.CoreV1Api, namespace: str, values: dict[str, str]) -> None:
    """The Secret spec.fs.s3SecretRef names, made (or replaced) with the AWS_S3_* settings."""
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=S3_SECRET), string_data=values)
    try:
        core.create_namespaced_secret(namespace, body)
    except client.ApiException as err:
        if err.status != 409:
            raise
        core.replace_namespaced_secret(S3_SECRET, namespace, body)


@pytest.fixture
def fs_executor(operator, executors, namespace, kube_api, s3_server, fs_image) -> dict[str, Any]:  # noqa: F811
    """A ColoniesExecutor with spec.fs, its S3 Secret made from the session's S3 server."""
    s3_secret(client.CoreV1Api(kube_api), namespace, s3_server.env)
    return executors.create_ready("cluster", fs={"s3SecretRef": {"name": S3_SECRET}, "image": fs_image})


def fs_spec(colony: Colony, cmd: str, fs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return tutorial_spec(colony, cmd=cmd, fs={"mount": "/cfs", "snapshots": [], "dirs": [], **fs}, **overrides)


def dir_mount(label: str, path: str, *, keep_local_on_close: bool = False) -> dict[str, Any]:
    return {"label": label, "dir": path, "keepfiles": False,
            "onconflicts": {"onstart": {"keeplocal": False}, "onclose": {"keeplocal": keep_local_on_close}}}


def job_gone(kube_api: client.ApiClient, namespace: str, process_id: str) -> bool:
    jobs = client.BatchV1Api(kube_api).list_namespaced_job(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}")
    return not jobs.items


# -- files in and out ---------------------------------------------------------------------------------------------

def test_a_label_synced_by_a_user_is_read_and_the_results_come_back(fs_executor, user, colony, kube_api,
                                                                     namespace):
    token = secrets.token_hex(3)
    user.put(f"/in-{token}", {"input.txt": "hello colonyfs\n"})
    # Two containers share the files: the results go up once both have ended.
    cmd = ('tr a-z A-Z < /cfs/in/input.txt > /cfs/out/result-$COLONIES_PROCESS_INDEX.txt; '
           'if [ "$COLONIES_PROCESS_INDEX" = 1 ]; then sleep 3; fi; echo "container $COLONIES_PROCESS_INDEX done"')
    spec = fs_spec(colony, cmd, {"dirs": [dir_mount(f"/in-{token}", "/in"),
                                          dir_mount(f"/results-{token}/{{processid}}", "/out")]},
                   conditions={"processespernode": 2})
    process = colony.client.submit(spec, colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=180)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert user.get(f"/results-{token}/{process.processid}") == {"result-0.txt": "HELLO COLONYFS\n",
                                                                 "result-1.txt": "HELLO COLONYFS\n"}
    log = log_text(colony, process.processid)
    assert "[0/colonyfs-in] /cfs/in: 1 file(s)" in log and f"from label /in-{token}" in log
    assert "[0/proc-1] container 1 done" in log
    assert "[0/colonyfs-out] the command ended (exit code proc-0=0 proc-1=0): syncing up" in log
    assert f"[0/colonyfs-out] label /results-{token}/{process.processid}: 2 file(s) from /cfs/out" in log
    # The files' volume is as big as the storage each container may use (conditions.storage, here the default:
    # Colonies v1.9.12 assigns no process that gives conditions.storage when it assigns exclusively).
    pod = job_of(kube_api, namespace, process.processid)["spec"]["template"]["spec"]
    storage = pod["containers"][0]["resources"]["limits"]["ephemeral-storage"]
    assert pod["volumes"][0] == {"name": "colonyfs", "emptyDir": {"sizeLimit": storage}}


def test_a_snapshot_made_with_the_cli_is_there_and_removed_unless_kept(fs_executor, user, colony):
    token = secrets.token_hex(3)
    user.put(f"/data-{token}", {"a.txt": "from the snapshot\n"})
    removed, kept = user.snapshot(f"/data-{token}"), user.snapshot(f"/data-{token}")
    snapshots = [{"snapshotid": removed, "label": f"/data-{token}", "dir": "/snap", "keepfiles": False,
                  "keepsnapshot": False},
                 {"snapshotid": kept, "label": f"/data-{token}", "dir": "/kept", "keepfiles": False,
                  "keepsnapshot": True}]
    process = colony.client.submit(fs_spec(colony, "cat /cfs/snap/a.txt /cfs/kept/a.txt", {"snapshots": snapshots}),
                                   colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=180)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert log_text(colony, process.processid).count("from the snapshot") == 2
    assert not user.snapshot_exists(removed)
    assert user.snapshot_exists(kept)


def test_a_failed_command_still_syncs_its_partial_results_up(fs_executor, user, colony):
    token = secrets.token_hex(3)
    cmd = "echo step 1 > /cfs/out/partial.txt; echo failing now; exit 3"
    process = colony.client.submit(fs_spec(colony, cmd, {"dirs": [dir_mount(f"/partial-{token}", "/out")]}),
                                   colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=180)
    assert final.state == ProcessState.FAILED, final.state
    assert "container main in pod 0 exited with code 3" in " ".join(final.errors)
    assert user.get(f"/partial-{token}") == {"partial.txt": "step 1\n"}
    assert "[0/colonyfs-out] the command ended (exit code main=3): syncing up" in log_text(colony, process.processid)


# -- failures say what went wrong ---------------------------------------------------------------------------------

def failed_with(colony: Colony, kube_api, namespace: str, spec: dict[str, Any], *expected: str) -> list[str]:
    """Submits the spec and waits for it to fail, with the expected words in its errors and its Job deleted."""
    process = colony.client.submit(spec, colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=180)
    assert final.state == ProcessState.FAILED, final.state
    errors = " | ".join(final.errors)
    for text in expected:
        assert text in errors, errors
    wait_for(lambda: job_gone(kube_api, namespace, process.processid), 60, 0.5, "the failed process's Job deleted")
    return final.errors


def test_a_snapshot_that_does_not_exist_fails_the_process_before_its_command(fs_executor, colony, kube_api,
                                                                            namespace):
    missing = secrets.token_hex(32)
    snapshots = [{"snapshotid": missing, "label": "/x", "dir": "/snap", "keepfiles": False, "keepsnapshot": True}]
    errors = failed_with(colony, kube_api, namespace, fs_spec(colony, "echo should not run", {"snapshots": snapshots}),
                         "ColonyFS before the command (colonyfs-in in pod 0): downloading snapshot "
                         f"{missing} to /cfs/snap failed: Snapshot not found with Id <{missing}>")
    assert "should not run" not in " ".join(errors)


def test_a_label_that_does_not_exist_is_named_when_the_command_misses_its_files(fs_executor, colony, kube_api,
                                                                              namespace):
    # As with the official executors, a label without files is an empty dir (results labels start so): the process
    # fails on its own missing input, and the log it ends with names the label.
    label = f"/nothing-here-{secrets.token_hex(3)}"
    failed_with(colony, kube_api, namespace,
                fs_spec(colony, "cat /cfs/in/input.txt", {"dirs": [dir_mount(label, "/in")]}),
                "container main in pod 0 exited with code 1",
                f"[0/colonyfs-in] label {label} has no files: /cfs/in starts empty")


def test_s3_unreachable_or_refusing_fails_the_process_with_the_reason(fs_executor, user, colony, kube_api,
                                                                     namespace, s3_server):  # noqa: F811
    core = client.CoreV1Api(kube_api)
    label = f"/in-{secrets.token_hex(3)}"
    user.put(label, {"input.txt": "x"})
    spec = fs_spec(colony, "echo should not run", {"dirs": [dir_mount(label, "/in")]})
    # S3 down: nothing answers at the endpoint (a port of this host nobody listens on).
    s3_secret(core, namespace, {**s3_server.env, "AWS_S3_ENDPOINT": s3_server.endpoint.rsplit(":", 1)[0] + ":9"})
    failed_with(colony, kube_api, namespace, spec, f"ColonyFS before the command (colonyfs-in in pod 0): syncing "
                f"label {label} down to /cfs/in failed:", "connection refused", "a server cannot be reached")
    # S3 refusing: a wrong secret key.
    s3_secret(core, namespace, {**s3_server.env, "AWS_S3_SECRETKEY": "not-the-key-" + secrets.token_hex(8)})
    failed_with(colony, kube_api, namespace, spec, "The request signature we calculated does not match",
                "S3 refused the credentials of the Secret of spec.fs.s3SecretRef")


def test_a_full_volume_fails_the_process_saying_so(operator, executors, namespace, kube_api, s3_server, fs_image,
                                                  colony):  # noqa: F811
    # A small volume: the emptyDir is as big as each container's ephemeral storage (here the resource's default).
    s3_secret(client.CoreV1Api(kube_api), namespace, s3_server.env)
    executors.create_ready("cluster", fs={"s3SecretRef": {"name": S3_SECRET}, "image": fs_image},
                           processDefaults={"ephemeralStorage": "16Mi"})
    cmd = "head -c 40000000 /dev/zero > /cfs/out/big; sleep 90"
    failed_with(colony, kube_api, namespace, fs_spec(colony, cmd, {"dirs": [dir_mount("/full", "/out")]},
                                                     conditions={"walltime": 150}, maxexectime=140),
                "was evicted from its node", "exceeds")


# -- the executor's key stays with the steps ----------------------------------------------------------------------

def test_the_process_cannot_read_the_executor_key_or_the_s3_secret(fs_executor, user, colony, kube_api, namespace,
                                                                   s3_server):  # noqa: F811
    label = f"/in-{secrets.token_hex(3)}"
    user.put(label, {"input.txt": "seen at both mounts"})
    # What a curious process looks at: its env, its mounts, the service account dir, and the files at /cfs and at
    # fs.mount (the old kube executor's path).
    cmd = ("env; cat /proc/self/mountinfo; ls -laR /var/run/secrets /run/secrets 2>&1; "
           "cat /proc/1/environ | tr '\\0' '\\n'; cat /cfs/in/input.txt /data/in/input.txt")
    process = colony.client.submit(fs_spec(colony, cmd, {"mount": "/data", "dirs": [dir_mount(label, "/in")]}),
                                   colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=180)
    assert final.state == ProcessState.SUCCESS, final.errors
    log = log_text(colony, process.processid)
    assert log.count("seen at both mounts") == 2
    secret = client.CoreV1Api(kube_api).read_namespaced_secret("cluster-executor-key", namespace)
    executor_key = base64.b64decode(secret.data["executorPrvKey"]).decode()
    assert len(executor_key) == 64
    for value in (executor_key, s3_server.env["AWS_S3_SECRETKEY"], s3_server.env["AWS_S3_ACCESSKEY"]):
        assert value not in log
    assert "COLONIES_PRVKEY" not in log and "AWS_S3_" not in log
    assert "serviceaccount" not in log and "kubernetes.io~secret" not in log and "kubernetes.io~projected" not in log
    # The Job says the same: only the steps name the Secrets.
    pod = job_of(kube_api, namespace, process.processid)["spec"]["template"]["spec"]
    for container in pod["containers"]:
        assert "secretKeyRef" not in str(container["env"])
        assert {m["name"] for m in container["volumeMounts"]} == {"colonyfs", "colonyfs-status"}
    assert all("secretKeyRef" in str(step["env"]) for step in pod["initContainers"])
