"""kopf adapters: settings, one runtime per ColoniesExecutor, and what deleting one does."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from . import metrics
from .cache import ClusterView
from .colonies import ColoniesError, ProcessState
from .config import InvalidSpec, config_from_spec
from .policy import DEFAULT_POLICY
from .executor import ExecutorRuntime
from .heap import CHECK_SECONDS, HeapTrimmer, glibc_malloc_trim
from .kubeapi import KubeApi, KubeError
from .names import FINALIZER, GROUP, JOB_STATE_ACTIVE, LABEL_JOB_STATE, PLURAL, VERSION, owned_selector
from .reconcile import release_patch
from .registration import colonies_client_for, read_key
from .status import Problem

log = logging.getLogger(__name__)

MAX_LOG_STREAMS = 256  # pod log streams open at once, over all executors: each is an API server connection


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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
    memo.kube = KubeApi.from_environment()
    memo.view = ClusterView(memo.kube)
    memo.log_streams = asyncio.Semaphore(MAX_LOG_STREAMS)
    memo.runtimes = {}
    memo.heap_task = asyncio.create_task(_trim_heap_after_bursts(memo), name="heap-trim")


async def _trim_heap_after_bursts(memo: kopf.Memo) -> None:
    """Hands the memory of a drained burst of processes back to the system (heap.py says why and when)."""
    trimmer = HeapTrimmer(glibc_malloc_trim())
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        trimmer.observe(sum(runtime.reconciler.active for runtime in memo.runtimes.values()), time.monotonic())


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    memo.heap_task.cancel()
    for runtime in list(memo.runtimes.values()):
        await runtime.stop()
    await memo.view.close()
    await memo.kube.close()


# An async daemon holds no thread: one operator serves any number of ColoniesExecutors.
@kopf.daemon(GROUP, VERSION, PLURAL, id="executor", cancellation_timeout=30.0, initial_delay=0)
async def run_executor(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The executor's whole life: it stops when the resource is deleted or the operator exits."""
    uid = body["metadata"]["uid"]
    runtime = ExecutorRuntime(memo.kube, memo.view, dict(body), memo.log_streams,
                              policy=memo.get("policy") or DEFAULT_POLICY)
    memo.runtimes[uid] = runtime
    task = asyncio.create_task(runtime.run(), name=f"executor-{body['metadata']['name']}")
    try:
        await stopped.wait()
    finally:
        await runtime.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        memo.runtimes.pop(uid, None)
        metrics.forget_executor(metrics.executor_label(body["metadata"]["namespace"], body["metadata"]["name"]))


@kopf.on.update(GROUP, VERSION, PLURAL, id="reload", field="spec")
async def reload_executor(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.runtimes.get(body["metadata"]["uid"])
    if runtime is not None:
        runtime.reload(dict(body))


@kopf.on.delete(GROUP, VERSION, PLURAL, id="unregister")
async def unregister_executor(body: kopf.Body, spec: kopf.Spec, name: str, namespace: str, memo: kopf.Memo,
                              logger: kopf.Logger, **_: Any) -> None:
    """Stops taking work, hands the executor's running processes back to Colonies, then deletes its Jobs.
    No process is closed FAILED by a deletion where Colonies can re-queue it."""
    kube: KubeApi = memo.kube
    runtime = memo.runtimes.get(body["metadata"]["uid"])
    if runtime is not None:
        runtime.reconciler.deleting = True
        await runtime.stop()
    try:
        config = config_from_spec(dict(spec), namespace=namespace, name=name,
                                  policy=memo.get("policy") or DEFAULT_POLICY)
    except InvalidSpec:
        return  # it never ran
    executor_id = (body.get("status") or {}).get("executorId")
    try:
        client = await colonies_client_for(kube, config)
        if config.colony_key and not executor_id:
            # It never registered (refused by the policy, or it never reached Colonies): nothing to remove, and
            # Colonies answers a removal of an unknown executor with a 500 that would hold the deletion forever.
            logger.info("executor %s never registered: nothing to remove from Colonies", config.executor_name)
        elif config.colony_key:
            # Removing the executor puts its RUNNING processes back in the queue for other executors.
            colony_prvkey = await read_key(kube, namespace, config.colony_key, "colony private key")
            await client.remove_executor(config.colony_name, config.executor_name, colony_prvkey)
            logger.info("unregistered executor %s from colony %s: its running processes are queued again",
                        config.executor_name, config.colony_name)
        elif executor_id:
            # An executor cannot remove itself in Colonies, so its processes cannot be queued again: fail them,
            # saying why, rather than leave them RUNNING on an executor nobody runs.
            prvkey = await read_key(kube, namespace, config.executor_key, "executor private key")
            for process in await client.running_on(config.colony_name, executor_id, prvkey):
                if process.state == ProcessState.RUNNING:
                    await client.close_failed(process.processid, [
                        f"executor removed: the ColoniesExecutor {namespace}/{name} was deleted while the process "
                        "ran; resubmit it"], prvkey)
        await client.close()
    except Problem as problem:
        raise kopf.TemporaryError(f"cannot hand {config.executor_name}'s work back to Colonies: {problem.message}",
                                  delay=10)
    except ColoniesError as err:
        raise kopf.TemporaryError(f"cannot hand {config.executor_name}'s work back to Colonies: {err}", delay=10)
    if not config.policy.allows_namespace(config.jobs.namespace, namespace):
        # The policy refused the namespace, so no Job of this executor went there (and the chart grants no
        # rights there): nothing to delete, and a forbidden list would hold the deletion forever.
        logger.info("no Jobs to delete: the policy does not allow namespace %s", config.jobs.namespace)
    elif executor_id:
        try:
            # Only the active Jobs carry the finalizer; the finished ones kept for kubectl logs (thousands,
            # maybe) go with one request.
            active, _ = await kube.list(f"/apis/batch/v1/namespaces/{config.jobs.namespace}/jobs",
                                        label_selector=f"{owned_selector(executor_id)},{LABEL_JOB_STATE}="
                                                       f"{JOB_STATE_ACTIVE}", resource="jobs")
            for job in active:
                await kube.patch_job(config.jobs.namespace, job["metadata"]["name"], release_patch(None))
            await kube.delete_jobs(config.jobs.namespace, owned_selector(executor_id))
        except KubeError as err:
            raise kopf.TemporaryError(f"cannot delete the Jobs of {config.executor_name}: {err}", delay=10)
