"""The chart as users run it: the operator's image in a pod, installed, upgraded and uninstalled with Helm.

The image is built from the repository's Dockerfile with buildah (hack/images/build.sh operator) and imported into
the local cluster's containerd (hack/load-image.sh); set COLONIES_OPERATOR_IMAGE to use an image your cluster can pull
instead. tests/packaging/test_image.py checks the same image's config.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from colonies_operator import __version__
from colonies_operator.colonies import ProcessState
from tests.chart.helm import CHART, helm, values_file
from tests.e2e.conftest import Executors, job_names, log_text, tutorial_spec, wait_final
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


def ready_pods(core: client.CoreV1Api, namespace: str, count: int, not_named: set[str] = frozenset()) -> list:
    """The operator's `count` pods once all are Ready, none is named in `not_named`, and no other is left."""
    pods = core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
    if len(pods) != count or {p.metadata.name for p in pods} & set(not_named):
        return []
    ready = [p for p in pods if {c.type: c.status for c in p.status.conditions or []}.get("Ready") == "True"]
    return pods if len(ready) == count else []


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


NUMBERED = 'i=0; while [ $i -lt 100 ]; do echo "$COLONIES_PROCESS_ID line $i"; i=$((i+1)); sleep 0.3; done'


@pytest.mark.timeout(2400)
def test_install_upgrade_and_uninstall_two_instances_while_processes_run(kube_cluster, operator_image, namespace,
                                                                        colony, kube_api, tmp_path):
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    repository, tag = operator_image.rsplit(":", 1)
    core.create_namespaced_secret(namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="colony-key"),
                                                             string_data={"colonyPrvKey": colony.colony_prvkey}))
    # The ColoniesExecutor comes with the release; its Secret is the user's.
    executor = {"name": "cluster", "spec": {
        "server": {"host": colony.server.host, "port": colony.server.port}, "colonyName": colony.name,
        "credentials": {"colonyKeySecret": {"name": "colony-key"}}, "maxConcurrentProcesses": 10}}
    values: dict[str, Any] = {"image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
                              "watchNamespaces": [namespace], "executors": [executor],
                              "leaderElection": {"leaseDuration": 8, "renewDeadline": 6, "retryPeriod": 1},
                              "uninstall": {"waitSeconds": 30}}
    kubeconfig = kube_cluster.kubeconfig
    executors = Executors(kube_api, namespace, colony)
    try:
        helm("install", RELEASE, str(CHART), "--namespace", namespace, "-f", values_file(values, tmp_path),
             kubeconfig=kubeconfig)
        # Ready means /healthz answers, leader or stand-by: both run as uid 10001 and reached the API server
        # through the kubernetes Service with their ServiceAccount.
        pods = wait_for(lambda: ready_pods(core, namespace, 2), 300, 1, "both operator pods to be Ready")
        assert {p.spec.containers[0].image for p in pods} == {operator_image}
        assert {p.spec.service_account_name for p in pods} == {FULLNAME}
        executors.wait_ready("cluster", timeout=180)
        assert_echo_succeeds(colony)

        # The metrics endpoint, straight from this host to the pods (pods are on the host's bridge): one leads.
        leaders = []
        for pod in pods:
            body = urllib.request.urlopen(f"http://{pod.status.pod_ip}:9090/metrics", timeout=10).read().decode()
            assert f'colonies_operator_build_info{{version="{__version__}"}} 1.0' in body
            leaders.append("colonies_operator_leader 1.0" in body)
            for family in ("processes_assigned_total", "processes_succeeded_total", "processes_failed_total",
                           "active_processes", "job_create_seconds", "log_lines_shipped_total",
                           "colonies_rpc_errors_total", "leader"):
                assert f"# TYPE colonies_operator_{family.removesuffix('_total')}" in body, family
        assert sorted(leaders) == [False, True], "exactly one instance leads"

        # An upgrade that changes the pods (plain logs, another memory limit) while 10 processes run: the pods are
        # replaced one at a time, the leader hands over, and no process is lost, doubled or failed.
        spec = tutorial_spec(colony, cmd=NUMBERED, conditions={"cpu": "10m", "mem": "16Mi"})
        processes = [colony.client.submit(spec, colony.user_prvkey) for _ in range(10)]
        wait_for(lambda: all(colony.client.get_logs(colony.name, p.processid, colony.user_prvkey, count=1)
                             for p in processes), 120, 0.5, "lines of every process in Colonies")
        helm("upgrade", RELEASE, str(CHART), "--namespace", namespace, "--reuse-values",
             "--set", "logging.format=plain", "--set", "resources.limits.memory=384Mi", kubeconfig=kubeconfig)
        new_pods = wait_for(lambda: ready_pods(core, namespace, 2, {p.metadata.name for p in pods}), 300, 1,
                            "the two upgraded operator pods to be Ready and the old ones gone")
        container = new_pods[0].spec.containers[0]
        assert "--json-logs" not in container.args and container.resources.limits["memory"] == "384Mi"
        for process in processes:
            final = wait_final(colony, process.processid, timeout=180)
            assert final.state == ProcessState.SUCCESS and final.retries == 0, final.errors
            lines = log_text(colony, process.processid).splitlines()
            assert lines == [f"{process.processid} line {i}" for i in range(100)], \
                f"process {process.processid}: {len(lines)} lines, duplicates or gaps"
            assert len(job_names(kube_api, namespace, process.processid)) == 1
        executors.wait_ready("cluster", timeout=180)

        # Uninstall with processes running and the executor in the values: the hook deletes it and the operator
        # hands its work back to Colonies; nothing keeps a finalizer, and the namespace then goes.
        running = [colony.client.submit(tutorial_spec(colony, cmd="sleep 300"), colony.user_prvkey)
                   for _ in range(3)]
        wait_for(lambda: all(colony.client.get_process(p.processid, colony.user_prvkey).state == ProcessState.RUNNING
                             for p in running), 120, 0.5, "three processes running")
        started = time.monotonic()
        helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "180s", kubeconfig=kubeconfig)
        print(f"helm uninstall took {time.monotonic() - started:.1f}s")
        for what, read in {
            "Deployment": lambda: apps.read_namespaced_deployment(FULLNAME, namespace),
            "ServiceAccount": lambda: core.read_namespaced_service_account(FULLNAME, namespace),
            "Role": lambda: rbac.read_namespaced_role(FULLNAME, namespace),
            "RoleBinding": lambda: rbac.read_namespaced_role_binding(FULLNAME, namespace),
            "Service": lambda: core.read_namespaced_service(f"{FULLNAME}-metrics", namespace),
            "ColoniesExecutor": lambda: executors.get("cluster"),
        }.items():
            wait_for(lambda: gone(read), 60, 0.5, f"the {what} to be deleted")
        assert helm("list", "--namespace", namespace, "--short", kubeconfig=kubeconfig).stdout.strip() == ""
        for process in running:  # handed back: Colonies queues them again for another executor
            handed_back = colony.client.get_process(process.processid, colony.user_prvkey)
            assert handed_back.state == ProcessState.WAITING and not handed_back.isassigned, handed_back
        started = time.monotonic()
        core.delete_namespace(namespace)
        wait_for(lambda: gone(lambda: core.read_namespace(namespace)), 180, 1,
                 "the namespace to be deleted, with nothing holding a finalizer")
        print(f"the namespace was deleted in {time.monotonic() - started:.1f}s")
    except BaseException:
        print(f"--- operator pods, events and logs ---\n{describe(core, namespace)}")
        raise
