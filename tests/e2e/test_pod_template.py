"""spec.jobs.podTemplate on the real cluster: a process gets its files, secrets, labels, priority, init containers
and sidecars from the template while its own image and command stay its own; a template the policy refuses runs
nothing; a secret never reaches a log or the status."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from typing import Any, Iterator

import pytest
from kubernetes import client

from colonies_operator.colonies import ProcessState
from tests.e2e.conftest import GROUP, PLURAL, VERSION, job_of, log_text, tutorial_spec, wait_final
from tests.e2e.test_policy import jobs_and_pods_anywhere, not_ready_because
from devtools.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.colonies]


@pytest.fixture
def token(kube_api, namespace) -> str:
    """A Secret api-token (key token) in the test's namespace; returns its value."""
    value = f"tok-{secrets.token_hex(12)}"
    client.CoreV1Api(kube_api).create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="api-token"), string_data={"token": value}))
    return value


@pytest.fixture
def priority_class(kube_api) -> Iterator[str]:
    """A PriorityClass (cluster-wide, so its name is unique to the test and it is deleted afterwards)."""
    name = f"colonies-test-{secrets.token_hex(4)}"
    scheduling = client.SchedulingV1Api(kube_api)
    scheduling.create_priority_class(client.V1PriorityClass(metadata=client.V1ObjectMeta(name=name), value=1234,
                                                            description="colonies-operator e2e test"))
    try:
        yield name
    finally:
        scheduling.delete_priority_class(name)


TOKEN_ENV = {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}}}


def pods_of(kube_api: client.ApiClient, namespace: str, process_id: str) -> list[dict[str, Any]]:
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector=f"colonyos.io/process-id={process_id[:63]}", _preload_content=False)
    return json.loads(pods.data)["items"]


def test_a_template_gives_the_process_a_config_file_a_secret_a_label_and_a_priority_but_not_its_image_or_command(
        operator, executors, colony, kube_api, namespace, token, priority_class):
    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="app-config"), data={"settings.txt": "threshold=7\n"}))
    template = {
        "metadata": {"labels": {"team": "science"}},
        "spec": {
            "priorityClassName": priority_class,
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
            "containers": [{"name": "main", "image": "registry.example.org/hijack:1",
                            "command": ["sh", "-c", "echo hijacked"], "env": [TOKEN_ENV],
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True}]}],
        },
    }
    executors.create_ready("cluster", jobs={"podTemplate": template})
    ignored = wait_for(lambda: executors.condition("cluster", "PodTemplate"), 30, 0.5, "the PodTemplate condition")
    assert (ignored["status"], ignored["reason"]) == ("False", "FieldsIgnored"), ignored
    assert "spec.containers[main].image" in ignored["message"], ignored
    assert "spec.containers[main].command" in ignored["message"], ignored
    # The process shows what it read: the file, and the token's digest (never the token itself).
    process = colony.client.submit(tutorial_spec(
        colony, cmd='cat /etc/app/settings.txt; printf %s "$API_TOKEN" | sha256sum'), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    text = log_text(colony, process.processid)
    assert "threshold=7" in text and hashlib.sha256(token.encode()).hexdigest() in text, text
    assert "hijacked" not in text
    (pod,) = pods_of(kube_api, namespace, process.processid)
    assert pod["metadata"]["labels"]["team"] == "science"
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == (priority_class, 1234)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "busybox:1.35" and "hijacked" not in json.dumps(container["command"])


def test_an_init_container_prepares_a_file_and_a_native_sidecar_runs_beside_the_process_and_ends_with_it(
        operator, executors, colony, kube_api, namespace):
    # The sidecar answers the process's ping with a pong: both run at once. It exits on the TERM the kubelet
    # sends when the process has ended (a shell as PID 1 would otherwise ignore it until the grace period).
    sidecar = ('trap "exit 0" TERM; echo up > /work/sidecar; '
               'while true; do [ -f /work/ping ] && echo pong > /work/pong; sleep 0.2; done')
    template = {"spec": {
        "volumes": [{"name": "work", "emptyDir": {}}],
        "containers": [{"name": "main", "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
        "initContainers": [
            {"name": "prepare", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent",
             "command": ["sh", "-c", "echo prepared-by-init > /work/input.txt"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            {"name": "helper", "image": "busybox:1.35", "imagePullPolicy": "IfNotPresent", "restartPolicy": "Always",
             "command": ["sh", "-c", sidecar], "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
        ],
    }}
    executors.create_ready("cluster", jobs={"podTemplate": template})
    merged = wait_for(lambda: executors.condition("cluster", "PodTemplate"), 30, 0.5, "the PodTemplate condition")
    assert (merged["status"], merged["reason"]) == ("True", "Merged"), merged
    cmd = ('cat /work/input.txt; touch /work/ping; '
           'for i in $(seq 100); do [ -f /work/pong ] && break; sleep 0.1; done; cat /work/pong')
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    text = log_text(colony, process.processid)
    assert "prepared-by-init" in text and "pong" in text, text
    job = job_of(kube_api, namespace, process.processid)
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"]), job["status"]
    (pod,) = pods_of(kube_api, namespace, process.processid)
    assert pod["status"]["phase"] == "Succeeded"
    states = {s["name"]: s["state"] for s in pod["status"]["initContainerStatuses"]}
    assert states["prepare"]["terminated"]["exitCode"] == 0
    assert "terminated" in states["helper"], "the sidecar ended with the process"


def test_a_template_the_policy_refuses_makes_the_resource_not_allowed_and_nothing_runs(
        operator, executors, colony, kube_api, namespace):
    host_path = {"spec": {"volumes": [{"name": "host", "hostPath": {"path": "/etc"}}],
                          "containers": [{"name": "main", "volumeMounts": [{"name": "host", "mountPath": "/host"}]}]}}
    executors.create("host-path", executor_type="type-host-path", jobs={"podTemplate": host_path})
    second = {"spec": {"containers": [{"name": "main"}, {"name": "uploader", "image": "busybox:1.35"}]}}
    executors.create("two-containers", executor_type="type-two-containers", jobs={"podTemplate": second})
    executors.create_ready("control", executor_type="type-control")
    ready = not_ready_because(executors, "host-path", "VolumeTypeNotAllowed")
    allowed = executors.condition("host-path", "Allowed")
    assert (allowed["status"], allowed["reason"]) == ("False", "VolumeTypeNotAllowed")
    for words in ("spec.jobs.podTemplate.spec.volumes[host] is a hostPath volume", "policy.volumeTypes",
                  "under the baseline pod security profile", "policy.podSecurity.allowedProfiles"):
        assert words in ready["message"], ready
    refused = not_ready_because(executors, "two-containers", "InvalidSpec")
    assert "spec.jobs.podTemplate.spec.containers[uploader]" in refused["message"], refused
    assert "initContainers with restartPolicy: Always (a native sidecar" in refused["message"], refused
    waiting = {name: colony.client.submit(tutorial_spec(colony, executor_type=f"type-{name}"),
                                          colony.user_prvkey).processid for name in ("host-path", "two-containers")}
    # The control: the operator runs work for an allowed resource meanwhile.
    control = colony.client.submit(tutorial_spec(colony, executor_type="type-control"), colony.user_prvkey)
    assert wait_final(colony, control.processid).state == ProcessState.SUCCESS
    for name, process_id in waiting.items():
        process = colony.client.get_process(process_id, colony.user_prvkey)
        assert process.state == ProcessState.WAITING and not process.isassigned, f"{name} took a process"
        assert jobs_and_pods_anywhere(kube_api, process_id) == [], name


def test_a_volume_whose_configmap_does_not_exist_fails_the_process_after_the_pending_timeout_saying_so(
        operator, executors, colony, kube_api, namespace):
    template = {"spec": {"volumes": [{"name": "config", "configMap": {"name": "not-created"}}],
                         "containers": [{"name": "main", "volumeMounts": [{"name": "config", "mountPath": "/c"}]}]}}
    executors.create_ready("cluster", jobs={"podTemplate": template, "pendingTimeoutSeconds": 5})
    process = colony.client.submit(tutorial_spec(colony), colony.user_prvkey)
    final = wait_final(colony, process.processid, timeout=60)
    assert final.state == ProcessState.FAILED
    assert "did not start within 5s: its volumes could not be mounted" in final.errors[0], final.errors


def test_a_secret_from_the_template_is_in_no_log_and_not_in_the_status_even_with_debug(
        operator, executors, colony, kube_api, namespace, token):
    executors.create_ready("cluster", jobs={"podTemplate": {"spec": {"containers": [{"name": "main",
                                                                                      "env": [TOKEN_ENV]}]}}})
    cmd = 'test -n "$API_TOKEN" && echo "the token has ${#API_TOKEN} characters"'
    process = colony.client.submit(tutorial_spec(colony, cmd=cmd, kwargs={"debug": True}), colony.user_prvkey)
    final = wait_final(colony, process.processid)
    assert final.state == ProcessState.SUCCESS, final.errors
    text = log_text(colony, process.processid)
    assert f"the token has {len(token)} characters" in text, text
    assert "ColonyOS: env (names only):" in text and "API_TOKEN (from Secret api-token, key token)" in text, text
    status = executors.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cluster")["status"]
    job = job_of(kube_api, namespace, process.processid)
    places = {"the process log": text, "the operator log": operator.log_text(), "the status": json.dumps(status),
              "the process in Colonies": json.dumps(colony.client.get_process(process.processid,
                                                                              colony.user_prvkey).to_dict()),
              "the Job": json.dumps(job)}
    assert [where for where, content in places.items() if token in content] == []
    assert "ColonyOS: " in places["the process log"] and places["the operator log"], "the places checked hold text"


def test_kubectl_explain_documents_the_pod_template(kube_cluster, crd):
    def explain(field: str) -> str:
        return subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "explain",
                               f"coloniesexecutors.spec.jobs.{field}"], check=True, capture_output=True,
                              text=True).stdout

    text = explain("podTemplate")
    assert "PodTemplateSpec" in text and "PodTemplate condition" in text, text
    assert "native sidecar" in explain("podTemplate.spec.initContainers")
    assert "policy.volumeTypes" in explain("podTemplate.spec.volumes")
    assert "shortcut" in explain("priorityClassName")
