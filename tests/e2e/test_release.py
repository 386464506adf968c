"""`colonies-operator release` with no operator running: what a deleted resource ran is handed back, a Job whose
resource lost its finalizer by hand is released, and nothing holds the namespace's deletion."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from colonies_operator.colonies import ProcessState
from tests.e2e.conftest import GROUP, PLURAL, VERSION, tutorial_spec
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


def pod_running(kube_api, namespace: str, process_id: str) -> bool:
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}").items
    return any(p.status.phase == "Running" for p in pods)


def test_release_without_an_operator_leaves_nothing_holding_the_namespace(operator, executors, colony, kube_cluster,
                                                                         kube_api, namespace):
    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    executors.create_ready("cluster", executor_type="type-cluster")
    executors.create_ready("other", executor_type="type-other")
    mine = colony.client.submit(tutorial_spec(colony, cmd="sleep 300", executor_type="type-cluster"),
                                colony.user_prvkey)
    orphaned = colony.client.submit(tutorial_spec(colony, cmd="sleep 300", executor_type="type-other"),
                                    colony.user_prvkey)
    wait_for(lambda: pod_running(kube_api, namespace, mine.processid) and
             pod_running(kube_api, namespace, orphaned.processid), 90, 0.5, "both processes running")
    operator.kill()  # no operator any more: the finalizers hold every deletion
    # "other" is deleted with its finalizer removed by hand: its Job keeps the Job finalizer, with nobody to drop it.
    executors.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "other",
                                                    {"metadata": {"finalizers": None}})
    executors.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "other")
    result = subprocess.run([sys.executable, "-m", "colonies_operator.cli", "release", "--namespace", namespace,
                             "--delete", "--wait", "0"], env=dict(os.environ, KUBECONFIG=kube_cluster.kubeconfig),
                            capture_output=True, text=True, timeout=120)
    print(result.stdout, result.stderr)
    assert result.returncode == 0
    assert not executors.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    assert [j.metadata.name for j in batch.list_namespaced_job(namespace).items
            if j.metadata.finalizers and not j.metadata.deletion_timestamp] == []
    handed_back = colony.client.get_process(mine.processid, colony.user_prvkey)
    assert handed_back.state == ProcessState.WAITING and not handed_back.isassigned, "handed back to Colonies"
    core.delete_namespace(namespace)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(namespace)
        except ApiException as err:
            return err.status == 404
        return False
    wait_for(namespace_gone, 120, 1, "the namespace deleted, nothing holding a finalizer")
