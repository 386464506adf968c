"""The ColoniesExecutor CRD against config.py, the examples and the Colonies function-spec rules (no cluster)."""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
import re
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from colonies_operator.core import config as cfg
from colonies_operator.colonies.models import Process
from colonies_operator.core.plan import plan_job

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "coloniesexecutor.yaml"
EXAMPLES = ROOT / "examples"
MINIMAL_SPEC = {"server": {"host": "h"}, "colonyName": "c", "credentials": {"colonyKeySecret": {"name": "s"}}}


def _crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version


def _schema() -> dict[str, Any]:
    return _version(_crd())["schema"]["openAPIV3Schema"]


def _children(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
    if isinstance(node.get("items"), dict):
        yield f"{path}[]", node["items"]
    if isinstance(node.get("additionalProperties"), dict):
        yield f"{path}{{}}", node["additionalProperties"]


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below `node` (properties, list items, map values), depth first."""
    for child_path, child in _children(node, path):
        yield child_path, child
        yield from _walk(child, child_path)


def _strip_kubernetes_extensions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_kubernetes_extensions(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_strip_kubernetes_extensions(v) for v in node]
    return node


def _validator() -> jsonschema.Draft7Validator:
    schema = _strip_kubernetes_extensions(_schema())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: a missing property gets its default, then defaults
    apply inside it (so `jobs: {}` receives the nested defaults)."""
    value = copy.deepcopy(value)
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = _apply_defaults(child, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [_apply_defaults(schema["items"], item) for item in value]
    return value


def _example_executors() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "ColoniesExecutor":
                found.append((path.name, doc))
    return found


def _function_specs() -> list[pathlib.Path]:
    return sorted(EXAMPLES.glob("*.json"))


def test_names_version_and_status_subresource():
    crd = _crd()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{names['plural']}.{crd['spec']['group']}" == "coloniesexecutors.colonyos.io"
    assert (names["kind"], names["singular"], names["shortNames"], names["categories"]) == \
        ("ColoniesExecutor", "coloniesexecutor", ["cex"], ["colonyos"])
    assert crd["spec"]["scope"] == "Namespaced"
    version = _version(crd)
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_every_field_has_a_description():
    schema = _schema()
    nodes = list(_walk(schema))
    assert len(nodes) > 60, "the walk should reach every nested field"
    # The API server forbids anything but `type` under metadata; `kubectl explain` shows ObjectMeta's own text.
    missing = [path for path, node in nodes if not str(node.get("description", "")).strip() and path != ".metadata"]
    assert missing == []
    assert schema["description"].strip()


def test_every_default_is_written_in_its_description():
    """`kubectl explain` shows descriptions, not defaults: each description must say its default."""
    silent = []
    for path, node in _walk(_schema()):
        default = node.get("default")
        if default is None or default == {}:
            continue
        if isinstance(default, bool):
            words = [str(default).lower()]
        else:
            words = [str(w) for w in default] if isinstance(default, list) else [str(default)]
        if not all(word in node["description"] for word in words):
            silent.append(path)
    assert silent == []


def test_optional_objects_with_nested_defaults_default_to_empty():
    """A nested default applies only if its parent exists, so optional parents must default to {}."""
    spec_schema = _schema()["properties"]["spec"]
    checked = []
    for name, node in spec_schema["properties"].items():
        if name in spec_schema["required"] or not any("default" in child for _, child in _walk(node)):
            continue
        checked.append(name)
        assert node.get("default") == {}, f"spec.{name} needs default {{}} for its nested defaults to apply"
    assert checked == ["jobs", "gpu"]


@pytest.mark.parametrize("credentials", [
    {"colonyKeySecret": {"name": "s"}},
    {"executorKeySecret": {"name": "s"}},
])
@pytest.mark.parametrize("ca_bundle", [None, {"secretName": "ca"}, {"configMapName": "ca"}])
def test_crd_defaults_equal_config_defaults(credentials, ca_bundle):
    """What the API server stores after defaulting must parse to the same config as the bare spec."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["credentials"] = credentials
    if ca_bundle:
        spec["server"]["caBundle"] = ca_bundle
    defaulted = _apply_defaults(_schema()["properties"]["spec"], spec)
    assert defaulted != spec
    bare = cfg.config_from_spec(spec, namespace="ns", name="n")
    stored = cfg.config_from_spec(defaulted, namespace="ns", name="n")
    assert dataclasses.asdict(stored) == dataclasses.asdict(bare)


def test_each_crd_default_maps_to_a_config_field():
    """A table, so a new default in the CRD or in config.py forces a look at both."""
    conf = cfg.config_from_spec(
        {**MINIMAL_SPEC, "server": {"host": "h", "caBundle": {"secretName": "ca"}}}, namespace="ns", name="n")
    executor_key = cfg.config_from_spec(
        {**MINIMAL_SPEC, "credentials": {"executorKeySecret": {"name": "s"}}}, namespace="ns", name="n").executor_key
    expected = {
        ".spec.server.port": conf.server.port,
        ".spec.server.tls": conf.server.tls,
        ".spec.server.caBundle.key": conf.server.ca_bundle.key,
        ".spec.executorType": conf.executor_type,
        ".spec.credentials.colonyKeySecret.key": conf.colony_key.key,
        ".spec.credentials.executorKeySecret.key": executor_key.key,
        ".spec.functions": list(conf.functions),
        ".spec.maxConcurrentProcesses": conf.max_concurrent_processes,
        ".spec.assignTimeoutSeconds": conf.assign_timeout_seconds,
        ".spec.jobs": {},
        ".spec.jobs.automountServiceAccountToken": conf.jobs.automount_service_account_token,
        ".spec.jobs.imagePullPolicy": conf.jobs.image_pull_policy,
        ".spec.jobs.ttlSecondsAfterFinished": conf.jobs.ttl_seconds_after_finished,
        ".spec.jobs.pendingTimeoutSeconds": conf.jobs.pending_timeout_seconds,
        ".spec.jobs.imagePullGracePeriodSeconds": conf.jobs.image_pull_grace_seconds,
        ".spec.jobs.maxDisruptions": conf.jobs.max_disruptions,
        ".spec.jobs.scaleUpTimeoutSeconds": conf.jobs.scale_up_timeout_seconds,
        ".spec.gpu": {},
        ".spec.gpu.resourceName": conf.gpu.resource_name,
        ".spec.gpu.nodeLabel": conf.gpu.node_label,
    }
    in_crd = {path: node["default"] for path, node in _walk(_schema()) if "default" in node}
    assert in_crd == expected
    assert (conf.jobs.namespace, conf.executor_name) == ("ns", "n"), "defaults the operator applies, not the CRD"


def test_examples_validate_against_the_schema_and_config():
    validator = _validator()
    examples = _example_executors()
    assert {name for name, _ in examples} == {"executor.yaml", "executor-colony-key.yaml", "executor-gpu.yaml"}
    for name, doc in examples:
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], name
        assert doc["apiVersion"] == "colonyos.io/v1alpha1"
        spec = _apply_defaults(_schema()["properties"]["spec"], doc["spec"])
        cfg.config_from_spec(spec, namespace="default", name=doc["metadata"]["name"])


def _readme_pod_template_examples() -> list[dict[str, Any]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Shaping the Job pods", 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def test_the_readmes_pod_template_examples_are_valid_allowed_and_merged():
    """Each README example of spec.jobs.podTemplate passes the CRD schema and the operator, the default policy
    allows it, and nothing in it is ignored."""
    from colonies_operator.core.admission import check_resource, template_condition

    examples = _readme_pod_template_examples()
    assert len(examples) == 4
    validator = _validator()
    for fragment in examples:
        spec = {**copy.deepcopy(MINIMAL_SPEC), **fragment}
        errors = [e.message for e in validator.iter_errors({"spec": spec})]
        assert errors == [], fragment
        conf = cfg.config_from_spec(_apply_defaults(_schema()["properties"]["spec"], spec), namespace="ns", name="n")
        assert check_resource(conf) == [], fragment
        assert template_condition(conf)[:2] == (True, "Merged"), fragment


def test_examples_hold_no_key_and_no_secret():
    """Applying an example never replaces a key Secret the user made: the examples name Secrets, never hold one."""
    for path in EXAMPLES.iterdir():
        assert not re.search(r"\b[0-9a-fA-F]{64}\b", path.read_text()), f"{path.name} looks like it holds a key"
    kinds = {doc.get("kind") for path in EXAMPLES.glob("*.yaml") for doc in yaml.safe_load_all(path.read_text())
             if doc}
    assert kinds == {"ColoniesExecutor"}


def test_each_example_says_what_to_set_before_applying():
    for path in EXAMPLES.glob("*.yaml"):
        head = path.read_text().split("apiVersion:", 1)[0]
        assert "Before applying" in head and "spec.server" in head and "kubectl create secret" in head, path.name


@pytest.mark.parametrize("path, value", [
    ("server.port", "abc"),
    ("server.port", 0),
    ("server.port", 65536),
    ("server.tls", "yes"),
    ("server.host", ""),
    ("server.host", "svc/path?"),
    ("server.host", "colonies.example.org/api?x="),
    ("server.host", "http://colonies.example.org"),
    ("server.host", "colonies.example.org:50080"),
    ("server.host", "user@colonies.example.org"),
    ("server.host", "[fd00::5]"),
    ("jobs.podSecurityProfile", "root"),
    ("processLimits.cpu", "lots"),
    ("processLimits.memory", "1.5Gi"),
    ("processLimits.nodes", 0),
    ("processLimits.nodes", 128),
    ("processLimits.gpus", -1),
    ("processLimits.allowedImages", "busybox:*"),
    ("processDefaults.walltimeSeconds", 0),
    ("colonyName", 7),
    ("functions", []),
    ("functions", "execute"),
    ("maxConcurrentProcesses", 0),
    ("maxConcurrentProcesses", 1001),
    ("assignTimeoutSeconds", 301),
    ("jobs.namespace", "Not_A_Namespace"),
    ("jobs.imagePullPolicy", "Sometimes"),
    ("jobs.nodeSelector", {"gpu": True}),
    ("jobs.tolerations", [{"key": "k", "operator": "Maybe"}]),
    ("jobs.tolerations", [{"key": "k", "effect": "NoWay"}]),
    ("jobs.imagePullSecrets", [{"name": "regcred"}]),
    ("jobs.ttlSecondsAfterFinished", -1),
    ("jobs.pendingTimeoutSeconds", 0),
    ("jobs.imagePullGracePeriodSeconds", -1),
    ("jobs.podSecurityContext", "restricted"),
    ("jobs.podTemplate", [{"name": "main"}]),
    ("jobs.podTemplate", {"spec": {"volumes": {"name": "v"}}}),
    ("jobs.podTemplate", {"metadata": {"labels": {"n": 1}}}),
    ("jobs.priorityClassName", 7),
    ("credentials.colonyKeySecret", {"key": "colonyPrvKey"}),
    ("fs", {"image": "colonyos/colonies:v1.9.12"}),
    ("fs.s3SecretRef", {}),
    ("fs.s3SecretRef.name", ""),
    ("fs.uploadTimeoutSeconds", 0),
    ("fs.persistentVolumeClaimName", "Not_A_Claim"),
    ("fs.resources.limits", {"memory": True}),
])
def test_schema_rejects_wrong_values(path, value):
    validator = _validator()
    good = {"apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor", "metadata": {"name": "n"},
            "spec": copy.deepcopy(MINIMAL_SPEC)}
    assert list(validator.iter_errors(good)) == []
    node = good["spec"]
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    assert list(validator.iter_errors(good)) != []


@pytest.mark.parametrize("host", ["colonies", "colonies.colonyos.svc.cluster.local", "10.88.0.1", "fd00::5", "::1",
                                  "a-b.example-1.org"])
def test_schema_and_config_accept_host_names_and_addresses(host):
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["server"]["host"] = host
    assert list(_validator().iter_errors({"spec": spec})) == []
    assert cfg.config_from_spec(spec, namespace="ns", name="n").server.host == host


@pytest.mark.parametrize("host", ["svc/path?", "h.example/api?x=", "http://h.example", "h.example:80", "u@h.example",
                                  "[fd00::5]", "h .example", "-h.example", "cafe:80:1"])
def test_config_refuses_a_host_with_more_than_a_host_in_it(host):
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["server"]["host"] = host
    with pytest.raises(cfg.InvalidSpec, match="spec.server.host .* is not a DNS name or an IP address"):
        cfg.config_from_spec(spec, namespace="ns", name="n")


def test_schema_and_config_accept_spec_fs():
    spec = {**copy.deepcopy(MINIMAL_SPEC), "fs": {"s3SecretRef": {"name": "colonies-s3"}, "image": "reg/colonies:1",
                                                   "persistentVolumeClaimName": "cfs", "uploadTimeoutSeconds": 60,
                                                   "resources": {"requests": {"cpu": 1, "memory": "64Mi"}}}}
    assert list(_validator().iter_errors({"spec": spec})) == []
    fs = cfg.config_from_spec(spec, namespace="ns", name="n").fs
    assert (fs.s3_secret, fs.image, fs.persistent_volume_claim, fs.upload_timeout_seconds, fs.resources) == \
        ("colonies-s3", "reg/colonies:1", "cfs", 60, {"requests": {"cpu": 1, "memory": "64Mi"}})


@pytest.mark.parametrize("missing", ["server", "colonyName", "credentials"])
def test_schema_requires(missing):
    spec = copy.deepcopy(MINIMAL_SPEC)
    del spec[missing]
    assert list(_validator().iter_errors({"spec": spec})) != []


def test_cel_rules_name_real_fields():
    """The exactly-one rules (evaluated only by the API server) must name fields that exist beside them."""
    rules = [(path, node, rule) for path, node in _walk(_schema()) for rule in node.get("x-kubernetes-validations", [])]
    assert {path for path, _, _ in rules} == {".spec.server.caBundle", ".spec.credentials"}
    for path, node, rule in rules:
        fields = set(re.findall(r"self\.(\w+)", rule["rule"]))
        assert len(fields) == 2 and fields <= set(node["properties"]), path
        assert rule["message"].strip()
        # has() cannot tell "" from a real name; minLength keeps the rule equal to config.py's truthiness test.
        assert all(node["properties"][f].get("minLength") == 1 or node["properties"][f]["type"] == "object"
                   for f in fields), path


def test_printer_columns_point_at_schema_fields():
    version = _version(_crd())
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Ready", "Reason", "Type", "Colony", "Location", "Active", "Queued", "Succeeded",
                             "Failed", "Last-Assigned", "Age"]
    assert {n for n, c in columns.items() if c.get("priority", 0) > 0} == {"Reason", "Colony", "Location", "Queued",
                                                                           "Last-Assigned"}
    schema = version["schema"]["openAPIV3Schema"]
    for name, column in columns.items():
        if column["jsonPath"] == ".metadata.creationTimestamp":
            continue
        path = column["jsonPath"].replace('[?(@.type=="Ready")]', "[]")
        node = schema
        for part in path.lstrip(".").split("."):
            field, _, selector = part.partition("[")
            node = node["properties"][field]
            if selector:
                node = node["items"]
        assert node["type"] in ("string", "integer"), name


def test_condition_list_is_a_map_keyed_by_type():
    conditions = _schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]
    for kind in ("Ready", "Registered", "ColoniesReachable", "JobsAccepted", "Assigning"):
        assert kind in conditions["description"]


def test_function_specs_are_safe_colonies_json():
    specs = _function_specs()
    assert {p.name for p in specs} == {"echo.json", "fail.json", "gpu.json", "multinode.json", "colonyfs.json"}
    spec_schema = _schema()["properties"]["spec"]["properties"]
    for path in specs:
        spec = json.loads(path.read_text())
        cond = spec["conditions"]
        assert spec["maxexectime"] > 0, f"{path.name}: maxexectime 0 fails the process within a second"
        assert spec["maxwaittime"] == -1 and isinstance(spec["maxretries"], int), path.name
        assert cond["walltime"] >= spec["maxexectime"], f"{path.name}: the Job must outlive the Colonies deadline"
        assert spec["funcname"] in spec_schema["functions"]["default"], path.name
        assert cond["executortype"] == spec_schema["executorType"]["default"], path.name
        assert re.fullmatch(r"[1-9]\d*m", cond["cpu"]), f"{path.name}: Colonies reads only millicores"
        assert re.fullmatch(r"[1-9]\d*(Ki|Mi|Gi)", cond["mem"]), f"{path.name}: use Ki, Mi or Gi"
        assert isinstance(spec["kwargs"]["docker-image"], str) and isinstance(spec["kwargs"]["cmd"], str)
        assert all(isinstance(a, str) for a in spec["kwargs"].get("args", [])), path.name


@pytest.mark.parametrize("name, nodes, per_node, gpus", [
    ("echo.json", 1, 1, 0), ("fail.json", 1, 1, 0), ("gpu.json", 1, 1, 1), ("multinode.json", 2, 2, 0),
    ("colonyfs.json", 1, 1, 0),
])
def test_function_specs_become_jobs(name, nodes, per_node, gpus):
    """Each example is a process this operator accepts, with the shape its file name promises."""
    spec = json.loads((EXAMPLES / name).read_text())
    process = Process.from_dict({"processid": "a1" * 32, "spec": spec})
    resource = {**MINIMAL_SPEC, "fs": {"s3SecretRef": {"name": "colonies-s3"}}}
    plan = plan_job(process, cfg.config_from_spec(resource, namespace="ns", name="n"))
    assert (plan.fs is not None) == ("fs" in spec)
    assert (plan.nodes, plan.processes_per_node, plan.gpus) == (nodes, per_node, gpus)
    assert plan.walltime == spec["conditions"]["walltime"]
