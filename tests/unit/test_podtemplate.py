"""spec.jobs.podTemplate, field by field: who wins (the operator's fields, the process's), what is merged, what is
refused; then the admin's policy over the merged pod, the PodTemplate condition and the debug log."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import pytest

from colonies_operator.colonies import Process
from colonies_operator.core.admission import check_resource, merged_pod, template_condition
from colonies_operator.core import jobs as jobs_module
from colonies_operator.core.config import InvalidSpec, config_from_spec
from colonies_operator.core.jobs import build_job, debug_log
from colonies_operator.core.plan import plan_job
from colonies_operator.core.podtemplate import merge_pod_template
from colonies_operator.core.policy import DEFAULT_POLICY, PolicyError, policy_from_dict

PID = "ab" * 32
EXECUTOR_ID = "cd" * 32
RESOURCE = {"server": {"host": "h"}, "colonyName": "dev", "credentials": {"colonyKeySecret": {"name": "k"}}}


def config(template: dict[str, Any] | None = None, policy: dict[str, Any] | None = None, **jobs: Any):
    spec_jobs = dict(jobs)
    if template is not None:
        spec_jobs["podTemplate"] = template
    return config_from_spec({**RESOURCE, "jobs": spec_jobs}, namespace="team", name="exec1",
                            policy=policy_from_dict(policy) if policy is not None else DEFAULT_POLICY)


def process(per_node: int = 1, env: dict[str, str] | None = None) -> Process:
    return Process.from_dict({"processid": PID, "spec": {
        "funcname": "execute", "kwargs": {"docker-image": "busybox:1.35", "cmd": "echo hi"},
        "conditions": {"nodes": 1, "processespernode": per_node, "cpu": "200m", "mem": "64Mi"}, "env": env or {}}})


def pod_of(cfg, p: Process | None = None) -> dict[str, Any]:
    p = p or process()
    return build_job(p, plan_job(p, cfg), cfg, EXECUTOR_ID)["spec"]["template"]


def main(**fields: Any) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "main", **fields}]}}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


SECRET_ENV = {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}}}
SIDECAR = {"name": "uploader", "image": "busybox:1.35", "restartPolicy": "Always", "command": ["sh", "-c", "sleep 1d"]}


@dataclasses.dataclass(frozen=True)
class Row:
    rule: str
    template: dict[str, Any]
    read: Callable[[dict[str, Any]], Any]  # from the Job's pod template (metadata, spec)
    expected: Any
    ignored: tuple[str, ...] = ()  # what the PodTemplate condition lists
    jobs: dict[str, Any] = dataclasses.field(default_factory=dict)  # other spec.jobs fields
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # the process's env

    def __str__(self) -> str:
        return self.rule


def first(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


WINS = [
    # -- the operator's and the process's fields win; the template's value is ignored and listed
    Row("the process's image wins over main's", main(image="evil:1"), lambda p: first(p)["image"], "busybox:1.35",
        ("spec.containers[main].image",)),
    Row("the process's command wins over main's", main(command=["rm", "-rf", "/"]), lambda p: first(p)["command"],
        ["sh", "-c", "echo hi", "sh"], ("spec.containers[main].command",)),
    Row("the process's args win over main's", main(args=["x"]), lambda p: "args" in first(p), False,
        ("spec.containers[main].args",)),
    Row("resources from the process's conditions win over main's", main(resources={"limits": {"cpu": "64"}}),
        lambda p: first(p)["resources"]["limits"]["cpu"], "200m", ("spec.containers[main].resources",)),
    Row("the resource's imagePullPolicy wins over main's", main(imagePullPolicy="Always"),
        lambda p: first(p)["imagePullPolicy"], "IfNotPresent", ("spec.containers[main].imagePullPolicy",)),
    Row("the termination message path is the operator's", main(terminationMessagePath="/tmp/x"),
        lambda p: first(p)["terminationMessagePath"], "/dev/termination-log",
        ("spec.containers[main].terminationMessagePath",)),
    Row("a volume mounted over the termination log is ignored",
        {"spec": {"volumes": [{"name": "v", "emptyDir": {}}],
                  "containers": [{"name": "main",
                                  "volumeMounts": [{"name": "v", "mountPath": "/dev/termination-log"}]}]}},
        lambda p: "volumeMounts" in first(p), False, ("spec.containers[main].volumeMounts[/dev/termination-log]",)),
    Row("the operator's env wins over main's", main(env=[{"name": "COLONIES_PROCESS_ID", "value": "forged"}]),
        lambda p: env_of(first(p))["COLONIES_PROCESS_ID"], PID, ("spec.containers[main].env[COLONIES_PROCESS_ID]",)),
    Row("the process's env wins over main's", main(env=[{"name": "GREETING", "value": "template"}]),
        lambda p: [e for e in first(p)["env"] if e["name"] == "GREETING"], [{"name": "GREETING", "value": "process"}],
        env={"GREETING": "process"}),
    Row("the pod's restartPolicy is the operator's", {"spec": {"restartPolicy": "OnFailure"}},
        lambda p: p["spec"]["restartPolicy"], "Never", ("spec.restartPolicy",)),
    Row("a pod deadline is the operator's (the process's walltime)", {"spec": {"activeDeadlineSeconds": 5}},
        lambda p: "activeDeadlineSeconds" in p["spec"], False, ("spec.activeDeadlineSeconds",)),
    Row("the API token is spec.jobs.automountServiceAccountToken's", {"spec": {"automountServiceAccountToken": True}},
        lambda p: p["spec"]["automountServiceAccountToken"], False, ("spec.automountServiceAccountToken",)),
    Row("service links stay off", {"spec": {"enableServiceLinks": True}}, lambda p: p["spec"]["enableServiceLinks"],
        False, ("spec.enableServiceLinks",)),
    Row("the operator's labels win", {"metadata": {"labels": {"colonyos.io/process-id": "forged"}}},
        lambda p: p["metadata"]["labels"]["colonyos.io/process-id"], PID[:63],
        ("metadata.labels[colonyos.io/process-id]",)),
    Row("the operator's annotations win", {"metadata": {"annotations": {"colonyos.io/process-id": "forged"}}},
        lambda p: p["metadata"]["annotations"]["colonyos.io/process-id"], PID,
        ("metadata.annotations[colonyos.io/process-id]",)),
    Row("a pod name is the Job controller's", {"metadata": {"name": "fixed"}}, lambda p: "name" in p["metadata"],
        False, ("metadata.name",)),
    Row("spec.jobs.labels win over the template's", {"metadata": {"labels": {"team": "b"}}},
        lambda p: p["metadata"]["labels"]["team"], "a", ("metadata.labels[team]",), jobs={"labels": {"team": "a"}}),
    Row("spec.jobs.priorityClassName wins over the template's", {"spec": {"priorityClassName": "high"}},
        lambda p: p["spec"]["priorityClassName"], "low", ("spec.priorityClassName",),
        jobs={"priorityClassName": "low"}),
    Row("spec.jobs.serviceAccountName wins over the template's", {"spec": {"serviceAccountName": "other"}},
        lambda p: p["spec"]["serviceAccountName"], "runner", ("spec.serviceAccountName",),
        jobs={"serviceAccountName": "runner"}),
    Row("spec.jobs.nodeSelector wins on the same key", {"spec": {"nodeSelector": {"pool": "b", "zone": "z1"}}},
        lambda p: p["spec"]["nodeSelector"], {"pool": "a", "zone": "z1"}, ("spec.nodeSelector[pool]",),
        jobs={"nodeSelector": {"pool": "a"}}),
    Row("the profile's pod settings win (no seccomp off)",
        {"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}, "runAsUser": 1000}}},
        lambda p: p["spec"]["securityContext"], {"seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 1000},
        ("spec.securityContext.seccompProfile.type",)),
    Row("the profile's container settings win in main (no privilege escalation)",
        main(securityContext={"allowPrivilegeEscalation": True, "readOnlyRootFilesystem": True}),
        lambda p: first(p)["securityContext"],
        {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True},
        ("spec.containers[main].securityContext.allowPrivilegeEscalation",)),
    Row("a value equal to the operator's is no conflict", {"spec": {"restartPolicy": "Never"}},
        lambda p: p["spec"]["restartPolicy"], "Never"),
]

MERGED = [
    # -- the template adds to the operator's pod
    Row("volumes are added", {"spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "ds"}}]}},
        lambda p: p["spec"]["volumes"], [{"name": "data", "persistentVolumeClaim": {"claimName": "ds"}}]),
    Row("tolerations follow spec.jobs.tolerations",
        {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}, {"key": "a", "operator": "Exists"}]}},
        lambda p: [t["key"] for t in p["spec"]["tolerations"]], ["a", "b"], jobs={"tolerations": [
            {"key": "a", "operator": "Exists"}]}),
    Row("topology spread constraints are added",
        {"spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                                 "whenUnsatisfiable": "ScheduleAnyway"}]}},
        lambda p: p["spec"]["topologySpreadConstraints"][0]["topologyKey"], "zone"),
    Row("image pull secrets are added to spec.jobs'", {"spec": {"imagePullSecrets": [{"name": "b"}]}},
        lambda p: p["spec"]["imagePullSecrets"], [{"name": "a"}, {"name": "b"}], jobs={"imagePullSecrets": ["a"]}),
    Row("host aliases are added", {"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}]}},
        lambda p: p["spec"]["hostAliases"], [{"ip": "10.0.0.1", "hostnames": ["db"]}]),
    Row("node selector entries are added", {"spec": {"nodeSelector": {"pool": "gpu"}}},
        lambda p: p["spec"]["nodeSelector"], {"pool": "gpu"}),
    Row("pod labels and annotations are added",
        {"metadata": {"labels": {"team": "science"}, "annotations": {"cost": "42"}}},
        lambda p: (p["metadata"]["labels"]["team"], p["metadata"]["annotations"]["cost"]), ("science", "42")),
    Row("affinity is taken", {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}]}}}}},
        lambda p: list(p["spec"]["affinity"]["nodeAffinity"]), ["requiredDuringSchedulingIgnoredDuringExecution"]),
    Row("a priority class is taken", {"spec": {"priorityClassName": "batch-low"}},
        lambda p: p["spec"]["priorityClassName"], "batch-low"),
    Row("spec.jobs.priorityClassName is the shortcut", {}, lambda p: p["spec"]["priorityClassName"], "batch-low",
        jobs={"priorityClassName": "batch-low"}),
    Row("a runtime class is taken", {"spec": {"runtimeClassName": "gvisor"}},
        lambda p: p["spec"]["runtimeClassName"], "gvisor"),
    Row("DNS settings are taken", {"spec": {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.0.0.53"]}}},
        lambda p: (p["spec"]["dnsPolicy"], p["spec"]["dnsConfig"]), ("None", {"nameservers": ["10.0.0.53"]})),
    Row("pod securityContext fields the profile leaves open are taken",
        {"spec": {"securityContext": {"runAsUser": 1000, "fsGroup": 2000}}},
        lambda p: p["spec"]["securityContext"],
        {"seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 1000, "fsGroup": 2000}),
    Row("main's env, envFrom, mounts and working dir go to the process container, after the operator's env",
        {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
                  "containers": [{"name": "main", "env": [SECRET_ENV], "envFrom": [{"secretRef": {"name": "s"}}],
                                  "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}],
                                  "workingDir": "/work"}]}},
        lambda p: (first(p)["env"][-1], first(p)["envFrom"], first(p)["volumeMounts"], first(p)["workingDir"]),
        (SECRET_ENV, [{"secretRef": {"name": "s"}}], [{"name": "cfg", "mountPath": "/etc/app"}], "/work")),
    Row("an init container runs first, with the profile's container settings under its own",
        {"spec": {"initContainers": [{"name": "prepare", "image": "busybox:1.35",
                                      "securityContext": {"runAsUser": 1000}}]}},
        lambda p: p["spec"]["initContainers"],
        [{"name": "prepare", "image": "busybox:1.35",
          "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "runAsUser": 1000}}]),
    Row("a native sidecar keeps restartPolicy Always", {"spec": {"initContainers": [SIDECAR]}},
        lambda p: [(c["name"], c["restartPolicy"]) for c in p["spec"]["initContainers"]], [("uploader", "Always")]),
    Row("without a template the pod is the operator's alone", {}, lambda p: sorted(p["spec"]),
        ["automountServiceAccountToken", "containers", "enableServiceLinks", "restartPolicy", "securityContext"]),
]


@pytest.mark.parametrize("row", WINS + MERGED, ids=str)
def test_the_merge(row: Row):
    cfg = config(row.template, **row.jobs)
    pod = pod_of(cfg, process(env=row.env))
    assert row.read(pod) == row.expected
    condition = template_condition(cfg)
    if not row.template:
        assert condition is None
    elif row.ignored:
        assert condition[:2] == (False, "FieldsIgnored")
        assert all(path in condition[2] for path in row.ignored), condition
        assert condition[2].count("spec.jobs.podTemplate") == 1
    else:
        assert condition == (True, "Merged", "spec.jobs.podTemplate is merged into every Job pod")


@pytest.mark.parametrize("row", WINS + MERGED, ids=str)
def test_the_status_lists_what_a_job_ignores(row: Row, monkeypatch):
    """The PodTemplate condition comes from the operator's pod as admission.py sees it: it must list exactly
    what build_job ignores (per process, the process's env aside)."""
    cfg = config(row.template, **row.jobs)
    seen: list[tuple[str, ...]] = []

    def spy(*args, **kwargs):
        merged = merge_pod_template(*args, **kwargs)
        seen.append(merged.ignored)
        return merged

    monkeypatch.setattr(jobs_module, "merge_pod_template", spy)
    pod_of(cfg)
    if row.template:
        assert seen == [merged_pod(cfg)[0].ignored]
        assert set(row.ignored) <= set(seen[0])


def test_main_shapes_every_process_container_of_a_pod():
    cfg = config({"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
                           "containers": [{"name": "main", "env": [SECRET_ENV],
                                           "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]}]}})
    containers = pod_of(cfg, process(per_node=3))["spec"]["containers"]
    assert [c["name"] for c in containers] == ["proc-0", "proc-1", "proc-2"]
    for index, container in enumerate(containers):
        assert env_of(container)["API_TOKEN"] == SECRET_ENV["valueFrom"]
        assert env_of(container)["COLONIES_PROCESS_INDEX"] == str(index)
        assert container["volumeMounts"] == [{"name": "cfg", "mountPath": "/etc/app"}]


def test_the_merge_changes_neither_the_template_nor_other_containers():
    template = {"spec": {"containers": [{"name": "main", "env": [SECRET_ENV]}], "initContainers": [SIDECAR]}}
    before = copy.deepcopy(template)
    cfg = config(template)
    pod_of(cfg, process(per_node=2))
    pod = pod_of(cfg, process(per_node=2))
    assert template == before and cfg.jobs.pod_template == before
    assert [len(c["env"]) for c in pod["spec"]["containers"]] == [7, 7], "each container once, not once per Job"


# -- refused: the resource cannot be read, and the message names the field ---------------------------------------

REFUSED = [
    ("a regular container beside main points to native sidecars",
     {"spec": {"containers": [{"name": "main"}, {"name": "uploader", "image": "busybox:1.35"}]}},
     r"containers\[uploader\]: the only container .*spec\.initContainers with restartPolicy: Always "
     r"\(a native sidecar"),
    ("main naming a field the process owns without a rule", main(ports=[{"containerPort": 80}]),
     r"containers\[main\]\.ports cannot be set: main gives the process containers env"),
    ("a probe on main", main(livenessProbe={"exec": {"command": ["true"]}}), r"containers\[main\]\.livenessProbe"),
    ("nodeName", {"spec": {"nodeName": "n1"}}, "nodeName cannot be set: .* use nodeSelector or affinity"),
    ("ephemeral containers", {"spec": {"ephemeralContainers": []}}, "ephemeralContainers cannot be set"),
    ("a misspelt field is refused, not lost", {"spec": {"tolerration": []}},
     r"spec\.jobs\.podTemplate\.spec\.tolerration is not a pod field a template may set"),
    ("a PodSpec given instead of a PodTemplateSpec", {"containers": [{"name": "main"}]},
     "takes metadata and spec .* not containers; pod fields such as containers go under spec.jobs.podTemplate.spec"),
    ("an init container named as a process container", {"spec": {"initContainers": [{"name": "proc-0",
                                                                                       "image": "busybox:1.35"}]}},
     r"initContainers\[proc-0\]: proc-0 is the name of a process container"),
    ("an init container without an image", {"spec": {"initContainers": [{"name": "prepare"}]}},
     r"initContainers\[prepare\]\.image is required"),
    ("an init container restartPolicy other than Always",
     {"spec": {"initContainers": [{"name": "prepare", "image": "busybox:1.35", "restartPolicy": "OnFailure"}]}},
     r"restartPolicy must be Always \(a native sidecar\) or absent"),
    ("two init containers of one name", {"spec": {"initContainers": [SIDECAR, SIDECAR]}}, "the name is used twice"),
    ("volumes not a list", {"spec": {"volumes": {"name": "v"}}}, r"spec\.volumes must be a list of objects"),
    ("a volume without a name", {"spec": {"volumes": [{"emptyDir": {}}]}}, r"spec\.volumes\[0\] needs a name"),
    ("a label that is not a string", {"metadata": {"labels": {"n": 1}}}, "metadata.labels must map strings"),
    ("a template that is not an object", ["main"], "must be an object: a PodTemplateSpec"),
]


@pytest.mark.parametrize("template, message", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_templates_name_the_field(template, message):
    with pytest.raises(InvalidSpec, match=message):
        config(template)


def test_a_bad_priority_class_name_is_refused():
    with pytest.raises(InvalidSpec, match="spec.jobs.priorityClassName must be the name of a PriorityClass"):
        config(priorityClassName="Not A Name")


# -- the admin's policy over the merged pod --------------------------------------------------------------------

HOST_PATH = {"spec": {"volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}]}}
POLICY = [
    # rule, template, other spec.jobs fields, policy, [(reason, words of its message)]
    ("a hostPath volume under the defaults: the volume list and the baseline profile", HOST_PATH, {}, None,
     [("VolumeTypeNotAllowed", "spec.jobs.podTemplate.spec.volumes[host] is a hostPath volume, which the operator's "
                               "policy does not allow (policy.volumeTypes: configMap"),
      ("PodTemplateNotAllowed", "spec.volumes[host] hostPath mounts a directory of the node")]),
    ("a volume type outside policy.volumeTypes", {"spec": {"volumes": [{"name": "n", "nfs": {"server": "s",
                                                                                               "path": "/"}}]}},
     {}, None, [("VolumeTypeNotAllowed", "ask the cluster admin to add nfs to policy.volumeTypes")]),
    ("the restricted profile's own volume types", {"spec": {"volumes": [{"name": "n", "nfs": {"server": "s",
                                                                                                "path": "/"}}]}},
     {"podSecurityProfile": "restricted"}, {"volumeTypes": ["*"]},
     [("PodTemplateNotAllowed", "spec.volumes[n] nfs is not a volume type of the restricted profile")]),
    ("a privileged sidecar under baseline",
     {"spec": {"initContainers": [{**SIDECAR, "securityContext": {"privileged": True}}]}}, {}, None,
     [("PodTemplateNotAllowed", "spec.initContainers[uploader].securityContext.privileged true")]),
    ("a sidecar escalating privileges under baseline",
     {"spec": {"initContainers": [{**SIDECAR, "securityContext": {"allowPrivilegeEscalation": True}}]}}, {}, None,
     [("PodTemplateNotAllowed", "spec.initContainers[uploader].securityContext.allowPrivilegeEscalation must be "
                                "false")]),
    ("a sidecar on a host port", {"spec": {"initContainers": [{**SIDECAR, "ports": [{"containerPort": 80,
                                                                                      "hostPort": 80}]}]}},
     {}, None, [("PodTemplateNotAllowed", "spec.initContainers[uploader].ports hostPort 80 binds a port of the node")]),
    ("the host's network", {"spec": {"hostNetwork": True}}, {}, None,
     [("PodTemplateNotAllowed", "spec.hostNetwork true shares the node's network namespace")]),
    ("a capability main adds beyond baseline", main(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}), {},
     None, [("PodTemplateNotAllowed", "spec.containers[main].securityContext.capabilities.add SYS_ADMIN")]),
    ("a root sidecar under restricted", {"spec": {"initContainers": [{**SIDECAR, "securityContext": {
        "runAsUser": 0}}]}}, {"podSecurityProfile": "restricted", "podSecurityContext": {"runAsUser": 1000}}, None,
     [("PodTemplateNotAllowed", "spec.initContainers[uploader].securityContext.runAsUser 0 is root")]),
    ("AppArmor off by annotation", {"metadata": {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/main": "unconfined"}}}, {}, None,
     [("PodTemplateNotAllowed", "unconfined turns AppArmor off")]),
    ("a service account the admin did not list", {"spec": {"serviceAccountName": "kube-proxy"}}, {}, None,
     [("ServiceAccountNotAllowed", "spec.jobs.podTemplate.spec.serviceAccountName 'kube-proxy' is not allowed: "
                                   "Job pods run as the namespace's default ServiceAccount unless the cluster admin "
                                   "adds the name to policy.serviceAccountNames")]),
    ("a sidecar image outside the admin's allowed images", {"spec": {"initContainers": [SIDECAR]}}, {},
     {"ceiling": {"allowedImages": ["registry.example.com/**"]}},
     [("ImageNotAllowed", "initContainers[uploader].image docker.io/library/busybox:1.35 is not allowed: the cluster "
                          "admin allows only registry.example.com/** (policy.ceiling.allowedImages)")]),
    ("spec.jobs' own context is reported once, as spec.jobs", main(env=[SECRET_ENV]),
     {"securityContext": {"privileged": True}}, None,
     [("SecurityContextNotAllowed", "spec.jobs under the baseline pod security profile")]),
]


@pytest.mark.parametrize("template, jobs, policy, expected", [r[1:] for r in POLICY], ids=[r[0] for r in POLICY])
def test_the_policy_applies_to_the_merged_pod(template, jobs, policy, expected):
    found = check_resource(config(template, policy, **jobs))
    assert [v.reason for v in found] == [reason for reason, _ in expected]
    for violation, (_, words) in zip(found, expected):
        assert words in violation.message
    if any(reason == "PodTemplateNotAllowed" for reason, _ in expected):
        message = next(v.message for v in found if v.reason == "PodTemplateNotAllowed")
        assert "policy.podSecurity.allowedProfiles" in message and "spec.jobs.podTemplate" in message


def test_a_template_within_the_policy_is_allowed():
    template = {"metadata": {"labels": {"team": "science"}},
                "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "ds"}},
                                     {"name": "cfg", "configMap": {"name": "c"}},
                                     {"name": "token", "secret": {"secretName": "t"}},
                                     {"name": "scratch", "emptyDir": {}}],
                         "containers": [{"name": "main", "env": [SECRET_ENV],
                                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                         "initContainers": [SIDECAR], "priorityClassName": "batch-low",
                         "tolerations": [{"key": "gpu", "operator": "Exists"}]}}
    assert check_resource(config(template)) == []
    assert check_resource(config(template, podSecurityProfile="restricted", podSecurityContext={
        "runAsUser": 1000})) == []


def test_the_admin_can_allow_host_paths_and_privileged_sidecars():
    template = {"spec": {**HOST_PATH["spec"], "initContainers": [{**SIDECAR, "securityContext": {"privileged": True}}],
                         "serviceAccountName": "uploader"}}
    policy = {"volumeTypes": ["*"], "serviceAccountNames": ["uploader"],
              "podSecurity": {"allowedProfiles": ["baseline", "restricted", "privileged"]}}
    assert check_resource(config(template, policy, podSecurityProfile="privileged")) == []
    assert [v.reason for v in check_resource(config(template, policy))] == ["PodTemplateNotAllowed"]
    assert check_resource(config(HOST_PATH, {"volumeTypes": ["hostPath"], "podSecurity": {
        "allowedProfiles": ["baseline", "privileged"]}}, podSecurityProfile="privileged")) == []


@pytest.mark.parametrize("data, message", [
    ({"volumeTypes": "hostPath"}, "policy.volumeTypes must be a list"),
    ({"volumeTypes": ["host-path"]}, "'host-path' is not a volume type as a pod spec names it"),
])
def test_a_bad_volume_type_list_is_refused(data, message):
    with pytest.raises(PolicyError, match=message):
        policy_from_dict(data)


def test_the_default_volume_types_are_the_restricted_profiles():
    assert DEFAULT_POLICY.volume_types == ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                           "persistentVolumeClaim", "projected", "secret")


# -- nothing secret in the debug lines -----------------------------------------------------------------------------

def test_the_debug_log_names_env_and_volumes_never_values():
    template = {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
                         "containers": [{"name": "main", "env": [SECRET_ENV, {"name": "PLAIN", "value": "v4lue-x"}],
                                         "envFrom": [{"secretRef": {"name": "app-env"}, "prefix": "APP_"}]}],
                         "initContainers": [SIDECAR]}}
    cfg = config(template, priorityClassName="batch-low")
    p = Process.from_dict({"processid": PID, "spec": {
        "funcname": "execute", "kwargs": {"docker-image": "busybox:1.35", "cmd": "echo hi", "debug": True},
        "conditions": {"nodes": 1, "processespernode": 1}, "env": {"PROCESS_SECRET": "pr0cess-value"}}})
    plan = plan_job(p, cfg)
    text = debug_log(plan, build_job(p, plan, cfg, EXECUTOR_ID))
    assert "API_TOKEN (from Secret api-token, key token)" in text
    assert "PLAIN" in text and "PROCESS_SECRET" in text and "all of Secret app-env, prefix APP_" in text
    assert "v4lue-x" not in text and "pr0cess-value" not in text
    assert "volumes: cfg (configMap)" in text and "init containers: uploader (busybox:1.35, sidecar)" in text
    assert "priorityClassName: batch-low" in text
