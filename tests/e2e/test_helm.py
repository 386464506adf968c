"""The chart as users run it: the operator's image in a pod, installed, upgraded and uninstalled with Helm.

The image is built from the repository's Dockerfile with buildah (hack/images/build.sh operator) and imported into
the local cluster's containerd (hack/load-image.sh); set COLONIES_OPERATOR_IMAGE to use an image your cluster can pull
instead. tests/packaging/test_image.py checks the same image's config.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from colonies_operator import __version__
from colonies_operator.colonies import ProcessState
from tests.chart.helm import CHART, helm, values_file
from tests.e2e.conftest import GROUP, PLURAL, VERSION, log_text, wait_final
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]

REPO = Path(__file__).resolve().parents[2]
RELEASE = "op"
FULLNAME = "op-colonies-operator"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"


@pytest.fixture(scope="session")
def operator_image(kube_cluster) -> str:
    """The operator's image reference, built from this checkout and imported into the cluster."""
    if os.environ.get("COLONIES_OPERATOR_IMAGE"):
        return os.environ["COLONIES_OPERATOR_IMAGE"]
    result = subprocess.run([str(REPO / "hack" / "load-image.sh"), "operator"], capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"hack/load-image.sh operator failed (set COLONIES_OPERATOR_IMAGE to use an image the cluster "
                    f"can pull):\n{result.stderr[-3000:]}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]


def operator_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    return [p for p in core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
            if not p.metadata.deletion_timestamp]


def ready_pod(core: client.CoreV1Api, namespace: str, not_named: str | None = None) -> client.V1Pod | None:
    """The one operator pod, when it is Ready (and is not `not_named`) and the old one is gone."""
    pods = core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
    if len(pods) != 1 or pods[0].metadata.name == not_named:
        return None
    conditions = {c.type: c.status for c in pods[0].status.conditions or []}
    return pods[0] if conditions.get("Ready") == "True" else None


def describe(core: client.CoreV1Api, namespace: str) -> str:
    """Pod states, events and the operator's log, for a failure message."""
    lines = []
    for pod in core.list_namespaced_pod(namespace, label_selector=SELECTOR).items:
        lines.append(f"pod {pod.metadata.name}: {pod.status.phase} {pod.status.container_statuses}")
        try:
            lines.append(core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=60))
        except ApiException as err:
            lines.append(f"(no log: {err.reason})")
    for event in core.list_namespaced_event(namespace).items[-20:]:
        lines.append(f"event {event.involved_object.kind}/{event.involved_object.name}: {event.reason} {event.message}")
    return "\n".join(lines)


def submit_echo(colony) -> str:
    """examples/echo.json for this colony, submitted with pycolonies as a user would; returns the process id."""
    from model import FuncSpec  # pycolonies
    from pycolonies import Colonies

    spec = json.loads((REPO / "examples" / "echo.json").read_text())
    spec["conditions"]["colonyname"] = colony.name
    process = Colonies(colony.server.host, colony.server.port).submit_func_spec(FuncSpec(**spec), colony.user_prvkey)
    return process.processid


def assert_echo_succeeds(colony, timeout: float = 180) -> None:
    process_id = submit_echo(colony)
    final = wait_final(colony, process_id, timeout=timeout)
    assert final.state == ProcessState.SUCCESS, final.errors
    assert "hello world" in log_text(colony, process_id)


def gone(read) -> bool:
    try:
        read()
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


@pytest.mark.timeout(2400)
def test_install_run_upgrade_and_uninstall_with_helm(kube_cluster, operator_image, namespace, colony, executors,
                                                     kube_api, tmp_path):
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    rbac, custom = client.RbacAuthorizationV1Api(kube_api), client.CustomObjectsApi(kube_api)
    repository, tag = operator_image.rsplit(":", 1)
    values: dict[str, Any] = {"image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
                              "watchNamespaces": [namespace]}
    kubeconfig = kube_cluster.kubeconfig
    try:
        helm("install", RELEASE, str(CHART), "--namespace", namespace, "-f", values_file(values, tmp_path),
             kubeconfig=kubeconfig)
        # Ready means kopf answers /healthz: the operator runs in the pod, as uid 10001, and reached the API server
        # through the kubernetes Service with its ServiceAccount.
        pod = wait_for(lambda: ready_pod(core, namespace), 300, 1, "the operator pod to be Ready")
        assert pod.spec.containers[0].image == operator_image
        assert pod.spec.service_account_name == FULLNAME

        executors.create("cluster")
        executors.wait_ready("cluster", timeout=180)
        assert_echo_succeeds(colony)

        # The metrics endpoint, straight from this host to the pod (pods are on the host's bridge).
        body = urllib.request.urlopen(f"http://{pod.status.pod_ip}:9090/metrics", timeout=10).read().decode()
        assert f'colonies_operator_build_info{{version="{__version__}"}} 1.0' in body
        for family in ("processes_assigned_total", "processes_succeeded_total", "processes_failed_total",
                       "active_processes", "job_create_seconds", "log_lines_shipped_total",
                       "colonies_rpc_errors_total"):
            assert f"# TYPE colonies_operator_{family.removesuffix('_total')}" in body, family

        # An upgrade that changes the pod: plain logs and another memory limit. Recreate: the old pod goes first.
        helm("upgrade", RELEASE, str(CHART), "--namespace", namespace, "--reuse-values",
             "--set", "logging.format=plain", "--set", "resources.limits.memory=384Mi", kubeconfig=kubeconfig)
        new_pod = wait_for(lambda: ready_pod(core, namespace, not_named=pod.metadata.name), 300, 1,
                           "the upgraded operator pod to be Ready and the old one gone")
        container = new_pod.spec.containers[0]
        assert "--json-logs" not in container.args and container.resources.limits["memory"] == "384Mi"
        executors.wait_ready("cluster", timeout=180)
        assert_echo_succeeds(colony)
        assert not core.read_namespaced_pod_log(new_pod.metadata.name, namespace).lstrip().startswith("{")

        # Uninstall: the ColoniesExecutor first, so that the operator releases its finalizer.
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cluster")
        wait_for(lambda: gone(lambda: executors.get("cluster")), 120, 0.5, "the ColoniesExecutor to be deleted")
        helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "180s", kubeconfig=kubeconfig)
        for what, read in {
            "Deployment": lambda: apps.read_namespaced_deployment(FULLNAME, namespace),
            "ServiceAccount": lambda: core.read_namespaced_service_account(FULLNAME, namespace),
            "Role": lambda: rbac.read_namespaced_role(FULLNAME, namespace),
            "RoleBinding": lambda: rbac.read_namespaced_role_binding(FULLNAME, namespace),
            "Service": lambda: core.read_namespaced_service(f"{FULLNAME}-metrics", namespace),
        }.items():
            wait_for(lambda: gone(read), 60, 0.5, f"the {what} to be deleted")
        wait_for(lambda: not core.list_namespaced_pod(namespace, label_selector=SELECTOR).items, 120, 1,
                 "the operator pod to be gone")
        assert helm("list", "--namespace", namespace, "--short", kubeconfig=kubeconfig).stdout.strip() == ""
    except BaseException:
        print(f"--- operator pods, events and logs ---\n{describe(core, namespace)}")
        raise
