"""kopf adapters: settings and credentials, one runtime per ColoniesExecutor, and what deleting one does. Each
handler is a few lines over the engine."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import kopf

from .core.names import FINALIZER, GROUP, PLURAL, VERSION
from .core.policy import DEFAULT_POLICY
from .engine import metrics
from .engine.attempt_logs import FOLLOWERS_PER_PROCESS, MAX_LOG_STREAMS, LogLimits
from .engine.heap import CHECK_SECONDS, HeapTrimmer, glibc_malloc_trim
from .engine.orphans import OrphanReaper
from .engine.registration import COLONIES_TIMEOUT_SECONDS
from .engine.runtime import ExecutorRuntime
from .engine.teardown import NotYet, tear_down
from .kube.api import SERVICE_ACCOUNT_TOKEN, KubeApi
from .kube.cache import ClusterView

log = logging.getLogger(__name__)

TEARDOWN_RETRY_SECONDS = 10


def connection(settings: kopf.OperatorSettings, logger: Any) -> kopf.ConnectionInfo:
    """How to reach the API server, for kopf and the operator alike: in a pod, its service account (at the
    address Kubernetes gives pods, KUBERNETES_SERVICE_HOST and _PORT); elsewhere the kubeconfig (KUBECONFIG or
    ~/.kube/config), read by kopf. A kubeconfig whose user runs an exec plugin or an auth provider (EKS, GKE,
    OIDC) needs the official client (the `kubeconfig` extra), through which kopf then logs in."""
    info = _service_account()
    if info is None and _kubeconfig_needs_client():
        try:
            info = kopf.login_via_client(settings=settings, logger=logger)
        except ImportError:
            raise kopf.LoginError("the kubeconfig's user authenticates with an exec plugin or an auth provider: "
                                  "install the official client too (pip install 'colonies-operator[kubeconfig]')")
    try:
        info = info or kopf.login_with_kubeconfig(settings=settings, logger=logger)
    except OSError as err:
        raise kopf.LoginError(f"cannot read the kubeconfig: {err}; set KUBECONFIG to the cluster's kubeconfig")
    if info is None:
        raise kopf.LoginError("no credentials: run in a pod with a service account, or set KUBECONFIG")
    return info


def _service_account() -> kopf.ConnectionInfo | None:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not (host and port and SERVICE_ACCOUNT_TOKEN.exists()):
        return None
    ca = SERVICE_ACCOUNT_TOKEN.with_name("ca.crt")
    return kopf.ConnectionInfo(server=f"https://{f'[{host}]' if ':' in host else host}:{port}",
                               ca_path=str(ca) if ca.exists() else None,
                               token=SERVICE_ACCOUNT_TOKEN.read_text().strip())


def _kubeconfig_needs_client() -> bool:
    import yaml

    for path in (os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep):
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as handle:
                users = (yaml.safe_load(handle) or {}).get("users") or []
        except OSError:
            continue
        if any({"exec", "auth-provider"} & set(user.get("user") or {}) for user in users):
            return True
    return False


def kube_api(settings: kopf.OperatorSettings, logger: Any) -> KubeApi:
    """The operator's client of the API server, logged in as kopf is (connection())."""
    info = connection(settings, logger)
    in_pod = _service_account() is not None  # its token is rotated by the kubelet: re-read it now and then
    return KubeApi(info.server, ssl_context=info.as_ssl_context(), headers=info.as_http_headers(),
                   token_file=SERVICE_ACCOUNT_TOKEN if in_pod else None, on_request=metrics.kube_request)


def pod_namespace() -> str | None:
    """The namespace of the pod the operator runs in; None outside a pod."""
    try:
        return SERVICE_ACCOUNT_TOKEN.with_name("namespace").read_text().strip() or None
    except OSError:
        return None


@kopf.on.login()
def login(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> kopf.ConnectionInfo:
    return connection(settings, logger)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # Without server and client timeouts a silently dropped watch stalls the operator (kopf #585).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.posting.level = logging.WARNING  # events for problems, not for routine work
    # One CRD, installed before the operator starts, in the namespaces it is given: nothing to discover (a
    # namespaced Role cannot list namespaces or CRDs, and kopf would retry that for a minute first).
    settings.scanning.disabled = True
    memo.kube = kube_api(settings, logger)
    memo.view = ClusterView(memo.kube)
    memo.log_limits = LogLimits.of(memo.get("max_log_streams") or MAX_LOG_STREAMS,
                                   memo.get("max_log_streams_per_process") or FOLLOWERS_PER_PROCESS)
    memo.runtimes = {}
    memo.heap_task = asyncio.create_task(_trim_heap_after_bursts(memo), name="heap-trim")
    memo.orphans_task = None
    if memo.get("orphan_grace"):
        reaper = OrphanReaper(memo.kube, memo.get("job_namespaces"), memo.orphan_grace)
        memo.orphans_task = asyncio.create_task(reaper.run(), name="orphan-jobs")


async def _trim_heap_after_bursts(memo: kopf.Memo) -> None:
    """Hands the memory of a drained burst of processes back to the system (heap.py says why and when)."""
    trimmer = HeapTrimmer(glibc_malloc_trim())
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        trimmer.observe(sum(runtime.reconciler.active for runtime in memo.runtimes.values()), time.monotonic())


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    memo.heap_task.cancel()
    if memo.orphans_task is not None:
        memo.orphans_task.cancel()
    for runtime in list(memo.runtimes.values()):
        await runtime.stop()
    await memo.view.close()
    await memo.kube.close()


# An async daemon holds no thread: one operator serves any number of ColoniesExecutors.
@kopf.daemon(GROUP, VERSION, PLURAL, id="executor", cancellation_timeout=30.0, initial_delay=0)
async def run_executor(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The executor's whole life: it stops when the resource is deleted or the operator exits."""
    uid = body["metadata"]["uid"]
    runtime = ExecutorRuntime(memo.kube, memo.view, dict(body), memo.log_limits,
                              policy=memo.get("policy") or DEFAULT_POLICY,
                              colonies_timeout=memo.get("colonies_timeout") or COLONIES_TIMEOUT_SECONDS)
    memo.runtimes[uid] = runtime
    task = asyncio.create_task(runtime.run(), name=f"executor-{body['metadata']['name']}")
    try:
        await stopped.wait()
    finally:
        await runtime.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        memo.runtimes.pop(uid, None)
        metrics.forget_executor(runtime.metrics_label)


@kopf.on.update(GROUP, VERSION, PLURAL, id="reload", field="spec")
async def reload_executor(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.runtimes.get(body["metadata"]["uid"])
    if runtime is not None:
        runtime.reload(dict(body))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="unregister")
async def unregister_executor(body: kopf.Body, spec: kopf.Spec, name: str, namespace: str, memo: kopf.Memo,
                              **_: Any) -> None:
    """Stops taking work, hands the executor's running processes back to Colonies, then deletes its Jobs."""
    runtime = memo.runtimes.get(body["metadata"]["uid"])
    if runtime is not None:
        await runtime.stop()
    try:
        await tear_down(memo.kube, dict(spec), namespace=namespace, name=name,
                        executor_id=(body.get("status") or {}).get("executorId"),
                        policy=memo.get("policy") or DEFAULT_POLICY)
    except NotYet as err:
        raise kopf.TemporaryError(str(err), delay=TEARDOWN_RETRY_SECONDS)
