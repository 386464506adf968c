"""Smoke tests of the test cluster itself: what the operator will rely on, checked the way a user would."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from typing import Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures.kube import KubeCluster
from devtools.waiting import wait_for

pytestmark = pytest.mark.cluster

BUSYBOX = "docker.io/library/busybox:1.35"
GPU = "nvidia.com/gpu"


@pytest.fixture
def api(kube_cluster: KubeCluster) -> Iterator[client.ApiClient]:
    with kube_cluster.api_client() as api_client:
        yield api_client


def pod_spec(command: str, **container_fields) -> client.V1PodSpec:
    return client.V1PodSpec(
        restart_policy="Never",
        termination_grace_period_seconds=1,
        containers=[client.V1Container(name="main", image=BUSYBOX, image_pull_policy="IfNotPresent",
                                       command=["sh", "-c", command], **container_fields)],
    )


def create_job(api: client.ApiClient, namespace: str, command: str, *, active_deadline_seconds: int | None = None,
               **container_fields) -> str:
    name = f"job-{secrets.token_hex(3)}"
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            active_deadline_seconds=active_deadline_seconds,
            template=client.V1PodTemplateSpec(spec=pod_spec(command, **container_fields)),
        ),
    )
    client.BatchV1Api(api).create_namespaced_job(namespace, job)
    return name


def job_condition(api: client.ApiClient, namespace: str, name: str, timeout: float = 120) -> client.V1JobCondition:
    """Waits until the Job has finished (Complete or Failed) and returns that condition."""

    def finished():
        job = client.BatchV1Api(api).read_namespaced_job_status(name, namespace)
        return next((c for c in job.status.conditions or [] if c.type in ("Complete", "Failed") and c.status == "True"),
                    None)

    return wait_for(finished, timeout=timeout, description=f"Job {name} to finish")


def job_pod(api: client.ApiClient, namespace: str, name: str) -> client.V1Pod:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    assert len(pods) == 1, f"expected one pod for Job {name}, found {[p.metadata.name for p in pods]}"
    return pods[0]


def terminated_state(api: client.ApiClient, namespace: str, job: str) -> client.V1ContainerStateTerminated:
    def terminated():
        statuses = job_pod(api, namespace, job).status.container_statuses or []
        return statuses and statuses[0].state.terminated

    return wait_for(terminated, timeout=60, description=f"the container of Job {job}'s pod to terminate")


def job_log(api: client.ApiClient, namespace: str, job: str) -> str:
    return client.CoreV1Api(api).read_namespaced_pod_log(job_pod(api, namespace, job).metadata.name, namespace)


def test_job_output_is_readable_through_the_api(api, namespace):
    job = create_job(api, namespace, "echo hello from a Job")

    assert job_condition(api, namespace, job).type == "Complete"
    assert job_log(api, namespace, job) == "hello from a Job\n"


def test_failing_job_reports_its_exit_code(api, namespace):
    job = create_job(api, namespace, "echo about to fail; exit 3")

    assert job_condition(api, namespace, job).type == "Failed"
    assert terminated_state(api, namespace, job).exit_code == 3
    assert job_log(api, namespace, job) == "about to fail\n"


def test_job_over_its_memory_limit_is_oom_killed(api, namespace):
    # tail keeps the whole newline-free stream in memory, so it grows until the cgroup limit kills it.
    limits = {"memory": "32Mi"}
    job = create_job(api, namespace, "exec tail /dev/zero",
                     resources=client.V1ResourceRequirements(limits=limits, requests=limits))

    assert job_condition(api, namespace, job).type == "Failed"
    state = terminated_state(api, namespace, job)
    assert state.reason == "OOMKilled", state
    assert state.exit_code == 137


def test_job_past_its_deadline_fails_with_deadline_exceeded(api, namespace):
    job = create_job(api, namespace, "sleep 300", active_deadline_seconds=3)

    condition = job_condition(api, namespace, job, timeout=60)
    assert (condition.type, condition.reason) == ("Failed", "DeadlineExceeded")


def node_gpus(api: client.ApiClient) -> int:
    """The GPUs of the cluster's real nodes (fake kwok nodes, labelled type=kwok, are not counted)."""
    nodes = client.CoreV1Api(api).list_node().items
    return sum(int((n.status.allocatable or {}).get(GPU, "0")) for n in nodes
               if (n.metadata.labels or {}).get("type") != "kwok")


def create_gpu_pod(api: client.ApiClient, namespace: str, gpus: int) -> str:
    name = f"gpu-{gpus}-{secrets.token_hex(3)}"
    resources = client.V1ResourceRequirements(limits={GPU: str(gpus)})
    client.CoreV1Api(api).create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name=name), spec=pod_spec("true", resources=resources)))
    return name


def test_node_advertises_fake_gpus(api, kube_cluster):
    if not kube_cluster.local and node_gpus(api) == 0:
        pytest.skip("the KUBECONFIG cluster advertises no nvidia.com/gpu")
    if kube_cluster.local:
        assert node_gpus(api) == int(os.environ.get("COLONIES_OPERATOR_CLUSTER_GPUS", "4"))
    else:
        assert node_gpus(api) > 0


def test_pod_within_the_gpu_capacity_runs(api, namespace):
    if node_gpus(api) == 0:
        pytest.skip("the KUBECONFIG cluster advertises no nvidia.com/gpu")
    pod = create_gpu_pod(api, namespace, 1)

    def succeeded():
        return client.CoreV1Api(api).read_namespaced_pod_status(pod, namespace).status.phase == "Succeeded"

    wait_for(succeeded, timeout=60, description=f"pod {pod} asking for 1 GPU to succeed")


def test_pod_asking_for_more_gpus_than_the_node_has_stays_pending(api, namespace):
    pod = create_gpu_pod(api, namespace, node_gpus(api) + 1)
    core = client.CoreV1Api(api)

    def unschedulable():
        status = core.read_namespaced_pod_status(pod, namespace).status
        return next((c for c in status.conditions or [] if c.type == "PodScheduled" and c.status == "False"), None)

    condition = wait_for(unschedulable, timeout=60, description=f"pod {pod} to be marked unschedulable")
    assert condition.reason == "Unschedulable"
    assert GPU in condition.message
    assert core.read_namespaced_pod_status(pod, namespace).status.phase == "Pending"


def test_custom_resource_definition_can_be_applied_and_used(api, namespace):
    group = f"smoke{secrets.token_hex(3)}.example.com"
    crd = client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"widgets.{group}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group,
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural="widgets", singular="widget", kind="Widget"),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=client.V1JSONSchemaProps(
                    type="object",
                    properties={"spec": client.V1JSONSchemaProps(
                        type="object", properties={"size": client.V1JSONSchemaProps(type="integer")})},
                )),
            )],
        ),
    )
    extensions, custom = client.ApiextensionsV1Api(api), client.CustomObjectsApi(api)
    extensions.create_custom_resource_definition(crd)
    try:
        def established():
            status = extensions.read_custom_resource_definition_status(crd.metadata.name).status
            return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])

        wait_for(established, timeout=30, description=f"CRD {crd.metadata.name} to be established")
        body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
        # The API may still answer 404 for the new type for a moment after Established.
        wait_for(lambda: custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", body),
                 timeout=30, description="creating a Widget")

        widget = custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w1")
        assert widget["spec"] == {"size": 3}
        with pytest.raises(ApiException) as invalid:
            custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", {
                **body, "metadata": {"name": "w2"}, "spec": {"size": "three"}})
        assert invalid.value.status == 422
    finally:
        extensions.delete_custom_resource_definition(crd.metadata.name)


def test_pod_reaches_the_api_server_through_the_kubernetes_service(api, namespace):
    service_ip = client.CoreV1Api(api).read_namespaced_service("kubernetes", "default").spec.cluster_ip
    # Anonymous, so the API server answers 401/403: proof that the connection and TLS worked.
    job = create_job(api, namespace, 'echo "service host $KUBERNETES_SERVICE_HOST"; '
                     'wget --no-check-certificate -O- '
                     '"https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/kube-system/secrets"'
                     ' 2>&1; true')

    assert job_condition(api, namespace, job).type == "Complete"
    log = job_log(api, namespace, job)
    assert f"service host {service_ip}\n" in log
    assert "HTTP/1.1 403 Forbidden" in log or "HTTP/1.1 401 Unauthorized" in log, log


@pytest.fixture
def host_listener(kube_cluster: KubeCluster) -> Iterator[tuple[str, int, str]]:
    """A TCP listener on the address at which pods reach this host; it greets each client with a token."""
    if not kube_cluster.host_address:
        pytest.skip("set COLONIES_OPERATOR_HOST_ADDRESS to the address at which pods reach this host")
    token = f"hello-from-host-{secrets.token_hex(4)}"
    server = socket.create_server((kube_cluster.host_address, 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(f"{token}\n".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield kube_cluster.host_address, server.getsockname()[1], token
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_pod_reaches_a_listener_on_the_host(api, namespace, host_listener):
    address, port, token = host_listener
    job = create_job(api, namespace, f"nc -w 10 {address} {port}")

    assert job_condition(api, namespace, job).type == "Complete"
    assert job_log(api, namespace, job) == f"{token}\n"
