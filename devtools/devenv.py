"""Where `make demo` and `make up` run the operator, and how they leave a cluster as they found it.

The cluster is the one KUBECONFIG names, or else the project's own local cluster (hack/cluster/up.sh starts it).
On the project's cluster the operator runs in it: its image is imported into the cluster's containerd and the
Helm chart installs it. On any other cluster (kind, minikube, a real one) it runs on this machine, against that
cluster: the Colonies server these commands start lives on this machine, where that cluster's pods cannot reach it,
and Jobs need no image of the operator. COLONIES_OPERATOR_RUN=outside (or in-cluster) chooses.

What a command creates in the cluster is recorded in a `Made`, and only that is removed afterwards: a namespace it
created (labelled app.kubernetes.io/created-by), the CRD when it was absent, the Helm release, the objects it
applied, the operator process it started.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devtools.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("COLONIES_OPERATOR_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colonies-operator")
LOCAL_CLUSTER_DIR = Path(os.environ.get("COLONIES_OPERATOR_CLUSTER_DIR") or "/var/lib/colonies-operator-cluster")
CRD_NAME = "coloniesexecutors.colonyos.io"
CREATED_BY = "app.kubernetes.io/created-by"
RELEASE = "colonies-operator"
IN_CLUSTER, OUTSIDE = "in-cluster", "outside"
started = time.monotonic()


def step(text: str) -> None:
    print(f"==> [{time.monotonic() - started:5.0f}s] {text}", flush=True)


def run(*args: str, stdin: str | None = None, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Runs a command; with `check`, a failure ends the program with the command's own output."""
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise SystemExit(f"{Path(sys.argv[0]).name}: {Path(args[0]).name} {' '.join(args[1:5])} … failed:\n"
                         f"{result.stdout}{result.stderr}")
    return result.stdout


def script(name: str, *args: str) -> str:
    """A hack/ script; its progress goes to the terminal, its last line of output is returned."""
    out = subprocess.run([str(REPO / "hack" / name), *args], check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


@dataclasses.dataclass
class Cluster:
    """The cluster a command works on, and how the operator runs there."""

    kubeconfig: str
    project_own: bool  # the project's local cluster: its containerd takes the operator's image
    from_env: bool     # named by KUBECONFIG; else this command started (or found) the project's cluster
    kubectl_binary: str
    operator_run: str  # IN_CLUSTER or OUTSIDE

    @property
    def kubectl(self) -> tuple[str, ...]:
        return (self.kubectl_binary, "--kubeconfig", self.kubeconfig)

    def helm(self) -> tuple[str, ...]:
        return (script("build-helm.sh"), "--kubeconfig", self.kubeconfig)


def _server_and_ca(kubectl: str, kubeconfig: str) -> tuple[str, str] | None:
    """The API server URL and CA of the kubeconfig's current context."""
    result = subprocess.run([kubectl, "config", "view", "--raw", "--minify", "-o", "json"], capture_output=True,
                            text=True, env=dict(os.environ, KUBECONFIG=kubeconfig))
    if result.returncode != 0:
        return None
    (cluster,) = [c["cluster"] for c in json.loads(result.stdout).get("clusters") or [{}]][:1] or [{}]
    ca = cluster.get("certificate-authority-data") or ""
    if not ca and cluster.get("certificate-authority"):
        try:
            ca = Path(cluster["certificate-authority"]).read_text()
        except OSError:
            ca = ""
    return cluster.get("server", ""), ca


def is_project_cluster(kubectl: str, kubeconfig: str) -> bool:
    """Whether `kubeconfig` names the project's own local cluster (same API server, same CA)."""
    local = LOCAL_CLUSTER_DIR / "kubeconfig"
    if not local.exists():
        return False
    mine = _server_and_ca(kubectl, str(local))
    return mine is not None and mine == _server_and_ca(kubectl, kubeconfig)


def find_cluster(purpose: str) -> Cluster:
    """The cluster KUBECONFIG names, or the project's own, started (or found running) with hack/cluster/up.sh."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        # The user's kubectl talks to the user's cluster; the project's pinned one only when there is none.
        kubectl = shutil.which("kubectl") or str(Path(script("build-k8s.sh")) / "kubectl")
        own = is_project_cluster(kubectl, kubeconfig)
        where = "the project's local cluster" if own else "the cluster KUBECONFIG names"
        step(f"{purpose} on {where} ({kubeconfig}); it is neither started nor stopped here")
        if subprocess.run([kubectl, "--kubeconfig", kubeconfig, "version", "--request-timeout=10s"],
                          capture_output=True).returncode != 0:
            raise SystemExit(f"{Path(sys.argv[0]).name}: the cluster of KUBECONFIG={kubeconfig} does not answer "
                             f"(kubectl version failed): check the file and its current context")
    else:
        step("starting the local Kubernetes cluster (hack/cluster/up.sh; the first run builds it)")
        kubeconfig = script("cluster/up.sh")
        kubectl = str(Path(script("build-k8s.sh")) / "kubectl")
        own = True
    choice = os.environ.get("COLONIES_OPERATOR_RUN") or (IN_CLUSTER if own else OUTSIDE)
    if choice not in (IN_CLUSTER, OUTSIDE):
        raise SystemExit(f"COLONIES_OPERATOR_RUN must be {IN_CLUSTER} or {OUTSIDE}, not {choice!r}")
    if choice == IN_CLUSTER and not own:
        raise SystemExit(f"{Path(sys.argv[0]).name}: the operator runs in the cluster only on the project's own "
                         "cluster: the Colonies server started here is out of reach of other clusters' pods. Unset "
                         "COLONIES_OPERATOR_RUN, so that the operator runs on this machine against your cluster")
    return Cluster(kubeconfig, own, bool(os.environ.get("KUBECONFIG")), kubectl, choice)


@dataclasses.dataclass
class Made:
    """What a command created in the cluster; only this is removed afterwards."""

    kubeconfig: str = ""
    operator_run: str = ""
    namespace: str = ""
    namespace_created: bool = False
    crd_created: bool = False
    release: str = ""            # a Helm release installed in `namespace`
    operator_pid: int = 0        # an operator process started on this machine
    objects: list[str] = dataclasses.field(default_factory=list)  # "kind/name" applied in `namespace`

    @classmethod
    def load(cls, path: Path) -> "Made | None":
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1))


def ensure_crd(cluster: Cluster, made: Made) -> None:
    """The ColoniesExecutor CRD: this checkout's when the cluster has none (then recorded as made) or is the
    project's own (whose CRD is this checkout's to set: an older one would refuse newer fields); on another
    cluster, the one there is, left as it is."""
    if run(*cluster.kubectl, "get", "crd", CRD_NAME, "--ignore-not-found", "-o", "name"):
        if cluster.project_own:
            run(*cluster.kubectl, "apply", "--server-side", "--force-conflicts", "-f",
                str(REPO / "crds" / "coloniesexecutor.yaml"))
        return
    step("the cluster has no ColoniesExecutor CRD: applying crds/coloniesexecutor.yaml (removed afterwards)")
    run(*cluster.kubectl, "apply", "--server-side", "-f", str(REPO / "crds" / "coloniesexecutor.yaml"))
    run(*cluster.kubectl, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    made.crd_created = True


def ensure_namespace(cluster: Cluster, made: Made, namespace: str, created_by: str) -> None:
    """The namespace, created (and labelled, and recorded) when absent; one being deleted is waited for."""
    made.namespace = namespace
    found = run(*cluster.kubectl, "get", "namespace", namespace, "--ignore-not-found", "-o", "json")
    if found and json.loads(found)["status"].get("phase") == "Terminating":
        step(f"waiting for namespace {namespace} to finish terminating")
        run(*cluster.kubectl, "wait", "--for=delete", f"namespace/{namespace}", "--timeout=180s")
        found = ""
    if found:
        labels = json.loads(found)["metadata"].get("labels") or {}
        made.namespace_created = made.namespace_created or labels.get(CREATED_BY) == created_by
        return
    run(*cluster.kubectl, "create", "namespace", namespace)
    run(*cluster.kubectl, "label", "namespace", namespace, f"{CREATED_BY}={created_by}")
    made.namespace_created = True


def apply(cluster: Cluster, made: Made, manifest: dict[str, Any], created_by: str) -> None:
    """Applies one object into `made.namespace`, labelled, and records it."""
    manifest = json.loads(json.dumps(manifest))
    manifest["metadata"].setdefault("labels", {})[CREATED_BY] = created_by
    manifest["metadata"]["namespace"] = made.namespace
    run(*cluster.kubectl, "apply", "-f", "-", stdin=json.dumps(manifest))
    key = f"{manifest['kind'].lower()}/{manifest['metadata']['name']}"
    if key not in made.objects:
        made.objects.append(key)


def install_operator(cluster: Cluster, made: Made) -> str:
    """The operator in the project's cluster: its image (built from this checkout) imported into the cluster's
    containerd, then the chart installed into `made.namespace`. Returns the image."""
    step("building the operator image from the Dockerfile (buildah) and importing it into the cluster")
    image = script("load-image.sh", "operator")
    repository, tag = image.rsplit(":", 1)
    step(f"helm upgrade --install {RELEASE} charts/colonies-operator --namespace {made.namespace} (image {image})")
    run(*cluster.helm(), "upgrade", "--install", RELEASE, str(REPO / "charts/colonies-operator"),
        "--namespace", made.namespace, "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", "--wait", "--timeout", "180s")
    made.release = RELEASE
    return image


def operator_alive(pid: int) -> bool:
    """Whether `pid` is still the operator this module started (PIDs get reused)."""
    try:
        return b"colonies_operator.cli" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def start_operator_outside(cluster: Cluster, made: Made, log_path: Path) -> subprocess.Popen:
    """`colonies-operator run` on this machine, against the cluster, serving `made.namespace`; its own session,
    so it outlives the command that started it (make up) until stop_operator."""
    step(f"starting the operator on this machine against the cluster (namespace {made.namespace}; log {log_path})")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig, PYTHONUNBUFFERED="1", PYTHONMALLOC="malloc")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "colonies_operator.cli", "run", "--namespace",
                                 made.namespace], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    made.operator_pid = proc.pid
    return proc


def stop_operator(made: Made) -> None:
    """Stops the operator process this module started (SIGTERM, then SIGKILL after 20 s)."""
    pid, made.operator_pid = made.operator_pid, 0
    if not pid or not operator_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not operator_alive(pid), 20, 0.2, "the operator to stop")
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, os.WNOHANG)  # reaped here when this process started it
    except ChildProcessError:
        pass


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: int = 120) -> None:
    """Waits for the ColoniesExecutor to be Ready; if it is not, ends with its conditions."""
    waited = subprocess.run([*cluster.kubectl, "-n", namespace, "wait", "--for=condition=Ready",
                             f"--timeout={timeout}s", f"coloniesexecutor/{name}"], capture_output=True, text=True)
    if waited.returncode != 0:
        conditions = run(*cluster.kubectl, "-n", namespace, "get", "coloniesexecutor", name, "-o",
                         "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{\"\\n\"}"
                         "{end}", check=False)
        raise SystemExit(f"ColoniesExecutor {namespace}/{name} is not Ready after {timeout}s:\n{conditions}")


def remove_made(cluster: Cluster, made: Made) -> None:
    """Removes what `made` records, in the order that lets the operator finish its own clean-up: the
    ColoniesExecutors first (the operator hands their work back and drops its finalizer), then the operator, the
    other objects, the namespace, and the CRD when it was made and nothing else uses it."""
    kubectl, namespace = cluster.kubectl, made.namespace
    for key in [k for k in made.objects if k.startswith("coloniesexecutor/")]:
        step(f"deleting the ColoniesExecutor {key.split('/', 1)[1]} (its executor leaves the colony)")
        deleted = subprocess.run([*kubectl, "-n", namespace, "delete", key, "--ignore-not-found", "--timeout=60s"],
                                 capture_output=True, text=True)
        if deleted.returncode != 0:
            # The operator could not hand the work back (Colonies unreachable?): without it the finalizer would
            # hold the resource, and its namespace, forever.
            step("the operator did not finish the deletion in 60s; removing its finalizer")
            run(*kubectl, "-n", namespace, "patch", key, "--type", "merge", "-p",
                '{"metadata":{"finalizers":null}}', check=False)
        made.objects.remove(key)
    if made.operator_pid:
        step("stopping the operator")
        stop_operator(made)
    if made.release:
        step(f"helm uninstall {made.release}")
        run(*cluster.helm(), "uninstall", made.release, "--namespace", namespace, "--wait", check=False)
        made.release = ""
    if made.namespace_created:
        step(f"deleting namespace {namespace}")
        run(*kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)
        made.namespace_created = False
    else:
        for key in made.objects:
            run(*kubectl, "-n", namespace, "delete", key, "--ignore-not-found", check=False)
    made.objects.clear()
    if made.crd_created:
        left = run(*kubectl, "get", "coloniesexecutors", "--all-namespaces", "-o", "name", check=False).split()
        if left:
            step(f"keeping the CRD, which this command created: other ColoniesExecutors use it ({len(left)})")
        else:
            step(f"deleting the CRD {CRD_NAME}, which this command created")
            run(*kubectl, "delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=false", check=False)
        made.crd_created = False
