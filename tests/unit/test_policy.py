"""The cluster admin's policy, per-process limits and defaults, pod security profiles and the server address."""

from __future__ import annotations

import json

import pytest

from colonies_operator.colonies import Process
from colonies_operator.colonies.address import server_url
from colonies_operator.cli import load_policy
from colonies_operator.core.admission import check_resource, server_security
from colonies_operator.core.conditions import ALLOWED, READY, SECURE, ready_from, with_condition
from colonies_operator.core.config import config_from_spec
from colonies_operator.core.images import image_matches, normalize_image
from colonies_operator.core.jobs import build_job
from colonies_operator.core.plan import InvalidProcess, plan_job, probe_plan
from colonies_operator.core.podsecurity import security_contexts, violations
from colonies_operator.core.policy import DEFAULT_POLICY, OperatorPolicy, PolicyError, policy_from_dict
from colonies_operator.core.quantity import parse_quantity

PID = "ab" * 32
SPEC = {"server": {"host": "colonies.example.org"}, "colonyName": "dev",
        "credentials": {"colonyKeySecret": {"name": "k"}}}


def config(policy: dict | None = None, **spec):
    return config_from_spec({**SPEC, **spec}, namespace="team-a", name="exec1",
                            policy=policy_from_dict(policy) if policy is not None else DEFAULT_POLICY)


def process(image="busybox:1.35", **conditions):
    return Process.from_dict({"processid": PID, "spec": {
        "funcname": "execute", "kwargs": {"docker-image": image, "cmd": "echo hello world"},
        "conditions": {"nodes": 1, "processespernode": 1, **conditions}}})


def reasons(cfg) -> list[str]:
    return [v.reason for v in check_resource(cfg)]


# -- the policy file -----------------------------------------------------------------------------------------------

def test_without_a_policy_file_the_safe_defaults_apply():
    assert load_policy("") == load_policy(None) == DEFAULT_POLICY == policy_from_dict({})
    assert DEFAULT_POLICY.job_namespaces == () and DEFAULT_POLICY.service_account_names == ()
    assert DEFAULT_POLICY.allow_service_account_token is False
    assert (DEFAULT_POLICY.default_profile, DEFAULT_POLICY.allowed_profiles) == ("baseline", ("baseline", "restricted"))
    assert DEFAULT_POLICY.ceiling.containers_per_process == 128
    assert (DEFAULT_POLICY.defaults.cpu, DEFAULT_POLICY.defaults.memory, DEFAULT_POLICY.defaults.ephemeral_storage,
            DEFAULT_POLICY.defaults.walltime_seconds) == ("100m", "256Mi", "2Gi", 86400)


def test_a_policy_file_in_yaml_or_json_is_read(tmp_path):
    data = {"jobNamespaces": ["batch"], "serviceAccountNames": ["runner"], "allowServiceAccountToken": True,
            "podSecurity": {"defaultProfile": "restricted", "allowedProfiles": ["restricted"]},
            "maxConcurrentProcesses": 50,
            "ceiling": {"allowedImages": ["registry.example.com/**"], "cpu": "4", "memory": "8Gi", "gpus": 0,
                        "nodes": 4, "processesPerNode": 2, "containersPerProcess": 6, "walltimeSeconds": 7200},
            "defaults": {"cpu": "250m", "memory": "512Mi", "walltimeSeconds": 600}, "clusterDomain": "corp.local"}
    (tmp_path / "p.json").write_text(json.dumps(data))
    (tmp_path / "p.yaml").write_text("jobNamespaces: [batch]\nserviceAccountNames: [runner]\n"
                                     "allowServiceAccountToken: true\n"
                                     "podSecurity: {defaultProfile: restricted, allowedProfiles: [restricted]}\n"
                                     "maxConcurrentProcesses: 50\n"
                                     "ceiling: {allowedImages: ['registry.example.com/**'], cpu: '4', memory: 8Gi,\n"
                                     "  gpus: 0, nodes: 4, processesPerNode: 2, containersPerProcess: 6,\n"
                                     "  walltimeSeconds: 7200}\n"
                                     "defaults: {cpu: 250m, memory: 512Mi, walltimeSeconds: 600}\n"
                                     "clusterDomain: corp.local\n")
    policy = load_policy(str(tmp_path / "p.yaml"))
    assert policy == load_policy(str(tmp_path / "p.json"))
    assert policy.job_namespaces == ("batch",) and policy.ceiling.gpus == 0 and policy.ceiling.cpu == "4"
    assert policy.defaults.ephemeral_storage == "2Gi", "a key not given keeps its built-in default"
    nulls = policy_from_dict({"ceiling": {"containersPerProcess": None}, "defaults": {"walltimeSeconds": None}})
    assert nulls.ceiling.containers_per_process is None and nulls.defaults.walltime_seconds is None, \
        "null: no limit, no default"


@pytest.mark.parametrize("data, message", [
    ({"jobNamespace": ["x"]}, "unknown keys \\['jobNamespace'\\]"),
    ({"jobNamespaces": "kube-system"}, "policy.jobNamespaces must be a list"),
    ({"jobNamespaces": ["Kube_System"]}, "not a namespace name"),
    ({"allowServiceAccountToken": "yes"}, "policy.allowServiceAccountToken must be true or false"),
    ({"podSecurity": {"defaultProfile": "root"}}, "'root' is not one of baseline, restricted, privileged"),
    ({"podSecurity": {"defaultProfile": "privileged"}}, "must be one of policy.podSecurity.allowedProfiles"),
    ({"ceiling": {"cpu": "lots"}}, "policy.ceiling.cpu: 'lots' is not a Kubernetes quantity"),
    ({"ceiling": {"cpu": "0.0001"}}, "finer than a millicore"),
    ({"ceiling": {"nodes": 0}}, "policy.ceiling.nodes must be at least 1"),
    ({"ceiling": {"walltime": 5}}, "unknown keys \\['walltime'\\]"),
    ({"ceiling": {"memory": "128Mi"}}, "policy.defaults.memory 256Mi is above policy.ceiling.memory 128Mi"),
    ([1, 2], "must be an object"),
])
def test_a_bad_policy_is_refused_naming_the_key(data, message):
    with pytest.raises(PolicyError, match=message):
        policy_from_dict(data)


def test_defaults_within_the_ceiling_are_fine():
    assert policy_from_dict({"ceiling": {"memory": "256Mi"}}).ceiling.memory == "256Mi"


def test_an_unreadable_policy_file_says_so(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("ceiling: [unclosed")
    with pytest.raises(PolicyError, match="is not YAML or JSON"):
        load_policy(str(tmp_path / "bad.yaml"))


# -- a resource against the policy -----------------------------------------------------------------------------------

def test_a_plain_resource_is_allowed_by_the_default_policy():
    assert check_resource(config()) == []
    assert check_resource(config(jobs={"namespace": "team-a", "podSecurityProfile": "restricted"})) == []


@pytest.mark.parametrize("spec, reason, setting", [
    ({"jobs": {"namespace": "kube-system"}}, "JobNamespaceNotAllowed", "policy.jobNamespaces"),
    ({"jobs": {"serviceAccountName": "kube-proxy"}}, "ServiceAccountNotAllowed", "policy.serviceAccountNames"),
    ({"jobs": {"automountServiceAccountToken": True}}, "ServiceAccountTokenNotAllowed",
     "policy.allowServiceAccountToken"),
    ({"jobs": {"podSecurityProfile": "privileged"}}, "PodSecurityProfileNotAllowed",
     "policy.podSecurity.allowedProfiles"),
    ({"jobs": {"securityContext": {"privileged": True}}}, "SecurityContextNotAllowed",
     "policy.podSecurity.allowedProfiles"),
    ({"jobs": {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}}, "SecurityContextNotAllowed",
     "capabilities.add SYS_ADMIN"),
    ({"jobs": {"securityContext": {"allowPrivilegeEscalation": True}}}, "SecurityContextNotAllowed",
     "allowPrivilegeEscalation must be false"),
    ({"jobs": {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}}, "SecurityContextNotAllowed",
     "Unconfined turns seccomp off"),
    ({"jobs": {"podSecurityProfile": "restricted", "podSecurityContext": {"runAsUser": 0}}},
     "SecurityContextNotAllowed", "runAsUser 0 is root"),
    ({"maxConcurrentProcesses": 1001}, "LimitAboveCeiling", "policy.maxConcurrentProcesses"),
    ({"processLimits": {"containersPerProcess": 500}}, "LimitAboveCeiling", "policy.ceiling.containersPerProcess"),
    ({"processLimits": {"memory": "128Mi"}, "processDefaults": {"memory": "1Gi"}}, "DefaultAboveLimit",
     "spec.processDefaults.memory 1Gi is above the limit 128Mi"),
])
def test_a_resource_asking_for_more_than_the_policy_allows_is_refused_naming_the_setting(spec, reason, setting):
    found = check_resource(config(**spec))
    assert [v.reason for v in found] == [reason]
    assert setting in found[0].message


def test_the_admin_can_allow_each_of_them():
    policy = {"jobNamespaces": ["kube-system"], "serviceAccountNames": ["kube-proxy"],
              "allowServiceAccountToken": True, "maxConcurrentProcesses": 2000,
              "podSecurity": {"allowedProfiles": ["baseline", "restricted", "privileged"]},
              "ceiling": {"containersPerProcess": 1000}}
    assert check_resource(config(policy, jobs={"namespace": "kube-system", "serviceAccountName": "kube-proxy",
                                               "automountServiceAccountToken": True,
                                               "podSecurityProfile": "privileged",
                                               "securityContext": {"privileged": True}},
                                 maxConcurrentProcesses=1000, processLimits={"containersPerProcess": 500})) == []
    assert check_resource(config({"jobNamespaces": ["*"], "serviceAccountNames": ["*"]},
                                 jobs={"namespace": "anywhere", "serviceAccountName": "any"})) == []


def test_limits_above_the_ceiling_are_refused_each_naming_its_ceiling():
    policy = {"ceiling": {"cpu": "2", "memory": "4Gi", "ephemeralStorage": "10Gi", "gpus": 1, "nodes": 2,
                          "processesPerNode": 2, "containersPerProcess": 4, "walltimeSeconds": 3600},
              "defaults": {"walltimeSeconds": 600}}
    over = {"cpu": "2500m", "memory": "5Gi", "ephemeralStorage": "11Gi", "gpus": 2, "nodes": 3, "processesPerNode": 3,
            "containersPerProcess": 5, "walltimeSeconds": 3601}
    found = check_resource(config(policy, processLimits=over))
    assert [v.reason for v in found] == ["LimitAboveCeiling"] * 8
    for key, violation in zip(over, found):
        assert f"policy.ceiling.{key}" in violation.message
    assert check_resource(config(policy, processLimits={"cpu": "2000m", "memory": "4096Mi", "nodes": 2})) == []


# -- per-process limits and defaults -------------------------------------------------------------------------------

@pytest.mark.parametrize("conditions, limits, message", [
    ({"cpu": "1500m"}, {"cpu": "1"}, "conditions.cpu 1500m is above the limit of 1 per container "
                                     "(spec.processLimits.cpu of ColoniesExecutor team-a/exec1, set by its owner)"),
    ({"mem": "2Gi"}, {"memory": "1Gi"}, "conditions.mem 2Gi is above the limit of 1Gi per container"),
    ({"storage": "5Gi"}, {"ephemeralStorage": "4Gi"}, "conditions.storage 5Gi is above the limit of 4Gi"),
    ({"gpu": {"count": 2}}, {"gpus": 1}, "conditions.gpu.count 2 is above the limit of 1"),
    ({"gpu": {"count": 1}}, {"gpus": 0}, "conditions.gpu.count 1 is above the limit of 0"),
    ({"nodes": 3}, {"nodes": 2}, "conditions.nodes 3 is above the limit of 2"),
    ({"processespernode": 3}, {"processesPerNode": 2}, "conditions.processespernode 3 is above the limit of 2"),
    ({"nodes": 3, "processespernode": 3}, {"containersPerProcess": 8}, "(containers) 9 is above the limit of 8"),
    ({"walltime": 120}, {"walltimeSeconds": 60}, "conditions.walltime 120 is above the limit of 60"),
])
def test_a_process_beyond_a_resource_limit_is_refused_with_the_limit_and_who_sets_it(conditions, limits, message):
    cfg = config(processLimits=limits)
    with pytest.raises(InvalidProcess) as refused:
        plan_job(process(**conditions), cfg)
    assert message in str(refused.value)
    assert "set by its owner" in str(refused.value)


def test_the_tighter_of_limit_and_ceiling_applies_and_names_its_setter():
    cfg = config({"ceiling": {"cpu": "2", "nodes": 8}}, processLimits={"cpu": "4000m", "nodes": 2})
    with pytest.raises(InvalidProcess, match=r"above the limit of 2 per container \(policy.ceiling.cpu of the "
                                             r"operator, set by the cluster admin\)"):
        plan_job(process(cpu="2500m"), cfg)
    with pytest.raises(InvalidProcess, match=r"limit of 2 \(spec.processLimits.nodes"):
        plan_job(process(nodes=3), cfg)
    assert plan_job(process(cpu="2000m", nodes=2), cfg).cpu == "2000m"


def test_the_default_ceiling_bounds_the_containers_of_one_process():
    with pytest.raises(InvalidProcess, match=r"\(containers\) 640 is above the limit of 128 "
                                             r"\(policy.ceiling.containersPerProcess"):
        plan_job(process(nodes=10, processespernode=64), config())
    assert plan_job(process(nodes=2, processespernode=64), config()).containers_total == 128


def test_a_process_giving_nothing_gets_the_defaults_as_requests_limits_and_deadline():
    container_of = lambda job: job["spec"]["template"]["spec"]["containers"][0]  # noqa: E731
    job = build_job(process(), plan_job(process(), config()), config(), "cd" * 32)
    expected = {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "2Gi"}
    assert container_of(job)["resources"] == {"requests": expected, "limits": expected}
    assert job["metadata"]["annotations"]["colonyos.io/walltime-seconds"] == "86400"
    cfg = config(processDefaults={"cpu": "250m", "memory": "1Gi", "ephemeralStorage": "1Gi", "walltimeSeconds": 60})
    job = build_job(process(), plan_job(process(), cfg), cfg, "cd" * 32)
    expected = {"cpu": "250m", "memory": "1Gi", "ephemeral-storage": "1Gi"}
    assert container_of(job)["resources"] == {"requests": expected, "limits": expected}
    assert job["metadata"]["annotations"]["colonyos.io/walltime-seconds"] == "60"
    # What the process gives wins; storage is ephemeral-storage.
    plan = plan_job(process(cpu="500m", mem="64Mi", storage="3Gi", walltime=30), cfg)
    assert (plan.cpu, plan.memory, plan.ephemeral_storage, plan.walltime) == ("500m", "64Mi", "3Gi", 30)


def test_the_admins_default_is_capped_by_a_lower_resource_limit():
    plan = plan_job(process(), config(processLimits={"memory": "128Mi", "walltimeSeconds": 600}))
    assert (plan.memory, plan.walltime) == ("128Mi", 600)


def test_a_bad_storage_condition_says_what_to_fix():
    with pytest.raises(InvalidProcess, match="conditions.storage '1.5Gi' is not understood"):
        plan_job(process(storage="1.5Gi"), config())


def test_the_dry_run_probe_meets_no_process_limit_but_gets_the_defaults():
    cfg = config({"ceiling": {"allowedImages": ["registry.example.com/**"]}},
                 processLimits={"allowedImages": ["quay.io/**"], "memory": "128Mi"})
    plan = probe_plan(cfg)
    assert (plan.cpu, plan.memory, plan.ephemeral_storage, plan.walltime) == ("100m", "128Mi", "2Gi", 86400)
    build_job(process(), plan, cfg, "cd" * 32)


# -- allowed images --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image, full", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.35", "docker.io/library/busybox:1.35"),
    ("library/busybox:1.35", "docker.io/library/busybox:1.35"),
    ("team/app:v1", "docker.io/team/app:v1"),
    ("registry.example.com/team/app:v1", "registry.example.com/team/app:v1"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("ghcr.io/o/app@sha256:" + "a" * 64, "ghcr.io/o/app@sha256:" + "a" * 64),
])
def test_images_are_normalized_as_the_kubelet_pulls_them(image, full):
    assert normalize_image(image) == full


@pytest.mark.parametrize("image", ["Busybox", "busybox:", "a//b", "busybox:1.35/evil", "reg.io/app:bad tag"])
def test_what_is_not_an_image_reference_is_refused(image):
    with pytest.raises(ValueError):
        normalize_image(image)


@pytest.mark.parametrize("pattern, image, matches", [
    ("busybox:*", "busybox:1.35", True),
    ("busybox:*", "busybox", True),
    ("busybox:*", "busybox:5000/evil/img:1", False),  # a registry named busybox is not the busybox image
    ("docker.io/library/*", "alpine:3", True),
    ("docker.io/library/*", "evil/alpine:3", False),
    ("registry.example.com/**", "registry.example.com/team/app:v1", True),
    ("registry.example.com/*", "registry.example.com/team/app:v1", False),
    ("registry.example.com/**", "registry.example.com.evil.io/app:v1", False),
    ("**", "anything.io/at/all:1", True),
])
def test_image_patterns(pattern, image, matches):
    assert image_matches(normalize_image(image), pattern) is matches


def test_an_image_outside_either_list_is_refused_naming_the_list():
    cfg = config({"ceiling": {"allowedImages": ["docker.io/library/*", "registry.example.com/**"]}},
                 processLimits={"allowedImages": ["busybox:*"]})
    assert plan_job(process("busybox:1.35"), cfg).image == "busybox:1.35"
    with pytest.raises(InvalidProcess, match=r"image docker.io/library/alpine:3 is not allowed: "
                                             r"spec.processLimits.allowedImages of ColoniesExecutor team-a/exec1, "
                                             r"set by its owner, allows only busybox:\*"):
        plan_job(process("alpine:3"), cfg)
    with pytest.raises(InvalidProcess, match=r"image quay.io/x/y:1 is not allowed: policy.ceiling.allowedImages "
                                             r"of the operator, set by the cluster admin"):
        plan_job(process("quay.io/x/y:1"), cfg)
    with pytest.raises(InvalidProcess, match="is not an image reference"):
        plan_job(process("busybox:5000/x:"), cfg)


# -- pod security profiles ------------------------------------------------------------------------------------------

def test_jobs_get_the_baseline_profile_by_default():
    cfg = config()
    job = build_job(process(), plan_job(process(), cfg), cfg, "cd" * 32)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False}
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC", "volumes"))


def test_the_restricted_profile_on_request_and_the_resources_own_settings_merged_over_it():
    cfg = config(jobs={"podSecurityProfile": "restricted", "podSecurityContext": {"runAsUser": 1000},
                       "securityContext": {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["NET_RAW"]}}})
    assert check_resource(cfg) == []
    pod = build_job(process(), plan_job(process(), cfg), cfg, "cd" * 32)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL", "NET_RAW"]},
        "readOnlyRootFilesystem": True}


def test_the_admins_default_profile_applies_to_resources_that_name_none():
    cfg = config({"podSecurity": {"defaultProfile": "restricted"}})
    pod = build_job(process(), plan_job(process(), cfg), cfg, "cd" * 32)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("profile", ["baseline", "restricted"])
def test_each_profiles_own_settings_meet_it(profile):
    assert violations(profile, *security_contexts(profile, {}, {})) == []


@pytest.mark.parametrize("pod, container, broken", [
    ({}, {"runAsNonRoot": False}, "runAsNonRoot must be true"),
    ({}, {"capabilities": {"add": ["NET_ADMIN"]}}, "capabilities.add NET_ADMIN"),
    ({"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}, {}, "not a safe sysctl"),
    ({"seLinuxOptions": {"type": "spc_t"}}, {}, "not a container type"),
    ({}, {"procMount": "Unmasked"}, "unmasks /proc"),
    ({"windowsOptions": {"hostProcess": True}}, {}, "hostProcess"),
    ({}, {"seccompProfile": {"type": "Unconfined"}}, "Unconfined"),
])
def test_restricted_refuses_what_weakens_it(pod, container, broken):
    found = violations("restricted", *security_contexts("restricted", pod, container))
    assert any(broken in v for v in found), found


@pytest.mark.parametrize("pod, container, broken", [
    ({}, {"capabilities": "ALL"}, "securityContext.capabilities must be an object"),
    ({}, {"seLinuxOptions": {"type": ["x"]}}, "is not a container type"),
    ({}, {"seccompProfile": "RuntimeDefault"}, "securityContext.seccompProfile must be an object"),
    ({}, {"capabilities": {"add": "SYS_ADMIN"}}, "capabilities.add must be a list"),
    ({"sysctls": "x"}, {}, "podSecurityContext.sysctls must be a list"),
])
def test_a_malformed_context_is_refused_not_crashed_on(pod, container, broken):
    found = check_resource(config(jobs={"podSecurityProfile": "restricted", "securityContext": container,
                                        "podSecurityContext": pod}))
    assert [v.reason for v in found] == ["SecurityContextNotAllowed"] and broken in found[0].message


def test_the_privileged_profile_checks_nothing():
    assert violations("privileged", *security_contexts("privileged", {}, {"privileged": True})) == []


# -- the server address and the Secure condition --------------------------------------------------------------------

@pytest.mark.parametrize("host, tls, secure, reason", [
    ("colonies.example.org", True, True, "TLS"),
    ("127.0.0.1", False, True, "Loopback"),
    ("localhost", False, True, "Loopback"),
    ("::1", False, True, "Loopback"),
    ("colonies", False, True, "ClusterLocal"),
    ("colonies.colonyos.svc", False, True, "ClusterLocal"),
    ("colonies.colonyos.svc.cluster.local", False, True, "ClusterLocal"),
    ("colonies.example.org", False, False, "PlainHTTP"),
    ("10.88.0.1", False, False, "PlainHTTP"),
    ("colonies.svc.evil.io", False, False, "PlainHTTP"),
])
def test_plain_http_beyond_this_machine_or_cluster_is_not_secure(host, tls, secure, reason):
    cfg = config(server={"host": host, "tls": tls})
    assert server_security(cfg)[:2] == (secure, reason)
    if not secure:
        assert "spec.server.tls" in server_security(cfg)[2]


def test_secure_false_warns_without_making_the_resource_not_ready():
    conditions = []
    for kind in ("Registered", "ColoniesReachable"):
        conditions = with_condition(conditions, kind, True, "Ok", "", 1)
    conditions = with_condition(conditions, SECURE, False, "PlainHTTP", "plain HTTP", 1)
    assert ready_from(conditions)[0] is True
    conditions = with_condition(conditions, ALLOWED, False, "JobNamespaceNotAllowed", "policy.jobNamespaces", 1)
    assert ready_from(conditions) == (False, "JobNamespaceNotAllowed", "policy.jobNamespaces")
    assert [c["type"] for c in with_condition(conditions, READY, False, "x", "", 1)] == \
        ["Ready", "Allowed", "Registered", "ColoniesReachable", "Secure"]


@pytest.mark.parametrize("host, port, tls, url", [
    ("colonies.example.org", 50080, False, "http://colonies.example.org:50080/api"),
    ("10.0.0.5", 443, True, "https://10.0.0.5:443/api"),
    ("fd00::5", 50080, False, "http://[fd00::5]:50080/api"),
])
def test_server_urls_are_built_from_checked_parts(host, port, tls, url):
    assert server_url(host, port, tls, "/api") == url


@pytest.mark.parametrize("host", ["svc/path?", "h.example/api?x=", "h.example#", "u:p@h.example", "h.example:1"])
def test_a_host_with_a_path_or_query_never_becomes_a_url(host):
    with pytest.raises(ValueError, match="is not a DNS name or an IP address"):
        server_url(host, 50080, False, "/api")


def test_quantities_compare_as_amounts():
    assert parse_quantity("1") == parse_quantity("1000m") and parse_quantity("1Gi") == parse_quantity("1024Mi")
    assert parse_quantity("1G") < parse_quantity("1Gi") and parse_quantity("1e3") == parse_quantity("1k")
    assert OperatorPolicy().allows_namespace("team-a", "team-a") and not OperatorPolicy().allows_namespace("b", "a")
