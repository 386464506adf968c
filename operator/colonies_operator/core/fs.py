"""ColonyFS for a process's Job (pure: no I/O): its `fs` section checked, and what its pod gets for it.

A process spec's `fs` asks its executor to bring ColonyFS labels (`dirs`) and snapshots into the container before
the command runs, and to sync the dirs back after, as the official executors do (colonyos/executors,
common/pkg/sync/sync_handler.go):

- Paths: a dir's or a snapshot's `dir` is a path under /cfs, where the official docker executor mounts its fs
  dir whatever `mount` says ("/cfs" + dir, as plain text; `{processid}` replaced at its first occurrence in `dir`
  and `label`). The volume is also mounted at `mount` when that is another absolute path (where the old kube
  executor mounted its volume), so both conventions find the files.
- Before the command, only when `mount` is set: each snapshot with a `snapshotid` is downloaded into its dir
  (one without is skipped with a log line), then each dir is synced with its label, `onstart.keeplocal` deciding
  conflicts.
- After the command, whatever its exit code: when `mount` is set, each snapshot without `keepsnapshot` is
  removed from Colonies (its files stay in S3); then every dir is synced with its label, `onclose.keeplocal`
  deciding conflicts. `keepfiles` matters only on a persistent volume (spec.fs.persistentVolumeClaimName): the
  files are removed from it unless it is set. An emptyDir goes with the pod.

The pod: a volume for the files (an emptyDir sized by conditions.storage, or the resource's claim); the step
before, the init container `colonyfs-in`; the step after, the native sidecar `colonyfs-out`, which waits until
every container of the process has recorded its command's exit code in a small volume of their own, then syncs.
The kubelet stops it when they have ended, within terminationGracePeriodSeconds (spec.fs.uploadTimeoutSeconds).
A pod stopped from outside (walltime, cancellation, eviction) syncs nothing up. Both steps run the `colonies`
CLI of spec.fs.image with the executor's key (from its Secret) and the S3 settings (from spec.fs.s3SecretRef):
nothing of either reaches the process's own containers. A step that fails writes why to its termination message,
which outcome.py turns into the process's error.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shlex
from typing import Any

from .config import ExecutorConfig, SecretKeyRef
from .names import OWN_KEY_FIELD, own_key_secret

FS_ROOT = "/cfs"  # the official docker executor's mount
STATUS_DIR = "/run/colonies-operator"  # where the process's containers record their exit codes
CA_DIR = "/etc/colonies-operator/ca"
STEP_IN = "colonyfs-in"
STEP_OUT = "colonyfs-out"
STEPS = (STEP_IN, STEP_OUT)
DATA_VOLUME = "colonyfs"
STATUS_VOLUME = "colonyfs-status"
CA_VOLUME = "colonyfs-ca"
MAX_ENTRIES = 64
S3_VARIABLES = ("AWS_S3_ENDPOINT", "AWS_S3_ACCESSKEY", "AWS_S3_SECRETKEY", "AWS_S3_BUCKET", "AWS_S3_REGION",
                "AWS_S3_TLS", "AWS_S3_SKIPVERIFY")
S3_OPTIONAL = {"AWS_S3_REGION", "AWS_S3_TLS", "AWS_S3_SKIPVERIFY"}
# A second mount of the files there would hide what the image needs to run.
_RESERVED_MOUNTS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/usr", "/etc", "/dev", "/proc", "/sys", "/run",
                    "/var/run", STATUS_DIR)


class InvalidFs(ValueError):
    """The process's fs section cannot be honoured; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class SnapshotMount:
    snapshot_id: str  # empty: skipped, as the official executors do
    label: str  # not used to download (the snapshot knows its label); named in the log
    path: str  # in the containers
    keep_files: bool
    keep_snapshot: bool


@dataclasses.dataclass(frozen=True)
class DirMount:
    label: str
    path: str
    keep_files: bool
    keep_local_on_start: bool
    keep_local_on_close: bool


@dataclasses.dataclass(frozen=True)
class FsPlan:
    """A process's fs section, checked, with `{processid}` replaced."""

    mount: str
    snapshots: tuple[SnapshotMount, ...] = ()
    dirs: tuple[DirMount, ...] = ()

    @property
    def extra_mount(self) -> str:
        """`mount`, when the files are also to be found there."""
        return self.mount if self.mount and self.mount != FS_ROOT else ""

    @property
    def has_step_in(self) -> bool:
        return bool(self.mount) and bool(self.snapshots or self.dirs)

    @property
    def has_step_out(self) -> bool:
        return bool(self.dirs) or (bool(self.mount) and any(s.snapshot_id and not s.keep_snapshot
                                                                 for s in self.snapshots))

    @property
    def steps(self) -> list[str]:
        """The names of the pod's ColonyFS steps (init containers), in their order."""
        return [name for name, present in ((STEP_IN, self.has_step_in), (STEP_OUT, self.has_step_out)) if present]


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidFs(f"{what} must be a string, not {value!r}")
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise InvalidFs(f"{what} {value[:100]!r} contains a control character")
    return value


def _flag(value: Any) -> bool:
    return value is True


def _path(dir_value: Any, what: str, process_id: str) -> str:
    """"/cfs" + dir, as the official executors make it; dir must be empty or absolute, without "..": it is a
    path under /cfs."""
    text = _text(dir_value, what)
    if text and not text.startswith("/"):
        raise InvalidFs(f"{what} {text!r} must start with '/': it is a path under {FS_ROOT} (e.g. \"/data\")")
    if ".." in text.split("/"):
        raise InvalidFs(f"{what} {text!r} must stay under {FS_ROOT}: no '..'")
    return (FS_ROOT + text).replace("{processid}", process_id, 1)


def _mount(value: Any) -> str:
    mount = _text(value, "fs.mount")
    if not mount or mount == FS_ROOT:
        return mount
    normal = posixpath.normpath(mount)
    if not mount.startswith("/") or normal != mount or mount.startswith("//"):
        raise InvalidFs(f"fs.mount {mount!r} must be an absolute path without '..', '//' or a trailing '/', "
                        f"e.g. {FS_ROOT}")
    if mount.startswith(FS_ROOT + "/"):
        raise InvalidFs(f"fs.mount {mount!r} is inside {FS_ROOT}, where the files are already; use {FS_ROOT}")
    for reserved in _RESERVED_MOUNTS:
        if reserved == mount or reserved.startswith(mount.rstrip("/") + "/") or (
                reserved in ("/dev", "/proc", "/sys") and mount.startswith(reserved + "/")):
            raise InvalidFs(f"fs.mount {mount!r} would hide what the image needs to run; use {FS_ROOT} (where the "
                            "official docker executor mounts the files) or a directory of your own, e.g. /data")
    return mount


def _entries(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise InvalidFs(f"{what} must be a list of objects")
    if len(value) > MAX_ENTRIES:
        raise InvalidFs(f"{what} has {len(value)} entries, more than {MAX_ENTRIES}; sync a parent label instead")
    return value


def plan_fs(fs: Any, process_id: str) -> FsPlan:
    """The process's fs section, checked. Raises InvalidFs."""
    if not isinstance(fs, dict):
        raise InvalidFs("fs must be an object: {mount, snapshots, dirs}")
    mount = _mount(fs.get("mount"))
    snapshots = []
    for i, entry in enumerate(_entries(fs.get("snapshots"), "fs.snapshots")):
        what = f"fs.snapshots[{i}]"
        snapshots.append(SnapshotMount(
            snapshot_id=_text(entry.get("snapshotid"), f"{what}.snapshotid"),
            label=_text(entry.get("label"), f"{what}.label").replace("{processid}", process_id, 1),
            path=_path(entry.get("dir"), f"{what}.dir", process_id),
            keep_files=_flag(entry.get("keepfiles")), keep_snapshot=_flag(entry.get("keepsnapshot"))))
    dirs = []
    for i, entry in enumerate(_entries(fs.get("dirs"), "fs.dirs")):
        what = f"fs.dirs[{i}]"
        label = _text(entry.get("label"), f"{what}.label").replace("{processid}", process_id, 1)
        if not label.strip("/"):
            raise InvalidFs(f"{what}.label is required: the ColonyFS label to sync {what}.dir with, e.g. \"/data\"")
        conflicts = entry.get("onconflicts") if isinstance(entry.get("onconflicts"), dict) else {}
        on_start = conflicts.get("onstart") if isinstance(conflicts.get("onstart"), dict) else {}
        on_close = conflicts.get("onclose") if isinstance(conflicts.get("onclose"), dict) else {}
        dirs.append(DirMount(label=label, path=_path(entry.get("dir"), f"{what}.dir", process_id),
                             keep_files=_flag(entry.get("keepfiles")),
                             keep_local_on_start=_flag(on_start.get("keeplocal")),
                             keep_local_on_close=_flag(on_close.get("keeplocal"))))
    return FsPlan(mount=mount, snapshots=tuple(snapshots), dirs=tuple(dirs))


# -- the scripts of the steps -------------------------------------------------------------------------------------

# Shared by both steps. `cli WHAT ARGS...` runs the colonies CLI, its lines into the log; when it fails, WHAT and the
# CLI's own error message become the step's termination message (the process's error) and the step ends: `finish`.
_PRELUDE = r"""set -u
log() { printf '%s\n' "$*"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
hint() {
  case $1 in
    *'The specified key does not exist'*)
      printf ' (a file of it has no bytes in the S3 bucket: Colonies v1.9.12 stores none for an empty file and'
      printf ' cannot download one from a snapshot, and files synced to another bucket are not in this one)' ;;
    *'connection refused'*|*'no such host'*|*'i/o timeout'*|*'no route to host'*)
      printf ' (a server cannot be reached: check the S3 endpoint in the Secret of spec.fs.s3SecretRef and'
      printf ' spec.server)' ;;
    *'signature we calculated'*|*'Access Denied'*|*'InvalidAccessKeyId'*)
      printf ' (S3 refused the credentials of the Secret of spec.fs.s3SecretRef)' ;;
    *'no space left on device'*)
      printf ' (the volume is full: raise conditions.storage, or the size of the claim of'
      printf ' spec.fs.persistentVolumeClaimName)' ;;
  esac
}
cli() {
  what=$1; shift
  if out=$(colonies "$@" 2>&1); then
    [ -z "$out" ] || printf '%s\n' "$out"
    return 0
  fi
  printf '%s\n' "$out"
  reason=$(printf '%s\n' "$out" | sed -n -e 's/.*level=error msg="\(.*\)" BuildTime=.*/\1/p' -e t \
    -e 's/.*level=error msg=\([^ ]*\) BuildTime=.*/\1/p' | tail -n 1 | sed 's/\\"/"/g')
  [ -n "$reason" ] || reason=$(printf '%s\n' "$out" | tail -n 1)
  message="$what failed: $reason$(hint "$reason")"
  log "$message"
  printf '%s' "$message" > /dev/termination-log
  finish 1
}
files() { find "$1" -type f ! -name .cfs 2>/dev/null | wc -l; }
"""

_STEP_IN = r"""finish() { exit "$1"; }
started=$(now)
"""

# The process's containers write their exit code (or "stopped", when the pod was being stopped) to STATUS_DIR/<name>.
_STEP_OUT = r"""stopped=
trap 'stopped=1' TERM INT
# The kubelet stops this step once the process's containers have ended: until then it waits, then exits with rc.
finish() { while [ -z "$stopped" ]; do sleep 0.2; done; exit "$1"; }
while :; do
  ended=1
  for c in $containers; do [ -s "$status/$c" ] || ended=; done
  [ -n "$ended" ] && break
  if [ -n "$stopped" ]; then
    log "the process's containers ended without recording their command's end" \
      "(stopped, killed or never started): nothing synced up"
    exit 0
  fi
  sleep 0.2
done
codes=
for c in $containers; do codes="$codes $c=$(cat "$status/$c")"; done
case $codes in
  *=stopped*)
    log "the pod was stopped before the command ended (walltime, cancellation or eviction): nothing synced up"
    finish 0 ;;
esac
log "the command ended (exit code$codes): syncing up"
started=$(now)
"""

# The wrapper of each of the process's containers: the command as before (a shell of its own, with the same $0 and
# arguments), its exit code recorded for colonyfs-out, SIGTERM passed on.
_WRAPPER = """colonyfs_stopped= colonyfs_child=
trap 'colonyfs_stopped=1; [ -z "$colonyfs_child" ] || kill -TERM "$colonyfs_child" 2>/dev/null' TERM INT HUP
sh -c "$0" sh "$@" &
colonyfs_child=$!
[ -z "$colonyfs_stopped" ] || kill -TERM "$colonyfs_child" 2>/dev/null
while :; do
  wait "$colonyfs_child"; colonyfs_code=$?
  kill -0 "$colonyfs_child" 2>/dev/null || break
done
if [ -n "$colonyfs_stopped" ]; then echo stopped; else echo "$colonyfs_code"; fi > {status}/.{name} &&
  mv {status}/.{name} {status}/{name}
exit "$colonyfs_code"
"""


def _q(text: str) -> str:
    return shlex.quote(text)


def _keep(value: bool) -> str:
    return "true" if value else "false"


def _log(*pieces: str) -> str:
    """A `log` line of literal text and, marked by a leading "$", shell expressions (double-quoted; whatever
    they name is quoted in them)."""
    return "log " + "".join(f'"{p}"' if p.startswith("$") else _q(p) for p in pieces)


def script_in(fs: FsPlan) -> str:
    """colonyfs-in: the snapshots downloaded, the dirs synced down, all writable by the process's user."""
    lines = [_PRELUDE, _STEP_IN]
    for i, snap in enumerate(fs.snapshots):
        if not snap.snapshot_id:
            label = f" (label {snap.label})" if snap.label else ""
            lines.append(_log(f"fs.snapshots[{i}]{label} has no snapshotid: nothing downloaded to {snap.path} "
                              "(colonies function submit --snapshot creates the snapshot)"))
            continue
        what = f"downloading snapshot {snap.snapshot_id} to {snap.path}"
        lines.append(_log(what))
        lines.append(f"cli {_q(what)} fs snapshot download -i {_q(snap.snapshot_id)} -d {_q(snap.path)}")
        lines.append(_log(f"{snap.path}: ", f"$(files {_q(snap.path)})", " file(s)"))
    for d in fs.dirs:
        path = _q(d.path)
        lines.append(f"mkdir -p {path}")
        lines.append(f"cli {_q(f'syncing label {d.label} down to {d.path}')} fs sync -l {_q(d.label)} -d {path} "
                     f"--keeplocal={_keep(d.keep_local_on_start)} --yes --quite")
        lines.append(f"n=$(files {path})")
        empty = _log(f"label {d.label} has no files: {d.path} starts empty")
        counted = _log(f"{d.path}: ", "$n", " file(s), ", f"$(du -sh {path} | cut -f1)", f" from label {d.label}")
        lines.append(f"if [ \"$n\" -eq 0 ]; then {empty}; else {counted}; fi")
    paths = sorted({s.path for s in fs.snapshots if s.snapshot_id} | {d.path for d in fs.dirs})
    if paths:  # the process may run as another user than this step
        lines.append(f"chmod -R a+rwX {' '.join(_q(p) for p in paths)} 2>/dev/null || true")
    lines.append(_log("ready in ", '$(since "$started")'))
    return "\n".join(lines) + "\n"


def script_out(fs: FsPlan, containers: list[str], persistent: bool) -> str:
    """colonyfs-out: once the command ended, the snapshots removed and the dirs synced up (and, on a persistent
    volume, the files removed unless kept)."""
    lines = [_PRELUDE, f"status={_q(STATUS_DIR)}", f"containers={_q(' '.join(containers))}", _STEP_OUT]
    if fs.mount:
        for snap in fs.snapshots:
            if not snap.snapshot_id or snap.keep_snapshot:
                continue
            # As the official executors: a snapshot that cannot be removed is logged, not a failure.
            lines.append(f"if out=$(colonies fs snapshot remove -i {_q(snap.snapshot_id)} 2>&1); then "
                         f"{_log(f'snapshot {snap.snapshot_id} removed')}; else printf '%s\\n' \"$out\"; "
                         f"{_log(f'snapshot {snap.snapshot_id} could not be removed')}; fi")
            if persistent and not snap.keep_files:
                lines.append(f"rm -rf {_q(snap.path)}")
    for d in fs.dirs:
        lines.append(f"mkdir -p {_q(d.path)}")
        lines.append(f"cli {_q(f'syncing {d.path} up to label {d.label}')} fs sync -l {_q(d.label)} -d {_q(d.path)} "
                     f"--keeplocal={_keep(d.keep_local_on_close)} --yes --quite")
        lines.append(_log(f"label {d.label}: ", f"$(files {_q(d.path)})", f" file(s) from {d.path}"))
    if fs.mount and persistent:
        lines.extend(f"rm -rf {_q(d.path)}" for d in fs.dirs if not d.keep_files)
    lines.append(_log("synced up in ", '$(since "$started")'))
    lines.append("finish 0")
    return "\n".join(lines) + "\n"


def wrap_command(command: list[str], container: str, status_dir: str = STATUS_DIR) -> list[str]:
    """The process's `sh -c SCRIPT sh ARGS...`, run so that its exit code is recorded for colonyfs-out."""
    assert command[:2] == ["sh", "-c"] and command[3] == "sh", command
    return ["sh", "-c", _WRAPPER.format(status=status_dir, name=container), command[2], *command[4:]]


# -- the pod ----------------------------------------------------------------------------------------------------------

def _executor_key(config: ExecutorConfig) -> SecretKeyRef:
    return config.executor_key or SecretKeyRef(own_key_secret(config.resource_name), OWN_KEY_FIELD)


def step_env(config: ExecutorConfig) -> list[dict[str, Any]]:
    """What the colonies CLI of a step reads: the server, the colony, the executor's key and the S3 settings."""
    assert config.fs is not None
    server, key = config.server, _executor_key(config)
    env: list[dict[str, Any]] = [
        {"name": "COLONIES_SERVER_HOST", "value": server.host},
        {"name": "COLONIES_SERVER_PORT", "value": str(server.port)},
        {"name": "COLONIES_TLS", "value": _keep(server.tls)},
        {"name": "COLONIES_COLONY_NAME", "value": config.colony_name},
        {"name": "COLONIES_PRVKEY", "valueFrom": {"secretKeyRef": {"name": key.name, "key": key.key}}},
    ]
    for name in S3_VARIABLES:
        ref = {"name": config.fs.s3_secret, "key": name}
        if name in S3_OPTIONAL:
            ref["optional"] = True
        env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    if server.tls and server.ca_bundle:
        env.append({"name": "SSL_CERT_DIR", "value": CA_DIR})  # trusted beside the image's own bundle
    return env


def add_to_pod(pod: dict[str, Any], fs: FsPlan, ephemeral_storage: str | None, config: ExecutorConfig) -> None:
    """The volume, the steps and the mounts of a process with fs, added to its pod spec (the files' emptyDir
    sized as the process's ephemeral storage)."""
    settings = config.fs
    assert settings is not None
    if settings.persistent_volume_claim:
        data: dict[str, Any] = {"name": DATA_VOLUME, "persistentVolumeClaim": {
            "claimName": settings.persistent_volume_claim}}
    else:
        data = {"name": DATA_VOLUME, "emptyDir": {"sizeLimit": ephemeral_storage} if ephemeral_storage else {}}
    volumes = [data]
    data_mounts = [{"name": DATA_VOLUME, "mountPath": FS_ROOT}]
    if fs.extra_mount:
        data_mounts.append({"name": DATA_VOLUME, "mountPath": fs.extra_mount})
    if fs.has_step_out:
        volumes.append({"name": STATUS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
    for container in pod["containers"]:
        mounts = list(data_mounts)
        if fs.has_step_out:
            mounts.append({"name": STATUS_VOLUME, "mountPath": STATUS_DIR})
            container["command"] = wrap_command(container["command"], container["name"])
        container["volumeMounts"] = container.get("volumeMounts", []) + mounts
    step_mounts = [{"name": DATA_VOLUME, "mountPath": FS_ROOT}]
    ca = config.server.ca_bundle if config.server.tls else None
    if ca:
        source = ({"secret": {"secretName": ca.name, "items": [{"key": ca.key, "path": "ca.crt"}]}}
                  if ca.kind == "Secret" else {"configMap": {"name": ca.name, "items": [{"key": ca.key,
                                                                                          "path": "ca.crt"}]}})
        volumes.append({"name": CA_VOLUME, **source})
        step_mounts.append({"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True})
    security = pod["containers"][0].get("securityContext")

    def step(name: str, script: str, extra_mounts: list[dict[str, Any]]) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": name, "image": settings.image, "imagePullPolicy": config.jobs.image_pull_policy,
            "command": ["sh", "-c", script], "env": step_env(config), "volumeMounts": step_mounts + extra_mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        if settings.resources:
            container["resources"] = {k: dict(v) for k, v in settings.resources.items()}
        if security:
            container["securityContext"] = dict(security)
        return container

    steps = []
    if fs.has_step_in:
        steps.append(step(STEP_IN, script_in(fs), []))
    if fs.has_step_out:
        names = [c["name"] for c in pod["containers"]]
        sidecar = step(STEP_OUT, script_out(fs, names, bool(settings.persistent_volume_claim)),
                       [{"name": STATUS_VOLUME, "mountPath": STATUS_DIR, "readOnly": True}])
        sidecar["restartPolicy"] = "Always"  # a native sidecar: it runs beside the process's containers
        steps.append(sidecar)
        pod["terminationGracePeriodSeconds"] = settings.upload_timeout_seconds
    pod["volumes"] = pod.get("volumes", []) + volumes
    if steps:
        pod["initContainers"] = pod.get("initContainers", []) + steps
