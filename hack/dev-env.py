"""The ColonyOS tutorial's dev environment, on the local cluster: `make up` and `make down`.

`up` starts the local Kubernetes cluster, a Colonies server with a colony named `dev` and a user, an S3 server
for ColonyFS (MinIO, hack/s3.sh, its data in the state dir), and the operator (installed with its Helm chart)
with a ColoniesExecutor named `dev` (Colonies executor `dev-docker`, type `container-executor`, as in the
tutorial's docker-compose set-up) that syncs ColonyFS. It writes an env file with the variables of the tutorial's
`docker-compose.env`, so after `source` the tutorial's scripts, pycolonies and the `colonies` CLI (`colonies fs
sync` too) talk to this environment. Running `up` again starts only what is not running and keeps the
keys. `down` removes the executor, the operator, the server with its data and the env file; the cluster,
which `make demo` and `make test` share, keeps running unless STOP_CLUSTER=1.

Settings (environment): COLONIES_DEV_ENV_FILE (default: colonies-dev.env in the repository, git-ignored),
COLONIES_DEV_NAMESPACE (default colonies-dev), COLONIES_DEV_STATE (default: dev/ in the project's cache),
COLONIES_DEV_S3_PORT (default 9000: the S3 server's port on the cluster bridge).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from colonies_operator.colonies import ColoniesError, crypto
from devtools.colonies_server import ColoniesServer

RELEASE = "colonies-operator"
RESOURCE = "dev"
COLONY = "dev"
EXECUTOR_NAME = "dev-docker"  # the tutorial's specs target executornames ["dev-docker"]
EXECUTOR_TYPE = "container-executor"
USER = "myuser"
CACHE = Path(os.environ.get("COLONIES_OPERATOR_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colonies-operator")
ENV_FILE = Path(os.environ.get("COLONIES_DEV_ENV_FILE") or REPO / "colonies-dev.env")
NAMESPACE = os.environ.get("COLONIES_DEV_NAMESPACE") or "colonies-dev"
STATE_DIR = Path(os.environ.get("COLONIES_DEV_STATE") or CACHE / "dev")
S3_SECRET = "colonies-s3"  # the ColoniesExecutor's spec.fs.s3SecretRef
started = time.monotonic()


def step(text: str) -> None:
    print(f"==> [{time.monotonic() - started:5.0f}s] {text}", flush=True)


def run(*args: str, stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"dev-env: {' '.join(args[:4])} … failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def script(name: str, *args: str) -> str:
    """A hack/ script; its progress goes to the terminal, its last line of output is returned."""
    return subprocess.run([str(REPO / "hack" / name), *args], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip().splitlines()[-1]


def tools() -> tuple[tuple[str, ...], tuple[str, ...]]:
    if os.environ.get("KUBECONFIG"):
        raise SystemExit("make up runs on the project's own cluster; unset KUBECONFIG (see the README for your own "
                         "cluster)")
    step("starting the local Kubernetes cluster (hack/cluster/up.sh; the first run builds it)")
    kubeconfig = script("cluster/up.sh")
    helm = (script("build-helm.sh"), "--kubeconfig", kubeconfig)
    return ("kubectl", "--kubeconfig", kubeconfig), helm


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


def write_env_file(server: ColoniesServer, keys: dict[str, str]) -> None:
    lines = ["# The colonies-operator dev environment, written by `make up`; `make down` removes it.",
             "# It holds private keys: keep it to yourself. Not set here, because nothing here uses them:",
             "# COLONIES_DB_* (the server's database is private to it), COLONIES_MONITOR_* (no monitor runs),",
             "# MINIO_* (the S3 server's own, kept by hack/s3.sh), EXECUTOR_FS_DIR (the operator's Jobs keep their",
             "# files in their pods).",
             *(f"export {name}={shlex.quote(value)}" for name, value in env_lines(server, keys) + s3_settings()),
             f"export PATH={shlex.quote(str(Path(server.binary).parent))}:\"$PATH\"  # the colonies CLI"]
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    partial = ENV_FILE.with_name(ENV_FILE.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(partial, ENV_FILE)


def up() -> int:
    kubectl, helm = tools()
    step("building the operator image and the colonies CLI's (ColonyFS) without Docker, loading them into the cluster")
    image = script("load-image.sh", "operator")
    script("load-image.sh", "colonies")  # spec.fs.image's default reference
    step("starting the S3 server for ColonyFS (hack/s3.sh; kept running, its data kept until make down)")
    s3("up")
    step("starting the Colonies server (kept running; its data and keys are kept until make down)")
    server = ColoniesServer(state_dir=STATE_DIR).start()
    keys = colony_keys(server)
    step(f"Colonies server at {server.client.url}, colony {COLONY}, user {USER}")
    # Helm installs a chart's CRDs only when absent: apply this checkout's, so its fields are known.
    run(*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds/coloniesexecutor.yaml"))
    phase = run(*kubectl, "get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "jsonpath={.status.phase}")
    if phase == "Terminating":
        step(f"waiting for namespace {NAMESPACE} to finish terminating (an earlier make down)")
        run(*kubectl, "wait", "--for=delete", f"namespace/{NAMESPACE}", "--timeout=180s")
    step(f"helm upgrade --install {RELEASE} charts/colonies-operator --namespace {NAMESPACE} (image {image})")
    repository, tag = image.rsplit(":", 1)
    run(*helm, "upgrade", "--install", RELEASE, str(REPO / "charts/colonies-operator"), "--namespace", NAMESPACE,
        "--create-namespace", "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", "--wait", "--timeout", "180s")
    step(f"the colony key Secret and the ColoniesExecutor {RESOURCE} (executor {EXECUTOR_NAME}, type {EXECUTOR_TYPE})")
    run(*kubectl, "apply", "-f", "-", stdin=run(
        *kubectl, "-n", NAMESPACE, "create", "secret", "generic", "colonies-colony-key",
        f"--from-literal=colonyPrvKey={keys['colony_prvkey']}", "--dry-run=client", "-o", "yaml"))
    run(*kubectl, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_SECRET, "namespace": NAMESPACE},
        "stringData": dict(s3_settings())}))
    executor = {"apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor",
                "metadata": {"name": RESOURCE, "namespace": NAMESPACE},
                "spec": {"server": {"host": server.host, "port": server.port}, "colonyName": COLONY,
                         "executorName": EXECUTOR_NAME, "executorType": EXECUTOR_TYPE,
                         "credentials": {"colonyKeySecret": {"name": "colonies-colony-key"}},
                         "fs": {"s3SecretRef": {"name": S3_SECRET}}}}
    run(*kubectl, "apply", "-f", "-", stdin=json.dumps(executor))
    run(*kubectl, "-n", NAMESPACE, "wait", "--for=condition=Ready", "--timeout=120s", f"coloniesexecutor/{RESOURCE}")
    print(run(*kubectl, "-n", NAMESPACE, "get", "coloniesexecutors"), end="")
    write_env_file(server, keys)
    shown = os.path.relpath(ENV_FILE) if ENV_FILE.is_relative_to(Path.cwd()) else str(ENV_FILE)
    step(f"ready. Wrote {shown} (mode 0600: it holds private keys). Now:")
    print(f"\n    source {shown}\n    colonies executor ls\n"
          "    colonies function submit --spec examples/echo.json --follow\n"
          "    colonies fs sync -l /hello -d ./hello --yes   # ColonyFS, for specs with an fs section\n\n"
          "The ColonyOS Python tutorial's scripts run as they are after the source (images: busybox:1.35 is in the "
          "local cluster, which pulls nothing).\n`make down` removes everything `make up` made (the cluster keeps "
          "running for make demo and make test; `make down STOP_CLUSTER=1` stops it too).", flush=True)
    return 0


def down() -> int:
    kubeconfig = None
    if os.environ.get("KUBECONFIG"):
        raise SystemExit("make down works on the project's own cluster; unset KUBECONFIG")
    status = subprocess.run([str(REPO / "hack/cluster/status.sh")], capture_output=True, text=True)
    if status.returncode == 0:
        kubeconfig = script("cluster/up.sh")
    if kubeconfig:
        kubectl = ("kubectl", "--kubeconfig", kubeconfig)
        step(f"deleting the ColoniesExecutor {RESOURCE} (its executor leaves the colony), then helm uninstall")
        deleted = subprocess.run([*kubectl, "-n", NAMESPACE, "delete", "coloniesexecutor", RESOURCE,
                                  "--ignore-not-found", "--timeout=60s"], capture_output=True, text=True)
        if deleted.returncode != 0:
            # The operator could not hand the work back (Colonies unreachable?): the finalizer would keep the
            # namespace forever once the operator is gone, and the server goes away below anyway.
            step("the operator did not finish the deletion in 60s; removing its finalizer")
            run(*kubectl, "-n", NAMESPACE, "patch", "coloniesexecutor", RESOURCE, "--type", "merge", "-p",
                '{"metadata":{"finalizers":null}}', check=False)
        helm = (script("build-helm.sh"), "--kubeconfig", kubeconfig)
        run(*helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
        run(*kubectl, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
    else:
        step("the local cluster is not running: nothing to remove there")
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
    if os.environ.get("STOP_CLUSTER") == "1":
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
