"""The make targets as a newcomer runs them on a cluster they already have: `make demo`, `make up` / `make down`
(with KUBECONFIG naming the cluster, which they must neither start nor stop and must leave as they found it), the
ColonyOS Python tutorial's scripts on `make up`, and `make image` / `make chart` installed as the README says.

The cluster the suite uses stands in for the user's. On the project's own cluster the operator runs in it by
default; COLONIES_OPERATOR_RUN=outside makes it run on this machine, as it does on kind or any other cluster."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from colonies_operator import __version__
from devtools import devenv
from devtools.colonies_client import ColoniesClient
from devtools.waiting import wait_for
from tests.chart.helm import helm

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

REPO = Path(__file__).resolve().parents[2]


def kubectl_binary() -> str:
    import shutil
    return shutil.which("kubectl") or "kubectl"


def project_cluster(kube_cluster) -> bool:
    return kube_cluster.local or devenv.is_project_cluster(kubectl_binary(), kube_cluster.kubeconfig)


def make(target: str, env: dict[str, str], timeout: float = 900, stdout_only: bool = False) -> str:
    """`make TARGET` in the checkout; fails the test with its output unless it succeeds. Returns what it printed
    (its stdout alone with `stdout_only`)."""
    result = subprocess.run(["make", "-s", "-C", str(REPO), target], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"make {target} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
    return result.stdout if stdout_only else result.stdout + result.stderr


def user_env(kube_cluster, **extra: str) -> dict[str, str]:
    """The environment of a user whose KUBECONFIG names their cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLONIES_DEV_", "COLONIES_OPERATOR_RUN",
                                                                       "COLONIES_DEMO_"))}
    return dict(env, KUBECONFIG=kube_cluster.kubeconfig, **extra)


def operators_serving(namespace: str) -> list[int]:
    """PIDs of operator processes on this machine serving `namespace`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"colonies_operator.cli" in argv and namespace.encode() in argv:
            found.append(int(proc.name))
    return found


class ClusterState:
    """What a make target must leave as it found it: the CRDs, and the cluster-scoped RBAC of its namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.before = self.now()

    def now(self) -> dict[str, set[str]]:
        rbac = client.RbacAuthorizationV1Api(self.api)
        return {
            "crds": {c.metadata.name for c in client.ApiextensionsV1Api(self.api).list_custom_resource_definition().items
                     if c.metadata.name.endswith(".colonyos.io")},
            "clusterroles": {r.metadata.name for r in rbac.list_cluster_role().items if self.namespace in r.metadata.name},
            "clusterrolebindings": {b.metadata.name for b in rbac.list_cluster_role_binding().items
                                    if self.namespace in b.metadata.name},
        }

    def namespace_exists(self) -> bool:
        return self.namespace in {n.metadata.name for n in client.CoreV1Api(self.api).list_namespace().items}

    def assert_as_found(self, namespace_existed: bool) -> None:
        if not namespace_existed:
            wait_for(lambda: not self.namespace_exists(), 120, 1, f"namespace {self.namespace} to be deleted")
        assert self.now() == self.before
        assert operators_serving(self.namespace) == [], "an operator process was left running"


def assert_cluster_still_runs(kube_cluster) -> None:
    version = subprocess.run([kubectl_binary(), "--kubeconfig", kube_cluster.kubeconfig, "version",
                              "--request-timeout=10s"], capture_output=True, text=True)
    assert version.returncode == 0, version.stderr
    if project_cluster(kube_cluster):
        status = subprocess.run([str(REPO / "hack/cluster/status.sh")], capture_output=True, text=True)
        assert status.returncode == 0, f"the project's cluster was stopped:\n{status.stdout}"


# -- make demo ----------------------------------------------------------------------------------------------------

@pytest.mark.timeout(1200)
@pytest.mark.parametrize("operator_run", [devenv.IN_CLUSTER, devenv.OUTSIDE])
def test_make_demo_on_the_kubeconfig_cluster_prints_hello_world_and_leaves_the_cluster_as_found(
        operator_run, kube_cluster, crd, kube_api):
    if operator_run == devenv.IN_CLUSTER and not project_cluster(kube_cluster):
        pytest.skip("the operator runs in the cluster only on the project's own cluster")
    namespace = f"demo-{secrets.token_hex(3)}"
    state = ClusterState(kube_api, namespace)
    out = make("demo", user_env(kube_cluster, COLONIES_DEMO_NAMESPACE=namespace, COLONIES_OPERATOR_RUN=operator_run))
    assert "neither started nor stopped" in out
    assert re.search(r"^hello world$", out, re.MULTILINE), out
    assert "is SUCCESS" in out and "demo succeeded" in out
    where = "helm upgrade --install" if operator_run == devenv.IN_CLUSTER else "starting the operator on this machine"
    assert where in out
    state.assert_as_found(namespace_existed=False)
    assert_cluster_still_runs(kube_cluster)


# -- make up / make down and the ColonyOS Python tutorial ---------------------------------------------------------

# The ColonyOS Python tutorial's scripts (github.com/colonyos/tutorials, 03-python), as they are, except the image:
# the project's cluster pulls nothing, and busybox:1.35 is the image it has where the tutorial says ubuntu:20.04.
TUTORIAL_ECHO = '''
from pycolonies import FuncSpec, Conditions, Gpu
from pycolonies import colonies_client

colonies, colonyname, colony_prvkey, executor_name, prvkey = colonies_client()

func_spec = FuncSpec(
    funcname="execute",
    kwargs={
        "cmd": "echo hello world",
        "docker-image": "busybox:1.35"
    },
    conditions = Conditions(
        colonyname=colonyname,
        executortype="container-executor",
        executornames=["dev-docker"],
        processespernode=1,
        nodes=1,
        walltime=60,
        cpu="1000m",
        mem="1Gi",
        gpu=Gpu(count=0)
    ),
    maxexectime=55,
    maxretries=3
)

process = colonies.submit_func_spec(func_spec, prvkey)
print("Process", process.processid, "submitted")

# wait for the process to be executed, timeout after 10 seconds
process = colonies.wait(process, 10, prvkey)

print("Output:")
log = colonies.get_process_log(colonyname, process.processid, 100, -1, prvkey)
for l in log:
    print(l["message"], end="")
'''

TUTORIAL_EXECUTOR = '''
from pycolonies import Crypto
from pycolonies import colonies_client
import signal
import os

class PythonExecutor:
    def __init__(self):
        colonies, colonyname, colony_prvkey, _, _ = colonies_client()
        self.colonies = colonies
        self.colonyname = colonyname
        self.colony_prvkey = colony_prvkey
        self.executorname = "helloworld-executor"
        self.executortype = "helloworld-executor"

        crypto = Crypto()
        self.executor_prvkey = crypto.prvkey()
        self.executorid = crypto.id(self.executor_prvkey)

        self.register()

    def register(self):
        executor = {
            "executorname": self.executorname,
            "executorid": self.executorid,
            "colonyname": self.colonyname,
            "executortype": self.executortype
        }

        try:
            executor = self.colonies.add_executor(executor, self.colony_prvkey)
            self.colonies.approve_executor(self.colonyname, self.executorname, self.colony_prvkey)

            self.colonies.add_function(self.colonyname,
                                       self.executorname,
                                       "helloworld",
                                       self.executor_prvkey)
        except Exception as err:
            print(err)
            os._exit(0)

        print("Executor", self.executorname, "registered")

    def start(self):
        while (True):
            try:
                process = self.colonies.assign(self.colonyname, 10, self.executor_prvkey)
                print("Process", process.processid, "is assigned to executor")
                self.colonies.add_log(process.processid, "Hello from executor\\n", self.executor_prvkey)
                if process.spec.funcname == "helloworld":
                    self.colonies.close(process.processid, ["helloworld"], self.executor_prvkey)
            except Exception as err:
                print(err)
                pass

    def unregister(self):
        self.colonies.remove_executor(self.colonyname, self.executorname, self.colony_prvkey)
        print("Executor", self.executorname, "unregistered")
        os._exit(0)

def sigint_handler(signum, frame):
    executor.unregister()

if __name__ == '__main__':
    signal.signal(signal.SIGINT, sigint_handler)
    executor = PythonExecutor()
    executor.start()
'''

TUTORIAL_SUBMIT = '''
from pycolonies import func_spec
from pycolonies import colonies_client

colonies, colonyname, colony_prvkey, executor_name, prvkey = colonies_client()

func_spec = func_spec(func="helloworld",
                      args=[],
                      colonyname=colonyname,
                      executortype="helloworld-executor")

# submit the function spec to the colonies server
process = colonies.submit_func_spec(func_spec, prvkey)
print("Process", process.processid, "submitted")

# wait for the process to be executed
process = colonies.wait(process, 10, prvkey)
print(process.output[0])
'''

TUTORIAL_SPEC = {"conditions": {"executortype": "helloworld-executor"}, "funcname": "helloworld"}

# The variables of the tutorial's docker-compose.env that the env file must set (the rest configure parts this
# environment does not have: the database, the monitor, MinIO/S3 for ColonyFS).
COMPOSE_VARIABLES = {"COLONIES_SERVER_HOST", "COLONIES_SERVER_PORT", "COLONIES_TLS", "COLONIES_COLONY_NAME",
                     "COLONIES_COLONY_ID", "COLONIES_COLONY_PRVKEY", "COLONIES_ID", "COLONIES_PRVKEY",
                     "COLONIES_SERVER_ID", "COLONIES_SERVER_PRVKEY", "COLONIES_EXECUTOR_NAME", "TZ", "LANG",
                     "COLONIES_EXCLUSIVE_ASSIGN", "COLONIES_ALLOW_EXECUTOR_REREGISTER", "COLONIES_CLI_ASCII"}
# ... and ColonyFS's, on the project's cluster (where make up runs an S3 server).
S3_VARIABLES = {"AWS_S3_ENDPOINT", "AWS_S3_ACCESSKEY", "AWS_S3_SECRETKEY", "AWS_S3_REGION", "AWS_S3_TLS",
                "AWS_S3_BUCKET", "AWS_S3_SKIPVERIFY"}
# The kube executor's own ColonyFS example (colonyos/executors, kube/README.md), with the image the cluster has.
TUTORIAL_FS_SPEC = {
    "conditions": {"executortype": "container-executor", "nodes": 1, "processespernode": 1, "mem": "64Mi",
                   "cpu": "100m", "walltime": 90},
    "funcname": "execute",
    "kwargs": {"cmd": "cat", "docker-image": "busybox:1.35", "args": ["/cfs/hello/hello.txt"]},
    "fs": {"mount": "/cfs", "dirs": [{"label": "/hello", "dir": "/hello", "keepfiles": True, "onconflicts": {
        "onstart": {"keeplocal": False}, "onclose": {"keeplocal": True}}}]},
    "maxexectime": 80, "maxretries": 0,
}


def sourced(env_file: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment after `source env_file` in bash."""
    out = subprocess.run(["bash", "-c", 'source "$1" && env -0', "bash", str(env_file)], env=base,
                         capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


class Tutorial:
    """A user's shell after `source colonies-dev.env`: the tutorial's scripts and the colonies CLI."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env, self.workdir = env, workdir

    def python(self, code: str, timeout: float = 90) -> str:
        path = self.workdir / "script.py"
        path.write_text(code)
        result = subprocess.run([sys.executable, str(path)], env=self.env, capture_output=True, text=True,
                                timeout=timeout, cwd=self.workdir)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def colonies(self, *args: str) -> str:
        result = subprocess.run(["colonies", *args], env=self.env, capture_output=True, text=True, timeout=120,
                                cwd=self.workdir)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def echo_runs_as_written(self) -> None:
        """The tutorial's "Submit a job to a Docker Executor" (its script gives the process 10 s), as its Python
        tutorial first wrote it (executornames ["dev"]) and as it is now (["dev-docker"])."""
        for executor in ("dev", "dev-docker"):
            echo = self.python(TUTORIAL_ECHO.replace('executornames=["dev-docker"]', f'executornames=["{executor}"]'))
            assert re.search(r"Process [0-9a-f]{64} submitted", echo), echo
            assert "hello world" in echo.split("Output:", 1)[1], (executor, echo)


class DevEnv:
    """`make up` / `make down` for one test: its own namespace, state directory and env file."""

    def __init__(self, kube_cluster, tmp_path: Path, namespace: str, with_kubeconfig: bool = True,
                 **settings: str) -> None:
        self.env_file = tmp_path / "colonies-dev.env"
        self.base = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        with socket.socket() as probe:  # a port of its own for the S3 server (a developer's make up may hold 9000)
            probe.bind(("127.0.0.1", 0))
            s3_port = str(probe.getsockname()[1])
        env = user_env(kube_cluster, COLONIES_DEV_ENV_FILE=str(self.env_file), COLONIES_DEV_NAMESPACE=namespace,
                       COLONIES_DEV_STATE=str(tmp_path / "state"), COLONIES_DEV_S3_PORT=s3_port, **settings)
        if not with_kubeconfig:
            del env["KUBECONFIG"]
        self.env = env
        self.up_ran = False

    def up(self) -> str:
        self.up_ran = True
        return make("up", self.env)

    def down(self) -> str:
        return make("down", self.env)

    def sourced(self) -> dict[str, str]:
        return sourced(self.env_file, self.base)


@pytest.mark.timeout(1800)
def test_make_up_on_the_kubeconfig_cluster_runs_the_python_tutorial_as_written_then_make_down_removes_it(
        kube_cluster, crd, kube_api, tmp_path):
    namespace = f"dev-env-{secrets.token_hex(3)}"
    state = ClusterState(kube_api, namespace)
    dev = DevEnv(kube_cluster, tmp_path, namespace)
    helper = None
    env: dict[str, str] = {}
    try:
        first = dev.up()
        assert "neither started nor stopped" in first
        assert f"source {dev.env_file}" in first and "make down" in first
        assert oct(dev.env_file.stat().st_mode & 0o777) == "0o600"
        env = dev.sourced()
        assert COMPOSE_VARIABLES | S3_VARIABLES <= set(env), COMPOSE_VARIABLES | S3_VARIABLES - set(env)
        assert env["COLONIES_COLONY_NAME"] == "dev" and env["COLONIES_EXECUTOR_NAME"] == "dev-docker"
        for secret in ("COLONIES_PRVKEY", "COLONIES_COLONY_PRVKEY", "COLONIES_SERVER_PRVKEY", "AWS_S3_SECRETKEY"):
            assert env[secret] not in first, f"{secret} was printed"
        users = ColoniesClient(env["COLONIES_SERVER_HOST"], int(env["COLONIES_SERVER_PORT"]))
        executor = users.get_executor("dev", "dev-docker", env["COLONIES_PRVKEY"])
        assert executor.executortype == "container-executor"

        second = dev.up()  # idempotent: same server, keys and executor
        assert dev.sourced() == env
        assert users.get_executor("dev", "dev-docker", env["COLONIES_PRVKEY"]).executorid == executor.executorid
        assert "ready" in second

        tutorial = Tutorial(env, tmp_path)
        # 1. execute with the CLI, then the tutorial's pycolonies script, run by the operator.
        assert "hello world" in tutorial.colonies("function", "submit", "--spec", str(REPO / "examples/echo.json"),
                                                  "--follow")
        tutorial.echo_runs_as_written()

        # 2. A Python executor registered next to the operator.
        (tmp_path / "helloworld_executor.py").write_text(TUTORIAL_EXECUTOR)
        helper = subprocess.Popen([sys.executable, "-u", str(tmp_path / "helloworld_executor.py")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        assert "Executor helloworld-executor registered" in helper.stdout.readline()
        table = tutorial.colonies("executor", "ls")
        assert "helloworld-executor" in table and "dev-docker" in table and "container-executor" in table
        assert re.search(r"\W dev\s+\W", table), table  # a row of its own, beside dev-docker

        # 3. A function submitted to it with pycolonies, then looked up with the CLI.
        submitted = tutorial.python(TUTORIAL_SUBMIT)
        process_id = re.search(r"Process ([0-9a-f]{64}) submitted", submitted).group(1)
        assert submitted.strip().endswith("helloworld")
        shown = tutorial.colonies("process", "get", "-p", process_id)
        assert process_id in shown and "helloworld" in shown

        # 4. The CLI's submit --follow.
        (tmp_path / "helloworld.json").write_text(json.dumps(TUTORIAL_SPEC))
        assert "Hello from executor" in tutorial.colonies("function", "submit", "--spec", "helloworld.json",
                                                          "--follow")

        # 5. ColonyFS, as the kube executor's README shows it: a folder synced to a label, read by a process.
        (tmp_path / "hello").mkdir()
        (tmp_path / "hello" / "hello.txt").write_text("Hello from ColonyFS\n")
        tutorial.colonies("fs", "sync", "-l", "/hello", "-d", "hello", "--yes")
        (tmp_path / "hellofs.json").write_text(json.dumps(TUTORIAL_FS_SPEC))
        assert "Hello from ColonyFS" in tutorial.colonies("function", "submit", "--spec", "hellofs.json", "--follow")
    finally:
        if helper is not None and helper.poll() is None:
            helper.send_signal(signal.SIGINT)  # the tutorial's executor unregisters itself
            try:
                helper.wait(20)
            except subprocess.TimeoutExpired:
                helper.kill()
        down = dev.down() if dev.up_ran else ""
    assert "removed" in down and not dev.env_file.exists()
    state.assert_as_found(namespace_existed=False)
    assert not ColoniesClient(env["COLONIES_SERVER_HOST"], int(env["COLONIES_SERVER_PORT"]),
                              connect_timeout=2).health(), "the Colonies server still runs after make down"
    assert_cluster_still_runs(kube_cluster)


@pytest.mark.timeout(1200)
def test_make_up_with_the_operator_outside_in_an_existing_namespace_and_make_down_removes_only_what_it_made(
        kube_cluster, crd, kube_api, namespace, tmp_path):
    """As on kind or any cluster other than the project's: the operator runs on this machine. The namespace and
    an object in it were there before make up, and are still there after make down."""
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="keep-me")))
    state = ClusterState(kube_api, namespace)
    dev = DevEnv(kube_cluster, tmp_path, namespace, COLONIES_OPERATOR_RUN=devenv.OUTSIDE)
    try:
        out = dev.up()
        assert "starting the operator on this machine" in out
        assert len(operators_serving(namespace)) == 1
        again = dev.up()
        assert "the operator runs on this machine already" in again and len(operators_serving(namespace)) == 1
        Tutorial(dev.sourced(), tmp_path).echo_runs_as_written()
    finally:
        down = dev.down() if dev.up_ran else ""
    assert "removed" in down
    state.assert_as_found(namespace_existed=True)
    assert state.namespace_exists()
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace).items
            if c.metadata.name != "kube-root-ca.crt"] == ["keep-me"]
    assert core.list_namespaced_secret(namespace, label_selector=devenv.CREATED_BY).items == []
    custom = client.CustomObjectsApi(kube_api)
    assert custom.list_namespaced_custom_object("colonyos.io", "v1alpha1", namespace, "coloniesexecutors")["items"] == []
    assert_cluster_still_runs(kube_cluster)


@pytest.mark.timeout(1200)
def test_make_up_without_kubeconfig_finds_the_running_project_cluster_and_make_down_keeps_it_running(
        kube_cluster, crd, kube_api, tmp_path):
    """The fresh-machine path: no KUBECONFIG, so make up runs hack/cluster/up.sh, which finds the cluster running
    (it would build and start it on a fresh machine)."""
    if not project_cluster(kube_cluster) or subprocess.run([str(REPO / "hack/cluster/status.sh")],
                                                           capture_output=True).returncode != 0:
        pytest.skip("needs the project's own cluster, running")
    namespace = f"dev-env-{secrets.token_hex(3)}"
    state = ClusterState(kube_api, namespace)
    dev = DevEnv(kube_cluster, tmp_path, namespace, with_kubeconfig=False)
    try:
        out = dev.up()
        assert "hack/cluster/up.sh" in out and "helm upgrade --install" in out
        Tutorial(dev.sourced(), tmp_path).echo_runs_as_written()
    finally:
        down = dev.down() if dev.up_ran else ""
    assert "removed" in down
    state.assert_as_found(namespace_existed=False)
    assert_cluster_still_runs(kube_cluster)


# -- make image, make chart: the README's "On your cluster" -------------------------------------------------------

def kubectl(kube_cluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([kubectl_binary(), "--kubeconfig", kube_cluster.kubeconfig, *args], input=stdin,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.timeout(1800)
def test_the_image_archive_loads_with_ctr_and_the_packaged_chart_runs_a_process_from_it(
        kube_cluster, crd, namespace, colony, tmp_path):
    """make image and make chart, then the README's "On your cluster" in its order: the image into the cluster
    (here: the project's cluster's containerd, as kind load does it), helm install with the chart's default image,
    an executor key from colonies-operator keygen registered by the colony owner, its Secret, examples/executor.yaml,
    and a process submitted with the colonies CLI."""
    if not project_cluster(kube_cluster):
        pytest.skip("imports the image into the project's cluster's containerd")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    archive = Path(make("image", env, timeout=1800, stdout_only=True).strip())
    assert archive == REPO / "dist" / f"colonies-operator-{__version__}.tar"
    with tarfile.open(archive) as tar:
        (manifest,) = json.load(tar.extractfile("manifest.json"))
        assert manifest["RepoTags"] == [f"docker.io/library/colonies-operator:{__version__}"]
        config = json.load(tar.extractfile(manifest["Config"]))
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == __version__
    inspected = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{archive}"], capture_output=True,
                                          text=True, check=True).stdout)
    assert inspected["Labels"]["org.opencontainers.image.version"] == __version__

    # kind load image-archive runs this in its node: ctr images import --all-platforms --digests - < archive.
    socket = devenv.LOCAL_CLUSTER_DIR / "containerd" / "containerd.sock"
    with open(archive, "rb") as stdin:
        imported = subprocess.run(["ctr", "--address", str(socket), "--namespace", "k8s.io", "images", "import",
                                   "--all-platforms", "--digests", "-"], stdin=stdin, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    images = subprocess.run(["ctr", "--address", str(socket), "--namespace", "k8s.io", "images", "ls", "-q"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert f"docker.io/library/colonies-operator:{__version__}" in images

    package = REPO / make("chart", env, stdout_only=True).strip()  # helm prints it relative to the checkout
    assert package == REPO / "dist" / f"colonies-operator-{__version__}.tgz"
    shown = yaml.safe_load(helm("show", "chart", str(package)).stdout)
    assert (shown["version"], shown["appVersion"]) == (__version__, __version__)

    release, kubeconfig = "colonies-operator", kube_cluster.kubeconfig
    helm("install", release, str(package), "--namespace", namespace, "--wait", "--timeout", "180s",
         kubeconfig=kubeconfig)
    try:
        image = kubectl(kube_cluster, "-n", namespace, "get", "deploy", release, "-o",
                        "jsonpath={.spec.template.spec.containers[0].image}")
        assert image == f"colonies-operator:{__version__}"
        keys = kubectl(kube_cluster, "-n", namespace, "exec", f"deploy/{release}", "--", "colonies-operator", "keygen")
        prvkey = re.search(r"^prvkey: ([0-9a-f]{64})$", keys, re.MULTILINE).group(1)
        executor_id = re.search(r"^id: +([0-9a-f]{64})$", keys, re.MULTILINE).group(1)
        added = subprocess.run([colony.server.binary, "executor", "add", "--name", "dev", "--type",
                                "container-executor", "--executorid", executor_id, "--approve"],
                               env=colony.cli_env(), capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stdout + added.stderr
        kubectl(kube_cluster, "-n", namespace, "create", "secret", "generic", "colonies-executor-key",
                f"--from-literal=executorPrvKey={prvkey}")
        example = yaml.safe_load((REPO / "examples" / "executor.yaml").read_text())
        example["spec"]["server"] = {"host": colony.server.host, "port": colony.server.port, "tls": False}
        example["spec"]["colonyName"] = colony.name
        kubectl(kube_cluster, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(example))
        kubectl(kube_cluster, "-n", namespace, "wait", "--for=condition=Ready", "--timeout=120s", "cex/dev")
        followed = subprocess.run([colony.server.binary, "function", "submit", "--spec",
                                   str(REPO / "examples" / "echo.json"), "--follow"], env=colony.cli_env(),
                                  capture_output=True, text=True, timeout=180)
        assert followed.returncode == 0 and "hello world" in followed.stdout, followed.stdout + followed.stderr
        kubectl(kube_cluster, "-n", namespace, "delete", "cex/dev", "--timeout=60s")
    except BaseException:
        print(subprocess.run([kubectl_binary(), "--kubeconfig", kubeconfig, "-n", namespace, "logs",
                              f"deploy/{release}", "--tail=80"], capture_output=True, text=True).stdout)
        raise
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", kubeconfig=kubeconfig, check=False)
