"""The operator's view of its active Jobs and pods, fed by list+watch (an informer, as client-go has it).

One reflector per (namespace, kind) is shared by every ColoniesExecutor whose Jobs run there. It lists once,
then watches from the list's resourceVersion, and tells its subscribers of every change. Only the working
set is held: Jobs labelled active (the operator relabels a Job when its process is closed, and the watch
then drops it) and pods that have not finished (a field selector). So the cost does not grow with the
finished Jobs kept for `kubectl logs`.

`synced` is True only while the view is complete: after a successful list, until a watch breaks. A
decision that something is gone is taken on a synced view only (see decide.py).

Kueue's Workloads are watched only where an executor queues its Jobs (spec.jobs.queueName), and are optional:
without Kueue, or without the right to read them, the view of Jobs and pods stays synced and a queued process only
lacks Kueue's reason for waiting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..core.names import (
    JOB_NAME_LABELS,
    JOB_STATE_ACTIVE,
    KUEUE_JOB_UID_LABEL,
    LABEL_EXECUTOR_ID,
    LABEL_JOB_STATE,
    owned_selector,
)
from .api import KubeApi, KubeError

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any] | None, dict[str, Any]], None]  # (kind, object or None if gone, last)
RETRY_MAX_SECONDS = 30.0

KINDS = {
    # kind: (path template, label selector, field selector)
    "jobs": ("/apis/batch/v1/namespaces/{ns}/jobs", f"{owned_selector()},{LABEL_JOB_STATE}={JOB_STATE_ACTIVE}", ""),
    "pods": ("/api/v1/namespaces/{ns}/pods", owned_selector(), "status.phase!=Succeeded,status.phase!=Failed"),
}


# Cluster-scoped kinds, watched once for the whole operator (not per namespace).
CLUSTER_KINDS = {
    "nodes": ("/api/v1/nodes", "", ""),
}

# Kueue's Workloads (v1beta2; Kueue before 0.15 serves v1beta1 only), in the namespaces of queued Jobs.
OPTIONAL_KINDS = {
    "workloads": ("/apis/kueue.x-k8s.io/v1beta2/namespaces/{ns}/workloads", KUEUE_JOB_UID_LABEL, ""),
}
OLDER_PATHS = {"workloads": "/apis/kueue.x-k8s.io/v1beta1/namespaces/{ns}/workloads"}


# The spec fields kept per kind: a Node's taints and cordon decide whether this executor's Jobs can land there
# (core/capabilities.py); a Job's suspension is its queue, its deadline the operator's walltime (decide.py).
SPEC_KEPT = {"nodes": ("taints", "unschedulable"), "jobs": ("suspend", "activeDeadlineSeconds")}


def slim(obj: dict[str, Any], kind: str = "") -> dict[str, Any]:
    """What the operator reads of an object: its metadata (without managedFields, often the largest part), its
    status, and of its spec only what SPEC_KEPT names for its kind. A Job's spec (the whole pod template,
    command and env) is not kept: a view of thousands of objects stays small."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    slimmed = {"metadata": metadata, "status": obj.get("status") or {}}
    spec = obj.get("spec") or {}
    kept = {field: spec[field] for field in SPEC_KEPT.get(kind, ()) if field in spec}
    if kept:
        slimmed["spec"] = kept
    return slimmed


def job_of_pod(pod: dict[str, Any]) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    for key in JOB_NAME_LABELS:
        if labels.get(key):
            return labels[key]
    return ""


def job_of_workload(workload: dict[str, Any]) -> str:
    """The name of the Job a Kueue Workload stands for (its owner), or ""."""
    for owner in (workload.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "Job":
            return owner.get("name") or ""
    return ""


class Reflector:
    """Keeps `objects` (by name) equal to the API server's, for one kind in one namespace."""

    def __init__(self, api: KubeApi, namespace: str, kind: str, listener: Listener) -> None:
        self.api, self.namespace, self.kind = api, namespace, kind
        path, self.label_selector, self.field_selector = (KINDS.get(kind) or CLUSTER_KINDS.get(kind)
                                                           or OPTIONAL_KINDS[kind])
        self.path = path.format(ns=namespace)
        self._older_path = OLDER_PATHS.get(kind, "").format(ns=namespace)
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = False
        self.synced_event = asyncio.Event()
        self.problem: KubeError | None = None  # why it is not synced, for the resource's status
        self._logged_problem: str | None = None
        self._on_synced: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
        self._listener = listener
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"reflector-{self.namespace}-{self.kind}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                version = await self._relist()
                while True:  # each watch ends after a few minutes; resume from the last version seen
                    async for kind, obj in self.api.watch(self.path, version, label_selector=self.label_selector,
                                                          field_selector=self.field_selector, resource=self.kind):
                        if kind == "OPENED":  # the list and a live watch: the view is complete
                            self._synced()
                            continue
                        version = obj.get("metadata", {}).get("resourceVersion") or version
                        if kind != "BOOKMARK":
                            self._apply(kind, obj)
                    delay = 0.5  # a watch that ran its course: the next failure starts the backoff anew
            except asyncio.CancelledError:
                raise
            except KubeError as err:
                if err.status == 404 and self._older_path:  # an API version this server does not serve
                    self.path, self._older_path = self._older_path, ""
                    continue
                if err.status != 410:  # 410: history compacted; list again at once
                    self._unsynced(err)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
            except Exception as err:  # never let the view die silently
                log.exception("watch of %s in %s failed; listing again", self.kind, self.namespace)
                self._unsynced(KubeError(None, type(err).__name__, str(err)))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _synced(self) -> None:
        if self._logged_problem is not None:
            log.info("view of %s%s is synced again", self.kind,
                     f" in namespace {self.namespace}" if self.namespace else "")
        self.synced, self.problem, self._logged_problem = True, None, None
        self.synced_event.set()
        pending, self._on_synced = self._on_synced, []
        for obj, last in pending:
            self._listener(self.kind, obj, last)

    def _unsynced(self, err: KubeError) -> None:
        if str(err) != self._logged_problem:  # once per distinct problem, not per retry
            log.warning("view of %s%s is not synced: %s", self.kind,
                        f" in namespace {self.namespace}" if self.namespace else "", err)
            self._logged_problem = str(err)
        self.synced = False
        self.synced_event.clear()
        self.problem = err

    async def _relist(self) -> str:
        items, version = await self.api.list(self.path, label_selector=self.label_selector,
                                             field_selector=self.field_selector, resource=self.kind)
        fresh = {item["metadata"]["name"]: slim(item, self.kind) for item in items}
        gone = [name for name in self.objects if name not in fresh]
        old = self.objects
        self.objects = fresh
        # Told once the watch is open (the view complete): deletions missed while the watch was down, and
        # every object, so each attempt is looked at on a synced view.
        self._on_synced = [(None, old[name]) for name in gone] + [(obj, obj) for obj in fresh.values()]
        return version

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        obj = slim(obj, self.kind)
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.objects.pop(name, None)
            self._listener(self.kind, None, obj)
        else:
            self.objects[name] = obj
            self._listener(self.kind, obj, obj)


class NodeView:
    """The cluster's Nodes, for the executors' capabilities: one reflector, started when the first executor
    subscribes. Subscribers are called (without arguments) after every change; `nodes()` is None until the view
    is synced (e.g. while the operator may not read Nodes)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self._reflector: Reflector | None = None
        self._subscribers: dict[str, Callable[[], None]] = {}

    def subscribe(self, key: str, callback: Callable[[], None]) -> None:
        self._subscribers[key] = callback
        if self._reflector is None:
            self._reflector = Reflector(self.api, "", "nodes", lambda kind, obj, last: self._changed())
            self._reflector.start()
        elif self._reflector.synced:
            callback()

    def unsubscribe(self, key: str) -> None:
        self._subscribers.pop(key, None)

    def nodes(self) -> list[dict[str, Any]] | None:
        reflector = self._reflector
        return list(reflector.objects.values()) if reflector is not None and reflector.synced else None

    def _changed(self) -> None:
        for callback in list(self._subscribers.values()):
            callback()

    async def close(self) -> None:
        if self._reflector is not None:
            await self._reflector.stop()
            self._reflector = None


class ClusterView:
    """The reflectors of every namespace some executor needs, reference-counted, and the routing of their
    events to the executor that owns each Job (by the executor-id label). `nodes` is the view of the Nodes."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.nodes = NodeView(api)
        self._reflectors: dict[tuple[str, str], Reflector] = {}
        self._users: dict[str, int] = {}
        self._subscribers: dict[str, Callable[[str, str, dict[str, Any] | None, dict[str, Any]], None]] = {}
        self._pods_by_job: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._workload_users: dict[str, int] = {}
        self._workloads_by_job: dict[tuple[str, str], dict[str, Any]] = {}

    def subscribe(self, executor_label: str, callback: Callable[[str, str, dict[str, Any] | None,
                                                                   dict[str, Any]], None]) -> None:
        """`callback(namespace, kind, obj or None, last)` for events of Jobs and pods with this executor label."""
        self._subscribers[executor_label] = callback

    def unsubscribe(self, executor_label: str) -> None:
        self._subscribers.pop(executor_label, None)

    def use(self, namespace: str) -> None:
        self._users[namespace] = self._users.get(namespace, 0) + 1
        if self._users[namespace] == 1:
            for kind in KINDS:
                reflector = Reflector(self.api, namespace, kind,
                                      lambda k, obj, last, ns=namespace: self._route(ns, k, obj, last))
                self._reflectors[(namespace, kind)] = reflector
                reflector.start()

    async def release(self, namespace: str) -> None:
        self._users[namespace] = self._users.get(namespace, 1) - 1
        if self._users[namespace] > 0:
            return
        # Everything of the namespace is taken out before the first await: a `use` meanwhile starts afresh, and
        # nothing of it is stopped or cleared here.
        del self._users[namespace]
        stopping = [self._reflectors.pop((namespace, kind), None) for kind in KINDS]
        for key in [k for k in self._pods_by_job if k[0] == namespace]:
            del self._pods_by_job[key]
        await asyncio.gather(*(reflector.stop() for reflector in stopping if reflector))

    def use_workloads(self, namespace: str) -> None:
        """Watches Kueue's Workloads in `namespace` too (reference-counted)."""
        self._workload_users[namespace] = self._workload_users.get(namespace, 0) + 1
        if self._workload_users[namespace] == 1:
            reflector = Reflector(self.api, namespace, "workloads",
                                  lambda k, obj, last, ns=namespace: self._route(ns, k, obj, last))
            self._reflectors[(namespace, "workloads")] = reflector
            reflector.start()

    async def release_workloads(self, namespace: str) -> None:
        self._workload_users[namespace] = self._workload_users.get(namespace, 1) - 1
        if self._workload_users[namespace] > 0:
            return
        del self._workload_users[namespace]
        reflector = self._reflectors.pop((namespace, "workloads"), None)
        if reflector:
            await reflector.stop()
        for key in [k for k in self._workloads_by_job if k[0] == namespace]:
            del self._workloads_by_job[key]

    def workload(self, namespace: str, job: str) -> dict[str, Any] | None:
        """The Kueue Workload of this Job, as last seen; None when none is known."""
        return self._workloads_by_job.get((namespace, job))

    def workloads_problem(self, namespace: str) -> str | None:
        """Why the Workloads of `namespace` cannot be read now (None: they can, or are not watched)."""
        reflector = self._reflectors.get((namespace, "workloads"))
        if reflector is None or reflector.synced:
            return None
        return str(reflector.problem) if reflector.problem else "not listed yet"

    async def close(self) -> None:
        for namespace in list(self._users):
            self._users[namespace] = 1
            await self.release(namespace)
        for namespace in list(self._workload_users):
            self._workload_users[namespace] = 1
            await self.release_workloads(namespace)
        await self.nodes.close()

    def synced(self, namespace: str) -> bool:
        return all(self._reflectors.get((namespace, kind)) is not None and self._reflectors[(namespace, kind)].synced
                   for kind in KINDS)

    async def wait_synced(self, namespace: str, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.gather(*(self._reflectors[(namespace, k)].synced_event.wait()
                                                    for k in KINDS)), timeout)
            return True
        except (asyncio.TimeoutError, KeyError):
            return False

    def problem(self, namespace: str) -> KubeError | None:
        for kind in KINDS:
            reflector = self._reflectors.get((namespace, kind))
            if reflector and reflector.problem:
                return reflector.problem
        return None

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        reflector = self._reflectors.get((namespace, "jobs"))
        return reflector.objects.get(name) if reflector else None

    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        reflector = self._reflectors.get((namespace, "jobs"))
        return list(reflector.objects.values()) if reflector else []

    def pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        return list(self._pods_by_job.get((namespace, job), {}).values())

    def _route(self, namespace: str, kind: str, obj: dict[str, Any] | None, last: dict[str, Any]) -> None:
        if kind == "workloads":
            # A Workload carries none of the operator's labels: each executor looks up the Job it stands for.
            key = (namespace, job_of_workload(last))
            if obj is None:
                self._workloads_by_job.pop(key, None)
            else:
                self._workloads_by_job[key] = obj
            for callback in list(self._subscribers.values()):
                callback(namespace, kind, obj, last)
            return
        if kind == "pods":
            key = (namespace, job_of_pod(last))
            name = last["metadata"]["name"]
            if obj is None:
                pods = self._pods_by_job.get(key)
                if pods is not None:
                    pods.pop(name, None)
                    if not pods:
                        del self._pods_by_job[key]
            else:
                self._pods_by_job.setdefault(key, {})[name] = obj
        labels = (last.get("metadata") or {}).get("labels") or {}
        callback = self._subscribers.get(labels.get(LABEL_EXECUTOR_ID, ""))
        if callback:
            callback(namespace, kind, obj, last)
