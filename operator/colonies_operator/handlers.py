"""kopf adapters: settings, one daemon per ColoniesExecutor, and what deleting one does."""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf

from .colonies import ColoniesError, crypto
from .config import InvalidSpec, config_from_spec
from . import metrics
from .executor import ExecutorLoop, colonies_client_for
from .kube import GROUP, PLURAL, VERSION, Kube, load_config
from .status import Problem

log = logging.getLogger(__name__)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/executor-cleanup"
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
    memo.kube = Kube(load_config())
    memo.loops = {}


# The loop notices the stop within one assign long-poll (spec.assignTimeoutSeconds, 10 s by default).
@kopf.daemon(GROUP, VERSION, PLURAL, id="executor", cancellation_timeout=45.0, initial_delay=0)
def run_executor(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The executor's whole life: kopf runs it in a thread and signals `stopped` on deletion or exit."""
    stop = threading.Event()
    loop = ExecutorLoop(memo.kube, dict(body), stop)
    memo.loops[body["metadata"]["uid"]] = loop
    watcher = threading.Thread(target=lambda: (stopped.wait(), stop.set()), daemon=True)
    watcher.start()
    try:
        loop.run()
    finally:
        memo.loops.pop(body["metadata"]["uid"], None)
        metrics.forget_executor(metrics.executor_label(body["metadata"]["namespace"], body["metadata"]["name"]))


@kopf.on.update(GROUP, VERSION, PLURAL, id="reload", field="spec")
def reload_executor(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    loop = memo.loops.get(body["metadata"]["uid"])
    if loop is not None:
        loop.resource = dict(body)
        loop.reload.set()


@kopf.on.delete(GROUP, VERSION, PLURAL, id="unregister")
def unregister_executor(body: kopf.Body, spec: kopf.Spec, name: str, namespace: str, memo: kopf.Memo,
                        logger: kopf.Logger, **_: Any) -> None:
    """Deletes the executor's Jobs, then removes the executor from Colonies, which puts its unfinished
    processes back in the queue for other executors."""
    kube: Kube = memo.kube
    try:
        config = config_from_spec(dict(spec), namespace=namespace, name=name)
    except InvalidSpec:
        return  # it never ran
    executor_id = (body.get("status") or {}).get("executorId")
    if executor_id:
        for job in kube.list_jobs(config.jobs.namespace, executor_id):
            kube.delete_job(config.jobs.namespace, job["metadata"]["name"])
    if not config.colony_key:
        logger.info("executor %s was registered by an admin; it stays registered", config.executor_name)
        return
    colony_prvkey = kube.read_secret_value(namespace, config.colony_key.name, config.colony_key.key)
    if not colony_prvkey:
        logger.warning("cannot unregister %s: the colony key Secret is gone", config.executor_name)
        return
    try:
        client = colonies_client_for(kube, config)
        client.remove_executor(config.colony_name, config.executor_name, colony_prvkey)
    except Problem as problem:
        raise kopf.TemporaryError(f"cannot unregister {config.executor_name} from Colonies: {problem.message}",
                                  delay=10)
    except ColoniesError as err:
        raise kopf.TemporaryError(f"cannot unregister {config.executor_name} from Colonies: {err}", delay=10)
    logger.info("unregistered executor %s (%s…) from colony %s", config.executor_name,
                (executor_id or crypto.prvkey_to_id(colony_prvkey))[:12], config.colony_name)
