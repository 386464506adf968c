"""The ColonyOS tutorial's dev environment: `make up` and `make down`.

`up` starts a Colonies server with a colony named `dev` and a user, and the operator with two ColoniesExecutors, the
Colonies executors `dev` and `dev-docker` of type `container-executor`: the names the tutorial's scripts address. On
the project's cluster it also starts an S3 server for ColonyFS (MinIO, hack/s3.sh, its data in the state dir) and
the executors sync ColonyFS. It writes an env file with the variables of the tutorial's `docker-compose.env`, so
after `source` the tutorial's scripts, pycolonies and the `colonies` CLI (`colonies fs sync` too) talk to this
environment. Running `up` again starts only what is not running and keeps the keys.

The cluster is the one KUBECONFIG names, else the project's local cluster (started if needed). On the project's
cluster the operator runs in it (Helm chart); elsewhere it runs on this machine against the cluster, in the
background, until `make down` (devtools/devenv.py). `up` records what it creates in the cluster; `down` removes
exactly that (the ColoniesExecutor, the operator, the namespace and the CRD if `up` created them), then the server
with its data and the env file. The cluster keeps running; STOP_CLUSTER=1 stops the project's own cluster too.

Settings (environment): COLONIES_DEV_ENV_FILE (default: colonies-dev.env in the repository, git-ignored),
COLONIES_DEV_NAMESPACE (default colonies-dev), COLONIES_DEV_STATE (default: dev/ in the project's cache),
COLONIES_OPERATOR_RUN (in-cluster or outside), COLONIES_DEV_S3_PORT (default 9000: the S3 server's port on the
cluster bridge).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from colonies_operator.colonies import ColoniesError, crypto
from devtools import devenv
from devtools.colonies_server import ColoniesServer
from devtools.devenv import CACHE, REPO, run, step

COLONY = "dev"
# The executors the tutorial's scripts address, one ColoniesExecutor (and Colonies executor) each: `dev`
# (executornames ["dev"] in colonyos/tutorials' Python tutorial) and `dev-docker` (its newer 03-python, and the
# COLONIES_EXECUTOR_NAME of Colonies' docker-compose.env, which the env file keeps).
EXECUTORS = ("dev", "dev-docker")
# Colonies wakes one long-polling executor per new process; one that cannot take it (a process addressed to the
# other name) sleeps again and nobody else is woken until a poll ends. Short polls keep that wait within the
# tutorial script's 10 s.
ASSIGN_TIMEOUT_SECONDS = 2
EXECUTOR_NAME = "dev-docker"
EXECUTOR_TYPE = "container-executor"
USER = "myuser"
CREATED_BY = "make-up"
ENV_FILE = Path(os.environ.get("COLONIES_DEV_ENV_FILE") or REPO / "colonies-dev.env")
NAMESPACE = os.environ.get("COLONIES_DEV_NAMESPACE") or "colonies-dev"
STATE_DIR = Path(os.environ.get("COLONIES_DEV_STATE") or CACHE / "dev")
MADE_FILE = STATE_DIR / "cluster.json"
OPERATOR_LOG = STATE_DIR / "operator.log"
S3_SECRET = "colonies-s3"  # the ColoniesExecutors' spec.fs.s3SecretRef


def colony_keys(server: ColoniesServer) -> dict[str, str]:
    """The dev colony and its user: created once, then found again by the keys kept with the server."""
    state = server.state()
    keys = state.get("colony") or {}
    if not keys:
        keys = {"colony_prvkey": crypto.generate_prvkey(), "user_prvkey": crypto.generate_prvkey()}
        server.save(colony=keys)
    try:
        server.client.rpc("getcolonymsg", {"colonyname": COLONY}, keys["user_prvkey"])
        return keys
    except ColoniesError:
        pass  # a new database: create the colony and the user
    server.client.add_colony(crypto.prvkey_to_id(keys["colony_prvkey"]), COLONY, server.server_prvkey)
    server.client.add_user(COLONY, crypto.prvkey_to_id(keys["user_prvkey"]), USER, keys["colony_prvkey"])
    return keys


def env_lines(server: ColoniesServer, keys: dict[str, str]) -> list[tuple[str, str]]:
    """The variables of the tutorial's docker-compose.env that mean something here, with this environment's
    values."""
    return [
        ("LANG", "C.UTF-8"), ("LANGUAGE", "C.UTF-8"), ("LC_ALL", "C.UTF-8"), ("LC_CTYPE", "UTF-8"), ("TZ", "UTC"),
        ("COLONIES_SERVER_HOST", server.host),
        ("COLONIES_SERVER_PORT", str(server.port)),
        ("COLONIES_TLS", "false"),
        ("COLONIES_SERVER_TLS", "false"),  # what pycolonies' colonies_client() reads
        ("COLONIES_SERVER_ID", crypto.prvkey_to_id(server.server_prvkey)),
        ("COLONIES_SERVER_PRVKEY", server.server_prvkey),
        ("COLONIES_COLONY_NAME", COLONY),
        ("COLONIES_COLONY_ID", crypto.prvkey_to_id(keys["colony_prvkey"])),
        ("COLONIES_COLONY_PRVKEY", keys["colony_prvkey"]),
        ("COLONIES_ID", crypto.prvkey_to_id(keys["user_prvkey"])),
        ("COLONIES_PRVKEY", keys["user_prvkey"]),
        ("COLONIES_EXCLUSIVE_ASSIGN", "true"),
        ("COLONIES_ALLOW_EXECUTOR_REREGISTER", "true"),
        ("COLONIES_VERBOSE", "false"),
        ("COLONIES_EXECUTOR_NAME", EXECUTOR_NAME),
        ("COLONIES_EXECUTOR_TYPE", EXECUTOR_TYPE),
        ("COLONIES_CLI_ASCII", "false"),
    ]


def s3(command: str, *args: str) -> str:
    """hack/s3.sh with the dev environment's state dir (data and credentials in the cache) and port."""
    env = dict(os.environ, S3_STATE_DIR=str(STATE_DIR / "s3"),
               S3_PORT=os.environ.get("COLONIES_DEV_S3_PORT") or "9000")
    return subprocess.run([str(REPO / "hack" / "s3.sh"), command, *args], check=True, stdout=subprocess.PIPE,
                          text=True, env=env).stdout


def s3_settings() -> list[tuple[str, str]]:
    """The AWS_S3_* variables of the running S3 server (`hack/s3.sh env`), in its order."""
    return re.findall(r'^export (AWS_S3_[A-Z]+)="([^"]*)"$', s3("env"), re.MULTILINE)


def write_env_file(server: ColoniesServer, keys: dict[str, str], s3_variables: list[tuple[str, str]]) -> None:
    lines = ["# The colonies-operator dev environment, written by `make up`; `make down` removes it.",
             "# It holds private keys: keep it to yourself. Not set here, because nothing here uses them:",
             "# COLONIES_DB_* (the server's database is private to it), COLONIES_MONITOR_* (no monitor runs),",
             "# MINIO_* (the S3 server's own, kept by hack/s3.sh), EXECUTOR_FS_DIR (the operator's Jobs keep their",
             "# files in their pods).",
             *(f"export {name}={shlex.quote(value)}" for name, value in env_lines(server, keys) + s3_variables),
             f"export PATH={shlex.quote(str(Path(server.binary).parent))}:\"$PATH\"  # the colonies CLI"]
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    partial = ENV_FILE.with_name(ENV_FILE.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(partial, ENV_FILE)


def up() -> int:
    cluster = devenv.find_cluster("make up")
    made = devenv.Made.load(MADE_FILE) or devenv.Made(kubeconfig=cluster.kubeconfig,
                                                     operator_run=cluster.operator_run)
    if made.kubeconfig != cluster.kubeconfig or made.operator_run != cluster.operator_run:
        raise SystemExit(f"make up already set up the operator ({made.operator_run}) on the cluster of "
                         f"{made.kubeconfig}: run make down first")
    # ColonyFS needs the sync steps in the pods to reach an S3 server and the Colonies server: only the project's
    # cluster has both, on its bridge.
    colonyfs = cluster.project_own
    if colonyfs:
        step("loading the colonies CLI's image (the ColonyFS steps) and starting the S3 server (hack/s3.sh; kept "
             "running, its data kept until make down)")
        devenv.script("load-image.sh", "colonies")  # spec.fs.image's default reference
        s3("up")
    step("starting the Colonies server (kept running; its data and keys are kept until make down)")
    server = ColoniesServer(state_dir=STATE_DIR).start()
    keys = colony_keys(server)
    step(f"Colonies server at {server.client.url}, colony {COLONY}, user {USER}")
    try:
        devenv.ensure_crd(cluster, made)
        devenv.ensure_namespace(cluster, made, NAMESPACE, CREATED_BY)
        if cluster.operator_run == devenv.IN_CLUSTER:
            devenv.install_operator(cluster, made)
        elif devenv.operator_alive(made.operator_pid):
            step(f"the operator runs on this machine already (pid {made.operator_pid}, log {OPERATOR_LOG})")
        else:
            devenv.start_operator_outside(cluster, made, OPERATOR_LOG)
        step(f"the colony key Secret and the ColoniesExecutors {' and '.join(EXECUTORS)} (type {EXECUTOR_TYPE})")
        secret = json.loads(run(*cluster.kubectl, "create", "secret", "generic", "colonies-colony-key",
                                f"--from-literal=colonyPrvKey={keys['colony_prvkey']}", "--dry-run=client", "-o",
                                "json"))
        devenv.apply(cluster, made, secret, CREATED_BY)
        if colonyfs:
            devenv.apply(cluster, made, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_SECRET},
                                         "stringData": dict(s3_settings())}, CREATED_BY)
        for name in EXECUTORS:
            devenv.apply(cluster, made, {
                "apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor", "metadata": {"name": name},
                "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": COLONY,
                         "executorType": EXECUTOR_TYPE, "assignTimeoutSeconds": ASSIGN_TIMEOUT_SECONDS,
                         "credentials": {"colonyKeySecret": {"name": "colonies-colony-key"}},
                         **({"fs": {"s3SecretRef": {"name": S3_SECRET}}} if colonyfs else {})}}, CREATED_BY)
    finally:
        made.save(MADE_FILE)
    for name in EXECUTORS:
        devenv.wait_ready(cluster, NAMESPACE, name)
    print(run(*cluster.kubectl, "-n", NAMESPACE, "get", "coloniesexecutors"), end="")
    write_env_file(server, keys, s3_settings() if colonyfs else [])
    shown = os.path.relpath(ENV_FILE) if ENV_FILE.is_relative_to(Path.cwd()) else str(ENV_FILE)
    where = ("in the cluster (kubectl -n {ns} logs deploy/{rel})".format(ns=NAMESPACE, rel=devenv.RELEASE)
             if cluster.operator_run == devenv.IN_CLUSTER else f"on this machine (log {OPERATOR_LOG})")
    step(f"ready: the operator runs {where}. Wrote {shown} (mode 0600: it holds private keys). Now:")
    print(f"\n    source {shown}\n    colonies executor ls\n"
          "    colonies function submit --spec examples/echo.json --follow\n"
          + ("    colonies fs sync -l /hello -d ./hello --yes   # ColonyFS, for specs with an fs section\n"
             if colonyfs else "") + "\n"
          "The ColonyOS Python tutorial's scripts run as they are after the source (images: the project's cluster "
          "pulls nothing, and has busybox:1.35).\n`make down` removes what `make up` made, and nothing else; the "
          "cluster keeps running.", flush=True)
    return 0


def legacy_made() -> devenv.Made | None:
    """What an older `make up` (which kept no record) made on the project's cluster: its namespace and release."""
    if os.environ.get("KUBECONFIG") or not (devenv.LOCAL_CLUSTER_DIR / "kubeconfig").exists():
        return None
    return devenv.Made(kubeconfig=str(devenv.LOCAL_CLUSTER_DIR / "kubeconfig"), operator_run=devenv.IN_CLUSTER,
                       namespace=NAMESPACE, namespace_created=True, release=devenv.RELEASE,
                       objects=["coloniesexecutor/dev"])


def down() -> int:
    made = devenv.Made.load(MADE_FILE) or legacy_made()
    if made and made.kubeconfig:
        kubectl = shutil.which("kubectl") or str(Path(devenv.script("build-k8s.sh")) / "kubectl")
        cluster = devenv.Cluster(made.kubeconfig, False, True, kubectl, made.operator_run)
        answers = subprocess.run([*cluster.kubectl, "version", "--request-timeout=10s"],
                                 capture_output=True).returncode == 0
        if answers:
            devenv.remove_made(cluster, made)
        else:
            step(f"the cluster of {made.kubeconfig} does not answer: nothing removed there (make up had made: "
                 f"{', '.join(made.objects) or 'nothing'} in namespace {made.namespace or '-'})")
            devenv.stop_operator(made)
    else:
        step("make up recorded nothing in a cluster")
    if STATE_DIR.exists():
        step("stopping the S3 server and removing its data and credentials")
        try:
            s3("down", "--purge")
        except subprocess.CalledProcessError:
            step("hack/s3.sh down failed (see above); the Colonies server goes on being removed")
        step("stopping the Colonies server and removing its data and keys")
        ColoniesServer(state_dir=STATE_DIR).close()
        shutil.rmtree(STATE_DIR, ignore_errors=True)
    ENV_FILE.unlink(missing_ok=True)
    if os.environ.get("STOP_CLUSTER") == "1" and not os.environ.get("KUBECONFIG"):
        step("stopping the local cluster (STOP_CLUSTER=1)")
        subprocess.run([str(REPO / "hack/cluster/down.sh")], check=False)
    step("removed")
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["up"]:
        return up()
    if argv[1:] == ["down"]:
        return down()
    raise SystemExit(f"usage: {argv[0]} up|down")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
