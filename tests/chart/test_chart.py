"""The Helm chart: lint, schema, contracts with the CRD, and every rendering checked by the real API server.

Manifests are validated with `kubectl apply --dry-run=server --validate=strict` against the test cluster rather
than kubeconform: kubeconform needs JSON schemas from the internet, which this machine cannot reach, and the
API server's own validation (field validation, CRD structural schema and CEL rules, RBAC and admission) is the
stronger check anyway.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from typing import Any, Callable, Iterator

import jsonschema
import pytest
import yaml
from kubernetes import client

from colonies_operator import __version__
from colonies_operator.core.policy import DEFAULT_POLICY, policy_from_dict
from tests.chart.crd_schema import SCHEMA_PATH, executor_spec_schema
from tests.chart.helm import CHART, REPO, helm, render
from devtools.kube import delete_namespace

RELEASE = "t"
FULLNAME = "t-colonies-operator"


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def the(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


LEASE_RULES = [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]


def work_roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Roles, but the one for the leader election Lease."""
    return [r for r in by_kind(objects, "Role") if not r["metadata"]["name"].endswith("-leader-election")]


def lease_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == f"{FULLNAME}-leader-election"]
    return role


def executor(name: str, **spec: Any) -> dict[str, Any]:
    return {"name": name, "spec": {"server": {"host": "colonies.example.internal", "port": 50080},
                                   "colonyName": "dev", **spec}}


# Value combinations, as functions of (release namespace, [two more namespaces]).
COMBINATIONS: dict[str, Callable[[str, list[str]], dict[str, Any]]] = {
    "defaults": lambda ns, more: {},
    "jobs in any namespace": lambda ns, more: {"policy": {"jobNamespaces": ["*"]}},
    "all namespaces": lambda ns, more: {"watchAllNamespaces": True},
    "several namespaces": lambda ns, more: {"watchNamespaces": [ns, more[0]], "policy": {"jobNamespaces": [more[1]]}},
    "a strict policy": lambda ns, more: {"policy": STRICT_POLICY},
    "service monitor": lambda ns, more: {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s",
                                                                         "labels": {"release": "prometheus"}}}},
    "no metrics, plain verbose logs": lambda ns, more: {"metrics": {"enabled": False},
                                                        "logging": {"format": "plain", "verbose": True}},
    "executors": lambda ns, more: {"watchNamespaces": [ns, more[0]], "executors": [
        executor("by-colony-key", credentials={"colonyKeySecret": {"name": "colonies-colony-key"}},
                 jobs={"priorityClassName": "batch-low", "podTemplate": POD_TEMPLATE}),
        executor("by-executor-key", credentials={"executorKeySecret": {"name": "executor-key", "key": "prv"}},
                 executorName="k8s-gpu", maxConcurrentProcesses=4,
                 jobs={"namespace": more[0], "ttlSecondsAfterFinished": 600,
                       "securityContext": {"allowPrivilegeEscalation": False}}) | {"namespace": more[0]},
    ]},
    "scheduling and pod settings": lambda ns, more: {
        "image": {"repository": "registry.example.com/colonies-operator", "tag": "0.1.0", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount": {"annotations": {"iam.example.com/role": "colonies"}},
        "securityContext": {"runAsUser": None, "runAsGroup": None},
        "podAnnotations": {"example.com/team": "batch"}, "podLabels": {"team": "batch"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "colonies-operator"}}}}]}},
        "resources": {"requests": {"cpu": "100m", "memory": "160Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "terminationGracePeriodSeconds": 60,
    },
}
NAMESPACES = ["release-ns", "second-ns", "third-ns"]
# A pod template with one of each kind of field (the README's examples).
POD_TEMPLATE = {
    "metadata": {"labels": {"team": "science"}},
    "spec": {"volumes": [{"name": "dataset", "persistentVolumeClaim": {"claimName": "imagenet", "readOnly": True}}],
             "containers": [{"name": "main", "env": [{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {
                 "name": "api-token", "key": "token"}}}], "volumeMounts": [{"name": "dataset", "mountPath": "/data"}]}],
             "initContainers": [{"name": "uploader", "image": "busybox:1.35", "restartPolicy": "Always"}],
             "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                 {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}]}}},
             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
}
STRICT_POLICY = {
    "serviceAccountNames": ["runner"], "allowServiceAccountToken": False,
    "podSecurity": {"defaultProfile": "restricted", "allowedProfiles": ["restricted"]},
    "maxConcurrentProcesses": 20,
    "ceiling": {"allowedImages": ["registry.example.com/**"], "cpu": "2", "memory": "4Gi", "ephemeralStorage": "10Gi",
                "gpus": 0, "nodes": 2, "processesPerNode": 2, "containersPerProcess": 4, "walltimeSeconds": 3600},
    "defaults": {"cpu": "250m", "memory": "512Mi", "ephemeralStorage": "1Gi", "walltimeSeconds": 600},
    "clusterDomain": "corp.local",
    "volumeTypes": ["persistentVolumeClaim", "nfs"],
}


# -- without a cluster -----------------------------------------------------------------------------------------

def test_helm_lint_passes_strictly():
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def test_the_charts_crd_is_a_byte_identical_copy_of_crds():
    assert (CHART / "crds" / "coloniesexecutor.yaml").read_bytes() == (REPO / "crds" / "coloniesexecutor.yaml").read_bytes(), \
        "charts/colonies-operator/crds/coloniesexecutor.yaml differs: cp crds/coloniesexecutor.yaml charts/colonies-operator/crds/"


def test_the_schema_of_executors_spec_is_derived_from_the_crd():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["definitions"]["executorSpec"] == executor_spec_schema(), \
        "values.schema.json is out of date with the CRD: run python -m tests.chart.crd_schema"


def test_values_yaml_satisfies_the_schema_and_the_schema_is_closed_everywhere():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART / "values.yaml").read_text()))

    def open_objects(node: Any, path: str) -> Iterator[str]:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                yield path
            for key, child in node.items():
                yield from open_objects(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                yield from open_objects(child, f"{path}/{i}")

    # The CRD's podSecurityContext and securityContext keep unknown fields: the API server checks them. So does the
    # pod template: a field it does not list reaches the operator, which refuses it by name (rather than the API
    # server dropping it unseen).
    kept_open = ("/podSecurityContext", "/securityContext", "/podTemplate", "/podTemplate/properties/metadata",
                 "/podTemplate/properties/spec")
    assert [p for p in open_objects(schema, "") if not p.endswith(kept_open)] == []


def test_every_value_in_values_yaml_has_a_comment():
    """Each value the chart defines (not the keys inside free-form maps such as resources) is documented."""
    schema = json.loads(SCHEMA_PATH.read_text())
    stack: list[tuple[int, dict[str, Any]]] = [(-1, schema)]
    previous = ""
    undocumented = []
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = re.match(r"^( *)([A-Za-z][\w.-]*):(.*)$", line)
        if match:
            indent, key = len(match.group(1)), match.group(2)
            while stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1]
            node = (parent.get("properties") or {}).get(key)
            if node is not None:
                node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node
                if "properties" not in node and not previous.lstrip().startswith("#"):
                    undocumented.append(key)
                stack.append((indent, node))
            else:
                stack.append((indent, {}))
        if line.strip():
            previous = line
    assert undocumented == []


@pytest.mark.parametrize("values, message", [
    ({"watchNamespace": ["a"]}, "additional properties 'watchNamespace' not allowed"),
    ({"image": {"pullPolcy": "Never"}}, "additional properties 'pullPolcy' not allowed"),
    ({"metrics": {"serviceMonitor": {"enable": True}}}, "additional properties 'enable' not allowed"),
    ({"resources": {"limit": {"memory": "1Gi"}}}, "additional properties 'limit' not allowed"),
    ({"affinity": {"nodeAfinity": {}}}, "additional properties 'nodeAfinity' not allowed"),
    # A key inline in the values is refused: executors name Secrets, they never hold keys.
    ({"executors": [executor("e", credentials={"colonyKeySecret": {"name": "s", "value": "0" * 64}})]},
     "additional properties 'value' not allowed"),
    ({"executors": [executor("e", credentials={"colonyKeySecret": {"name": "s"}}, maxConcurentProcesses=3)]},
     "additional properties 'maxConcurentProcesses' not allowed"),
    ({"logging": {"format": "text"}}, "value must be one of"),
    ({"securityContext": {"runAsUser": 0}}, "minimum"),
    ({"rbac": {"jobNamespaces": ["a"]}}, "additional properties 'jobNamespaces' not allowed"),
    ({"rbac": {"clusterWide": True}}, "additional properties 'clusterWide' not allowed"),
    ({"policy": {"ceiling": {"cpus": "4"}}}, "additional properties 'cpus' not allowed"),
    ({"policy": {"ceiling": {"memory": "1.5Gi"}}}, "does not match"),
    ({"policy": {"podSecurity": {"defaultProfile": "root"}}}, "value must be one of"),
    ({"policy": {"jobNamespaces": ["Kube_System"]}}, "jobNamespaces"),
    ({"policy": {"volumeTypes": ["host-path"]}}, "volumeTypes"),
    ({"replicaCount": 0}, "minimum"),
    ({"leaderElection": {"leaseDuration": 15, "renewDeadline": 10, "retryPeriod": 0}}, "exclusiveMinimum"),
    ({"leaderElection": {"leaseDuration": 15, "renewDeadline": 10, "retryPeriod": 2, "jitter": 1}},
     "additional properties 'jitter' not allowed"),
    ({"podAntiAffinity": "sometimes"}, "value must be one of"),
    ({"podDisruptionBudget": {"maxUnavailable": 0}}, "maxUnavailable"),
    ({"uninstall": {"wait": 10}}, "additional properties 'wait' not allowed"),
])
def test_the_schema_rejects_typos_and_secrets(values, message):
    with pytest.raises(AssertionError) as failure:
        render("release-ns", values)
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert message in str(failure.value)


@pytest.mark.parametrize("values, message", [
    ({"watchAllNamespaces": True, "watchNamespaces": ["a"]}, "exclude each other"),
    ({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, "needs metrics.enabled"),
    ({"executors": [executor("e", credentials={"colonyKeySecret": {"name": "s"}}) | {"namespace": "elsewhere"}]},
     "which the operator does not watch"),
    ({"executors": [executor("e", credentials={"colonyKeySecret": {"name": "s"}}, jobs={"namespace": "kube-system"})]},
     "runs its Jobs in namespace kube-system, which the policy does not allow: add it to policy.jobNamespaces"),
    ({"policy": {"podSecurity": {"defaultProfile": "privileged"}}},
     "policy.podSecurity.defaultProfile privileged must be one of policy.podSecurity.allowedProfiles"),
    ({"policy": {"jobNamespaces": ["*", "jobs"]}}, "list nothing else with it"),
    ({"leaderElection": {"leaseDuration": 10, "renewDeadline": 10, "retryPeriod": 2}},
     "renewDeadline must be shorter than leaderElection.leaseDuration"),
    ({"leaderElection": {"leaseDuration": 15, "renewDeadline": 10, "retryPeriod": 9}},
     "retryPeriod .* must be shorter than leaderElection.renewDeadline"),
])
def test_contradictory_values_fail_with_a_reason(values, message):
    with pytest.raises(AssertionError, match=message):
        render("release-ns", values)


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_chart_never_creates_a_secret(combination):
    _, objects = render(NAMESPACES[0], COMBINATIONS[combination](NAMESPACES[0], NAMESPACES[1:]), include_crds=True)
    assert by_kind(objects, "Secret") == []


def test_the_deployment_is_two_non_root_read_only_instances_with_probes_rolled_one_at_a_time():
    _, objects = render("release-ns")
    deployment = the(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "privileged": False,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"},
                                         {"name": "policy", "mountPath": "/etc/colonies-operator", "readOnly": True}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                              {"name": "policy", "configMap": {"name": f"{FULLNAME}-policy"}}]
    assert container["args"] == ["run", "--namespace=release-ns", "--liveness=http://0.0.0.0:8080/healthz",
                                 "--policy-file=/etc/colonies-operator/policy.json",
                                 "--leader-election-namespace=release-ns", "--lease-duration=15",
                                 "--renew-deadline=10", "--retry-period=2", "--orphan-grace=600",
                                 "--max-log-streams=256", "--max-log-streams-per-process=16", "--json-logs",
                                 "--metrics-port=9090"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["image"] == f"colonies-operator:{__version__}" and container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


def test_rbac_is_a_role_per_watched_namespace_and_a_jobs_role_per_policy_job_namespace():
    _, objects = render("release-ns", {"watchNamespaces": ["a", "b"], "policy": {"jobNamespaces": ["b", "jobs"]}})
    # Cluster-wide, only reading Nodes (for the executors' capabilities).
    nodes_role, nodes_binding = the(objects, "ClusterRole"), the(objects, "ClusterRoleBinding")
    assert nodes_role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    assert nodes_binding["roleRef"]["name"] == nodes_role["metadata"]["name"] == f"release-ns-{FULLNAME}-nodes"
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in work_roles(objects)}
    assert set(roles) == {("a", FULLNAME), ("b", FULLNAME), ("jobs", f"{FULLNAME}-jobs")}
    # The Lease in the first watched namespace by name, where an instance started by hand looks too.
    assert lease_role(objects)["metadata"]["namespace"] == "a" and lease_role(objects)["rules"] == LEASE_RULES
    bindings = by_kind(objects, "RoleBinding")
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == \
        set(roles) | {("a", f"{FULLNAME}-leader-election")}
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "release-ns"}]
    # Jobs-only namespaces: nothing about Secrets or ColoniesExecutors.
    assert {rule["apiGroups"][0] + "/" + rule["resources"][0] for rule in roles[("jobs", f"{FULLNAME}-jobs")]["rules"]} \
        == {"batch/jobs", "/pods", "/pods/log", "kueue.x-k8s.io/workloads"}
    # Kueue's Workloads are only read: why a queued Job waits.
    for role in roles.values():
        assert next(r for r in role["rules"] if r["resources"] == ["workloads"])["verbs"] == ["get", "list", "watch"]
    # Every namespace where Jobs run: each finished Job's pods are read by name (a list reads the namespace).
    for role in roles.values():
        assert {"get", "list", "watch"} <= set(next(r for r in role["rules"] if r["resources"] == ["pods"])["verbs"])
    secret_rules = [rule for rule in roles[("a", FULLNAME)]["rules"] if "secrets" in rule["resources"]]
    assert secret_rules == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]}]
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    assert the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"][1:3] == \
        ["--namespace=a", "--namespace=b"]


def test_by_default_the_operator_may_touch_only_the_release_namespace():
    _, objects = render("release-ns")
    # Cluster-wide it only reads Nodes (the executors' capabilities).
    assert [rule for role in by_kind(objects, "ClusterRole") for rule in role["rules"]] == \
        [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    assert sorted((r["metadata"]["namespace"], r["metadata"]["name"]) for r in by_kind(objects, "Role")) == \
        [("release-ns", FULLNAME), ("release-ns", f"{FULLNAME}-leader-election")]


def test_jobs_in_any_namespace_get_a_jobs_only_cluster_role_and_secrets_stay_in_watched_namespaces():
    _, objects = render("release-ns", {"watchNamespaces": ["a", "b"], "policy": {"jobNamespaces": ["*"]},
                                       "rbac": {"readNodes": False}})
    role, binding = the(objects, "ClusterRole"), the(objects, "ClusterRoleBinding")
    assert role["metadata"]["name"] == binding["roleRef"]["name"] == f"release-ns-{FULLNAME}-jobs"
    assert {rule["apiGroups"][0] + "/" + rule["resources"][0] for rule in role["rules"]} == \
        {"batch/jobs", "/pods", "/pods/log", "kueue.x-k8s.io/workloads"}
    roles = work_roles(objects)
    assert {r["metadata"]["namespace"] for r in roles} == {"a", "b"}
    for namespaced in roles:
        resources = {res for rule in namespaced["rules"] for res in rule["resources"]}
        assert "secrets" in resources and "jobs" not in resources


def test_rbac_is_one_cluster_role_when_every_namespace_is_served():
    values = {"watchAllNamespaces": True}
    _, objects = render("release-ns", values)
    assert work_roles(objects) == [] and lease_role(objects)["metadata"]["namespace"] == "release-ns"
    role, binding = the(objects, "ClusterRole"), the(objects, "ClusterRoleBinding")
    assert role["metadata"]["name"] == binding["roleRef"]["name"] == f"release-ns-{FULLNAME}"
    args = the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("--all-namespaces" in args) == bool(values.get("watchAllNamespaces"))
    assert "--leader-election-namespace=release-ns" in args
    assert {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]} in role["rules"]


@pytest.mark.parametrize("values", [{}, {"watchAllNamespaces": True}])
def test_without_read_workloads_no_rule_mentions_kueue(values):
    _, objects = render("release-ns", {**values, "rbac": {"readWorkloads": False}})
    rules = [rule for kind in ("ClusterRole", "Role") for role in by_kind(objects, kind) for rule in role["rules"]]
    assert rules and not [rule for rule in rules if "kueue.x-k8s.io" in rule["apiGroups"]]


@pytest.mark.parametrize("values", [{}, {"watchAllNamespaces": True}])
def test_without_read_nodes_no_rule_mentions_nodes(values):
    _, objects = render("release-ns", {**values, "rbac": {**values.get("rbac", {}), "readNodes": False}})
    rules = [rule for kind in ("ClusterRole", "Role") for role in by_kind(objects, kind) for rule in role["rules"]]
    assert rules and not [rule for rule in rules if "nodes" in rule["resources"]]


def rendered_policy(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The policy file the chart renders, and the Deployment."""
    _, objects = render("release-ns", values)
    config_map = the(objects, "ConfigMap")
    assert config_map["metadata"]["name"] == f"{FULLNAME}-policy"
    return json.loads(config_map["data"]["policy.json"]), the(objects, "Deployment")


def test_the_policy_of_the_default_values_is_the_operators_built_in_policy():
    data, _ = rendered_policy({})
    assert policy_from_dict(data) == DEFAULT_POLICY


def test_policy_values_become_the_operators_policy_and_null_means_no_limit():
    data, _ = rendered_policy({"policy": {**STRICT_POLICY, "jobNamespaces": ["jobs"]}})
    policy = policy_from_dict(data)
    assert policy.job_namespaces == ("jobs",) and policy.service_account_names == ("runner",)
    assert (policy.default_profile, policy.allowed_profiles) == ("restricted", ("restricted",))
    assert (policy.ceiling.cpu, policy.ceiling.gpus, policy.ceiling.containers_per_process) == ("2", 0, 4)
    assert (policy.defaults.memory, policy.defaults.walltime_seconds) == ("512Mi", 600)
    assert policy.cluster_domain == "corp.local" and policy.max_concurrent_processes == 20
    assert policy.volume_types == ("persistentVolumeClaim", "nfs")
    data, _ = rendered_policy({"policy": {"ceiling": {"containersPerProcess": None},
                                          "defaults": {"walltimeSeconds": None}}})
    assert data["ceiling"]["containersPerProcess"] is None, "every key is written out: null is no limit"
    policy = policy_from_dict(data)
    assert policy.ceiling.containers_per_process is None and policy.defaults.walltime_seconds is None


def test_a_policy_change_rolls_the_operator_pod():
    def checksum(values):
        return rendered_policy(values)[1]["spec"]["template"]["metadata"]["annotations"]["checksum/policy"]
    assert checksum({}) == checksum({"podAnnotations": {"a": "b"}})
    assert checksum({}) != checksum({"policy": {"jobNamespaces": ["jobs"]}})


def test_the_service_monitor_selects_the_metrics_service():
    _, objects = render("release-ns", COMBINATIONS["service monitor"]("release-ns", []))
    service, monitor = the(objects, "Service"), the(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["release-ns"]}
    assert monitor["spec"]["endpoints"] == [{"port": "http-metrics", "path": "/metrics", "interval": "15s",
                                             "scrapeTimeout": "10s"}]
    assert service["spec"]["ports"][0]["name"] == "http-metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_executors_are_rendered_as_given_in_their_namespaces():
    _, objects = render("release-ns", COMBINATIONS["executors"]("release-ns", ["second-ns", "third-ns"]))
    first, second = by_kind(objects, "ColoniesExecutor")
    assert (first["metadata"]["namespace"], second["metadata"]["namespace"]) == ("release-ns", "second-ns")
    assert second["spec"]["credentials"] == {"executorKeySecret": {"name": "executor-key", "key": "prv"}}
    assert second["spec"]["jobs"]["namespace"] == "second-ns"
    assert first["spec"]["jobs"] == {"priorityClassName": "batch-low", "podTemplate": POD_TEMPLATE}


# -- against the API server -------------------------------------------------------------------------------------

@pytest.fixture
def more_namespaces(kube_cluster, _deleted_namespaces) -> Iterator[list[str]]:
    """Two more fresh namespaces."""
    names = [f"chart-extra-{secrets.token_hex(4)}" for _ in range(2)]
    with kube_cluster.api_client() as api:
        core = client.CoreV1Api(api)
        for name in names:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
                name=name, labels={"colonies-operator.test/namespace": "true"})))
        try:
            yield names
        finally:
            for name in names:
                _deleted_namespaces.append(name)
                delete_namespace(api, name, wait=False)


@pytest.fixture(scope="session")
def chart_crd(kube_cluster) -> None:
    """The chart's CRD in the cluster, so ColoniesExecutors can be validated (as the e2e tests apply it)."""
    kubectl = ["kubectl", "--kubeconfig", kube_cluster.kubeconfig]
    subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-f",
                              str(CHART / "crds" / "coloniesexecutor.yaml")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(kubectl + ["wait", "--for=condition=Established", "--timeout=60s",
                              "crd/coloniesexecutors.colonyos.io"], check=True, stdout=subprocess.DEVNULL)


@pytest.mark.cluster
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_rendered_manifest_passes_the_api_servers_validation_and_pod_security(combination, kube_cluster, chart_crd, namespace,
                                                                  more_namespaces, tmp_path):
    # Pod Security admission warns about a workload's pod template that breaks the "restricted" standard.
    with kube_cluster.api_client() as api:
        client.CoreV1Api(api).patch_namespace(namespace, {"metadata": {"labels": {
            "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest"}}})
    _, objects = render(namespace, COMBINATIONS[combination](namespace, more_namespaces), include_crds=True)
    # The Prometheus Operator's CRD is not installed in the test cluster, so the ServiceMonitor cannot be
    # checked by the API server; test_the_service_monitor_selects_the_metrics_service checks its content.
    checked = [obj for obj in objects if obj["kind"] != "ServiceMonitor"]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(checked))
    result = subprocess.run(["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "apply", "--dry-run=server",
                             "--validate=strict", "-o", "name", "-f", str(manifest)], capture_output=True, text=True)
    assert result.returncode == 0, f"{combination}: {result.stderr}"
    assert "PodSecurity" not in result.stderr, result.stderr
    accepted = result.stdout.split()
    assert len(accepted) == len(checked), f"{combination}: the API server accepted {accepted}"
    assert any(obj["kind"] == "Deployment" for obj in checked)


SPREAD = {"topologyKey": "kubernetes.io/hostname",
          "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "colonies-operator",
                                            "app.kubernetes.io/instance": RELEASE}}}


@pytest.mark.parametrize("values, affinity", [
    ({}, {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": SPREAD}]}}),
    ({"podAntiAffinity": "required"}, {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        SPREAD]}}),
    ({"podAntiAffinity": "none"}, None),
    ({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}},
     {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}),
], ids=["preferred-by-default", "required", "none", "the-affinity-value-wins"])
def test_the_instances_are_spread_over_nodes(values, affinity):
    _, objects = render("release-ns", values)
    assert the(objects, "Deployment")["spec"]["template"]["spec"].get("affinity") == affinity


def test_a_node_affinity_keeps_the_spread_over_nodes():
    node = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}
    _, objects = render("release-ns", {"affinity": {"nodeAffinity": node}})
    affinity = the(objects, "Deployment")["spec"]["template"]["spec"]["affinity"]
    assert affinity["nodeAffinity"] == node and "preferredDuringSchedulingIgnoredDuringExecution" in \
        affinity["podAntiAffinity"]


def test_a_pod_disruption_budget_leaves_an_instance_to_take_over():
    _, objects = render("release-ns")
    budget, deployment = the(objects, "PodDisruptionBudget"), the(objects, "Deployment")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    _, objects = render("release-ns", {"podDisruptionBudget": {"enabled": False}})
    assert by_kind(objects, "PodDisruptionBudget") == []


def test_the_lease_timings_are_values():
    _, objects = render("release-ns", {"replicaCount": 3, "orphanJobGraceSeconds": 0,
                                       "leaderElection": {"leaseDuration": 30, "renewDeadline": 20,
                                                          "retryPeriod": 4}})
    deployment = the(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert deployment["spec"]["replicas"] == 3
    assert {"--lease-duration=30", "--renew-deadline=20", "--retry-period=4", "--orphan-grace=0"} <= set(args)


def test_the_uninstall_hook_releases_the_executors_of_the_values_and_only_then():
    _, objects = render("release-ns")
    assert by_kind(objects, "Job") == [], "no executors in the values: no hook"
    _, objects = render("release-ns", COMBINATIONS["executors"]("release-ns", ["second-ns", "third-ns"]))
    hook = the(objects, "Job")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    pod = hook["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["args"] == ["release", "--delete", "--wait=60", "--policy-file=/etc/colonies-operator/policy.json",
                                 "release-ns/by-colony-key", "second-ns/by-executor-key"]
    assert {"name": "policy", "configMap": {"name": f"{FULLNAME}-policy"}} in pod["volumes"]
    _, objects = render("release-ns", {**COMBINATIONS["executors"]("release-ns", ["second-ns", "third-ns"]),
                                       "uninstall": {"hook": False}})
    assert by_kind(objects, "Job") == []


def test_the_operator_may_delete_coloniesexecutors_for_the_uninstall_hook():
    _, objects = render("release-ns")
    (role,) = work_roles(objects)
    rule = next(r for r in role["rules"] if r["resources"] == ["coloniesexecutors"])
    assert "delete" in rule["verbs"]
