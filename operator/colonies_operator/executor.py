"""One ColoniesExecutor at work: registration, the assign loop, and one runner per process.

Threads, not asyncio (see colonies/client.py): the loop runs in the kopf daemon's thread; an observer
thread lists the executor's Jobs and pods once a second for all runners (constant API load whatever the
number of processes) and asks Colonies which of its processes still run (cancellation, re-queueing); each
process has a runner thread, and each container a log follower thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from kubernetes.client.exceptions import ApiException

from . import jobs as jobmod
from . import metrics, names
from .colonies import (
    ColoniesClient,
    ColoniesError,
    ColoniesUnreachable,
    Executor,
    ExecutorState,
    Forbidden,
    InvalidRequest,
    NotFound,
    Process,
    ProcessState,
    ServerError,
    crypto,
)
from .colonies.client import MAX_PROCESSES_PER_READ
from .config import ExecutorConfig, InvalidSpec, config_from_spec
from .kube import Kube
from .logs import ContainerFollower, LogShipper, StreamPosition, count_shipped_lines, line_prefix, ship_errors
from .outcome import Outcome, outcome_of
from .status import READY, REACHABLE, REGISTERED, Problem, now_iso, ready_from, with_condition

log = logging.getLogger(__name__)

OBSERVE_INTERVAL = 1.0
MAX_HEARTBEAT_INTERVAL = 60.0  # Colonies removes executors that have not called assign for 10 minutes
NEVER_MATCHING_CPU = "-1m"  # an assign that refreshes "last heard from" but can match no process
FOLLOWER_DRAIN_TIMEOUT = 30.0
OWN_KEY_FIELD = "executorPrvKey"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def colonies_client_for(kube: Kube, config: ExecutorConfig) -> ColoniesClient:
    """A client for the resource's Colonies server, trusting its CA bundle when it names one."""
    server = config.server
    ca_file = None
    if server.tls and server.ca_bundle:
        ref = server.ca_bundle
        read = kube.read_secret_value if ref.kind == "Secret" else kube.read_configmap_value
        pem = read(config.resource_namespace, ref.name, ref.key)
        if not pem:
            raise Problem(REACHABLE, "CABundleMissing", f"{ref.kind} {config.resource_namespace}/{ref.name} has no "
                          f"key {ref.key!r} with the CA bundle")
        # requests wants a file; one per distinct bundle, so reconnecting does not pile files up.
        path = Path(tempfile.gettempdir()) / f"colonies-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
        if not path.exists():
            path.write_text(pem)
        ca_file = str(path)
    return ColoniesClient(server.host, server.port, tls=server.tls, ca_bundle=ca_file, on_error=metrics.rpc_error)


class Snapshot:
    """The executor's Jobs and pods as last listed, shared by all runners."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods_by_job: dict[str, list[dict[str, Any]]] = {}
        self.running_process_ids: set[str] | None = None  # None: unknown (list truncated or unreachable)
        self.taken_at = 0.0


class ExecutorLoop:
    """Runs one ColoniesExecutor until `stop` is set. `reload` asks it to re-read its spec."""

    def __init__(self, kube: Kube, resource: dict[str, Any], stop: threading.Event) -> None:
        self.kube = kube
        self.stop = stop
        self.reload = threading.Event()
        meta = resource["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta.get("uid", "")
        self.resource = resource
        status = resource.get("status") or {}
        self.conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
        self.succeeded = int(status.get("succeededProcesses") or 0)
        self.failed = int(status.get("failedProcesses") or 0)
        self.last_assignment: str | None = status.get("lastAssignmentTime")
        self._written_status: dict[str, Any] = {}
        self.runners: dict[str, ProcessRunner] = {}
        self.runners_lock = threading.Lock()
        self.slot_freed = threading.Event()
        self.snapshot = Snapshot()
        self.snapshot_ready = threading.Condition()
        self.config: ExecutorConfig | None = None
        self.client: ColoniesClient | None = None
        self.prvkey = ""
        self.executor_id = ""
        self.metrics_label = metrics.executor_label(self.namespace, self.name)

    # -- status -----------------------------------------------------------------------------------

    def _set(self, kind: str, ok: bool, reason: str, message: str) -> None:
        generation = self.resource["metadata"].get("generation")
        self.conditions = with_condition(self.conditions, kind, ok, reason, message, generation)

    def report(self) -> None:
        """Writes the status if it changed (never on every poll)."""
        generation = self.resource["metadata"].get("generation")
        ready, reason, message = ready_from(self.conditions)
        self.conditions = with_condition(self.conditions, READY, ready, reason, message, generation)
        with self.runners_lock:
            active = len(self.runners)
        status = {
            "conditions": self.conditions,
            "executorId": self.executor_id or None,
            "executorName": self.config.executor_name if self.config else None,
            "activeProcesses": active,
            "succeededProcesses": self.succeeded,
            "failedProcesses": self.failed,
            "lastAssignmentTime": self.last_assignment,
            "observedGeneration": generation,
        }
        if status == self._written_status:
            return
        try:
            self.kube.patch_executor_status(self.namespace, self.name, status)
            self._written_status = status
        except Exception as err:  # status is best effort; the next change retries it
            log.warning("cannot write the status of %s/%s: %s", self.namespace, self.name, err)

    def _problem(self, problem: Problem) -> None:
        self._set(problem.condition, False, problem.reason, problem.message)
        self.report()

    # -- the outer loop ------------------------------------------------------------------------------

    def run(self) -> None:
        backoff = 1.0
        last_problem = None
        while not self.stop.is_set():
            try:
                self._run_once()
                backoff = 1.0
                if self.reload.is_set():
                    self.reload.clear()
                    continue
            except Problem as problem:
                if str(problem) != last_problem:
                    log.warning("executor %s/%s: %s", self.namespace, self.name, problem.message)
                    last_problem = str(problem)
                self._problem(problem)
            except Exception as err:  # the loop must survive anything; say what happened
                log.exception("executor %s/%s: unexpected error, retrying in %.0fs", self.namespace, self.name,
                              backoff)
                self._set(REGISTERED, False, "InternalError", f"{type(err).__name__}: {err}; retrying")
                self.report()
            self.stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
        self._stop_runners()

    def _run_once(self) -> None:
        try:
            self.config = config_from_spec(self.resource.get("spec") or {}, namespace=self.namespace, name=self.name)
        except InvalidSpec as err:
            raise Problem(REGISTERED, "InvalidSpec", str(err)) from None
        self.client = self._connect()
        self._register()
        self._set(REGISTERED, True, "Registered",
                  f"executor {self.config.executor_name} ({self.config.executor_type}) in colony "
                  f"{self.config.colony_name}, id {self.executor_id[:12]}…")
        self._set(REACHABLE, True, "Connected", f"{self.client.url}")
        self.report()
        observer = threading.Thread(target=self._observe, name=f"observer-{self.name}", daemon=True)
        observer_stop = threading.Event()
        self._observer_stop = observer_stop
        observer.start()
        try:
            self._adopt()
            self._assign_loop()
        finally:
            observer_stop.set()

    def _connect(self) -> ColoniesClient:
        client = colonies_client_for(self.kube, self.config)
        server = self.config.server
        try:
            client.version()
        except ColoniesUnreachable as err:
            reason = "TLSError" if "TLS" in err.message else "Unreachable"
            hint = ("check spec.server.tls and the CA bundle" if reason == "TLSError"
                    else "check spec.server.host and port, and that the server runs")
            raise Problem(REACHABLE, reason, f"{err.message}; {hint}") from None
        except ColoniesError as err:
            hint = "does spec.server.tls match the server?" if not server.tls else "is this a Colonies server?"
            raise Problem(REACHABLE, "BadReply", f"{client.url} answered {err}; {hint}") from None
        return client

    # -- registration -------------------------------------------------------------------------------

    def _read_key(self, ref, what: str) -> str:
        value = self.kube.read_secret_value(self.namespace, ref.name, ref.key)
        if not value:
            raise Problem(REGISTERED, "KeySecretMissing",
                          f"Secret {self.namespace}/{ref.name} has no key {ref.key!r} holding the {what}; create it: "
                          f"kubectl -n {self.namespace} create secret generic {ref.name} --from-literal={ref.key}=<key>")
        try:
            crypto.prvkey_to_id(value)
        except ValueError:
            raise Problem(REGISTERED, "InvalidKey",
                          f"Secret {self.namespace}/{ref.name} key {ref.key!r} is not a Colonies private key "
                          "(64 hex characters)") from None
        return value

    def _own_key(self) -> str:
        """The executor key this operator generated for the resource, kept in a Secret it owns."""
        secret_name = f"{self.name}-executor-key"
        value = self.kube.read_secret_value(self.namespace, secret_name, OWN_KEY_FIELD)
        if value:
            return value
        owner = {"apiVersion": "colonyos.io/v1alpha1", "kind": "ColoniesExecutor", "name": self.name,
                 "uid": self.uid, "controller": True, "blockOwnerDeletion": False}
        created = self.kube.create_secret(self.namespace, secret_name, {OWN_KEY_FIELD: crypto.generate_prvkey()},
                                          owner if self.uid else None,
                                          {names.LABEL_MANAGED_BY: names.MANAGED_BY})
        value = self.kube.read_secret_value(self.namespace, secret_name, OWN_KEY_FIELD)
        if not value:
            raise Problem(REGISTERED, "KeySecretMissing", f"Secret {self.namespace}/{secret_name} exists without "
                          f"key {OWN_KEY_FIELD!r}; delete it so the operator can create it")
        if created:
            log.info("executor %s/%s: created Secret %s for its executor key", self.namespace, self.name, secret_name)
        return value

    def _register(self) -> None:
        config, client = self.config, self.client
        if config.executor_key:
            self.prvkey = self._read_key(config.executor_key, "executor private key")
        else:
            colony_prvkey = self._read_key(config.colony_key, "colony private key")
            self.prvkey = self._own_key()
        self.executor_id = crypto.prvkey_to_id(self.prvkey)
        existing = None
        try:
            existing = client.get_executor(config.colony_name, config.executor_name, self.prvkey)
        except (Forbidden, NotFound):
            existing = None  # not a member: never registered, or removed
        except ServerError as err:
            if "nil" not in err.message:  # the server's "executor is nil": no executor of that name
                raise
            existing = None
        except ColoniesUnreachable as err:
            raise Problem(REACHABLE, "Unreachable", err.message) from None
        if existing and existing.executorid != self.executor_id:
            existing = None
        if config.executor_key:
            if not existing:
                raise Problem(REGISTERED, "NotRegistered",
                              f"the key in Secret {config.executor_key.name} is not an executor named "
                              f"{config.executor_name} in colony {config.colony_name}; register and approve it, "
                              "or give spec.credentials.colonyKeySecret instead")
            if existing.state != ExecutorState.APPROVED:
                raise Problem(REGISTERED, "NotApproved",
                              f"executor {config.executor_name} is {ExecutorState(existing.state).name}; approve it: "
                              f"colonies executor approve --name {config.executor_name}")
        else:
            try:
                if not existing or existing.state in (ExecutorState.UNREGISTERED, ExecutorState.REJECTED):
                    client.add_executor(Executor(executorid=self.executor_id, executorname=config.executor_name,
                                                 executortype=config.executor_type, colonyname=config.colony_name),
                                        colony_prvkey)
                    log.info("executor %s/%s: registered %s in colony %s", self.namespace, self.name,
                             config.executor_name, config.colony_name)
                if not existing or existing.state != ExecutorState.APPROVED:
                    client.approve_executor(config.colony_name, config.executor_name, colony_prvkey)
            except Forbidden as err:
                raise Problem(REGISTERED, "WrongColonyKey",
                              f"the key in Secret {config.colony_key.name} is not the owner of colony "
                              f"{config.colony_name} ({err.message})") from None
            except InvalidRequest as err:
                raise Problem(REGISTERED, "RegistrationRefused", f"Colonies refused to register "
                              f"{config.executor_name}: {err.message}") from None
        registered = {f.funcname for f in client.get_functions(config.colony_name, config.executor_name, self.prvkey)}
        for funcname in config.functions:
            if funcname not in registered:
                client.add_function(config.colony_name, config.executor_name, config.executor_type, funcname,
                                    self.prvkey)

    # -- assign loop -----------------------------------------------------------------------------------

    def _assign_loop(self) -> None:
        config, client = self.config, self.client
        last_heartbeat = 0.0
        while not self.stop.is_set() and not self.reload.is_set():
            with self.runners_lock:
                active = len(self.runners)
            try:
                if active < config.max_concurrent_processes:
                    process = client.assign(config.colony_name, config.assign_timeout_seconds, self.prvkey)
                    last_heartbeat = time.monotonic()
                    self._reachable()
                    if process is not None:
                        self.last_assignment = now_iso()
                        metrics.process_assigned(self.metrics_label)
                        self._start_runner(process, adopted=False)
                        self.report()
                else:
                    # At the cap no process may be taken, but Colonies counts only assign calls as signs
                    # of life: an assign that no process can match keeps the executor (and its work).
                    heartbeat = min(MAX_HEARTBEAT_INTERVAL, 3.0 * config.assign_timeout_seconds)
                    if time.monotonic() - last_heartbeat >= heartbeat:
                        process = client.assign(config.colony_name, -1, self.prvkey, available_cpu=NEVER_MATCHING_CPU)
                        last_heartbeat = time.monotonic()
                        if process is not None:  # only a process asking for negative cpu matches: invalid
                            self._start_runner(process, adopted=False)
                    self.slot_freed.wait(min(5.0, heartbeat))
                    self.slot_freed.clear()
            except ColoniesUnreachable as err:
                raise Problem(REACHABLE, "Unreachable", f"{err.message}; retrying") from None
            except Forbidden as err:
                raise Problem(REGISTERED, "Forbidden", f"Colonies refused this executor ({err.message}); "
                              "re-checking the registration") from None

    def _reachable(self) -> None:
        for condition in self.conditions:
            if condition["type"] == REACHABLE and condition["status"] != "True":
                self._set(REACHABLE, True, "Connected", self.client.url)
                self.report()

    # -- runners --------------------------------------------------------------------------------------

    def _start_runner(self, process: Process, *, adopted: bool) -> None:
        runner = ProcessRunner(self, process, adopted=adopted)
        with self.runners_lock:
            if process.processid in self.runners:
                return
            self.runners[process.processid] = runner
            active = len(self.runners)
        metrics.set_active(self.metrics_label, active)
        runner.start()

    def runner_finished(self, runner: "ProcessRunner", outcome: str, reason: str = "") -> None:
        with self.runners_lock:
            self.runners.pop(runner.process.processid, None)
            active = len(self.runners)
        metrics.set_active(self.metrics_label, active)
        if outcome in ("succeeded", "failed"):
            metrics.process_finished(self.metrics_label, outcome, reason or None)
        if outcome == "succeeded":
            self.succeeded += 1
        elif outcome == "failed":
            self.failed += 1
        self.slot_freed.set()
        self.report()

    def _stop_runners(self) -> None:
        with self.runners_lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.stop.set()

    def _adopt(self) -> None:
        """After a restart: resume every process this executor runs, with or without its Job."""
        config = self.config
        jobs = self.kube.list_jobs(config.jobs.namespace, self.executor_id)
        running, _ = self._running_here()
        mine: dict[str, Process] = {p.processid: p for p in running}
        for job in jobs:
            annotations = job["metadata"].get("annotations") or {}
            pid = annotations.get(names.ANNOTATION_PROCESS_ID, "")
            attempt = annotations.get(names.ANNOTATION_ATTEMPT, "")
            if pid in mine and str(mine[pid].retries) == attempt:
                continue
            try:
                process = self.client.get_process(pid, self.prvkey)
            except ColoniesError:
                process = None
            if process is None or process.state in (ProcessState.SUCCESS, ProcessState.FAILED):
                continue  # closed before the restart: the Job stays until its TTL for kubectl logs
            if process.state == ProcessState.RUNNING and process.assignedexecutorid == self.executor_id:
                mine[pid] = process
                continue
            log.info("deleting Job %s: its process is %s elsewhere", job["metadata"]["name"], process.state_name)
            self.kube.delete_job(config.jobs.namespace, job["metadata"]["name"])
        for process in mine.values():
            self._start_runner(process, adopted=True)
        if mine:
            log.info("executor %s/%s: adopted %d running processes", self.namespace, self.name, len(mine))
        self.report()

    # -- observer ---------------------------------------------------------------------------------------

    def _observe(self) -> None:
        config = self.config
        while not self._observer_stop.is_set() and not self.stop.is_set():
            started = time.monotonic()
            try:
                jobs = self.kube.list_jobs(config.jobs.namespace, self.executor_id)
                pods = self.kube.list_pods(config.jobs.namespace, self.executor_id)
                running = self._running_process_ids()
                snapshot = Snapshot()
                snapshot.jobs = {j["metadata"]["name"]: j for j in jobs}
                for pod in pods:
                    owner = (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") or \
                        (pod["metadata"].get("labels") or {}).get("job-name", "")
                    snapshot.pods_by_job.setdefault(owner, []).append(pod)
                snapshot.running_process_ids = running
                snapshot.taken_at = time.monotonic()
                with self.snapshot_ready:
                    self.snapshot = snapshot
                    self.snapshot_ready.notify_all()
            except Exception as err:  # a failed list is retried on the next tick
                log.debug("observer of %s/%s: %s", self.namespace, self.name, err)
            self._observer_stop.wait(max(0.0, OBSERVE_INTERVAL - (time.monotonic() - started)))

    def _running_here(self) -> tuple[list[Process], bool]:
        """The processes Colonies has RUNNING on this executor, and whether the list is complete (the server
        returns at most 100 RUNNING processes of the type, whoever runs them)."""
        running = self.client.get_processes(self.config.colony_name, ProcessState.RUNNING, self.prvkey,
                                            executortype=self.config.executor_type)
        complete = len(running) < MAX_PROCESSES_PER_READ
        return [p for p in running if p.assignedexecutorid == self.executor_id], complete

    def _running_process_ids(self) -> set[str] | None:
        """The ids of processes Colonies still has RUNNING on this executor; None when unsure (then runners
        ask about their own process instead)."""
        try:
            running, complete = self._running_here()
        except ColoniesError:
            return None
        return {p.processid for p in running} if complete else None

    def wait_for_snapshot(self, newer_than: float, timeout: float) -> Snapshot:
        with self.snapshot_ready:
            self.snapshot_ready.wait_for(lambda: self.snapshot.taken_at > newer_than, timeout)
            return self.snapshot


class ProcessRunner(threading.Thread):
    """Carries one process from assignment to close: Job, logs, outcome."""

    def __init__(self, loop: ExecutorLoop, process: Process, *, adopted: bool) -> None:
        super().__init__(name=f"process-{process.processid[:12]}", daemon=True)
        self.loop = loop
        self.process = process
        self.adopted = adopted
        self.stop = threading.Event()
        self.followers: dict[tuple[str, str], ContainerFollower] = {}
        self.follower_stop = threading.Event()
        pid = process.processid
        self.shipper = LogShipper(lambda message: loop.client.add_log(pid, message, loop.prvkey))
        self.job_name = names.job_name(pid, process.retries)
        self.plan: jobmod.JobPlan | None = None
        self.failure_reason = ""
        self.skip: dict[str, int] = {}  # lines Colonies already holds, per container prefix (adoption)
        self.created_at = self.last_check = 0.0
        self.job_seen = False

    @property
    def namespace(self) -> str:
        return self.loop.config.jobs.namespace

    def run(self) -> None:
        outcome = "lost"
        try:
            outcome = self._run()
        except Exception:
            log.exception("process %s: unexpected error; its Job is left for the next operator start",
                          self.process.processid)
        finally:
            self.follower_stop.set()
            self.loop.runner_finished(self, outcome, self.failure_reason)

    def _run(self) -> str:
        loop, pid = self.loop, self.process.processid
        try:
            self.plan = jobmod.plan_job(self.process, loop.config)
        except jobmod.InvalidProcess as err:
            self.failure_reason = "invalid"
            self._close_failed([f"invalid process: {err}"])
            log.info("process %s rejected: %s", pid, err)
            return "failed"
        job = jobmod.build_job(self.process, self.plan, loop.config, loop.executor_id)
        created = self._create_job(job)
        if created is None:
            return "failed"
        if self.adopted or not created:
            self.skip = self._retrying(self._shipped_line_counts)
        seen_at = 0.0
        self.last_check = self.created_at = time.monotonic()
        while not self.stop.is_set():
            snapshot = loop.wait_for_snapshot(seen_at, timeout=5.0)
            seen_at = snapshot.taken_at
            try:
                result = self._step(snapshot)
            except Exception as err:  # an API server or Colonies outage: try again on the next snapshot
                log.warning("process %s: %s; retrying", pid, err)
                self.stop.wait(2)
                continue
            if result:
                return result
        return "stopped"

    def _step(self, snapshot: Snapshot) -> str | None:
        """One look at the process; returns how it ended, or None while it goes on."""
        loop, pid = self.loop, self.process.processid
        self.shipper.flush_if_due()
        if snapshot.running_process_ids is not None and pid not in snapshot.running_process_ids:
            if self._lost():
                return "lost"
        elif time.monotonic() - self.last_check > 10:
            self.last_check = time.monotonic()
            if self._lost():
                return "lost"
        job_now = snapshot.jobs.get(self.job_name)
        if job_now is None:
            if self.job_seen or time.monotonic() - self.created_at > 30:
                if self._lost():
                    return "lost"
                self._close_failed(["the Job was deleted before it finished (by someone other than the "
                                    "operator)"])
                return "failed"
            return None
        self.job_seen = True
        pods = snapshot.pods_by_job.get(self.job_name, [])
        self._follow(pods)
        outcome = outcome_of(job_now, pods, utcnow(), pending_timeout=loop.config.jobs.pending_timeout_seconds,
                             image_pull_grace=loop.config.jobs.image_pull_grace_seconds,
                             walltime=self.plan.walltime)
        if outcome.finished:
            return self._finish(outcome)
        return None

    def _create_job(self, job: dict[str, Any]) -> bool | None:
        delay = 1.0
        while True:
            try:
                started = time.monotonic()
                created = self.loop.kube.create_job(job)
                metrics.job_created(time.monotonic() - started)
                break
            except ApiException as err:
                if err.status in (429, 500, 502, 503, 504) and not self.stop.wait(delay):
                    delay = min(delay * 2, 15.0)
                    continue
                return self._job_refused(err)
            except Exception as err:  # the API server is unreachable: wait for it
                log.warning("process %s: cannot create its Job yet (%s); retrying", self.process.processid, err)
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, 15.0)
        if created:
            log.info("process %s: created Job %s/%s", self.process.processid, self.namespace, self.job_name)
        return created

    def _job_refused(self, err: ApiException) -> None:
        """Kubernetes said no (quota, admission, invalid): the submitter learns why."""
        try:
            reason = json.loads(err.body).get("message", err.reason)
        except (TypeError, ValueError, AttributeError):
            reason = err.reason or ""
        self._close_failed([f"Kubernetes refused the Job ({err.status}): {reason}"])
        return None

    def _shipped_line_counts(self) -> dict[str, int]:
        """Lines already in Colonies per container prefix (an adopted process resumes after them)."""
        entries = self.loop.client.all_logs(self.loop.config.colony_name, self.process.processid, self.loop.prvkey)
        multi = self.plan.containers_total > 1
        prefixes = [line_prefix(str(i), c, multi) for i in range(self.plan.nodes) for c in self._containers()]
        return count_shipped_lines((e.message for e in entries), prefixes)

    def _containers(self) -> list[str]:
        return ["main"] if self.plan.processes_per_node == 1 else [f"proc-{i}" for i in range(self.plan.processes_per_node)]

    def _follow(self, pods: list[dict[str, Any]]) -> None:
        multi = self.plan.containers_total > 1
        for pod in pods:
            meta = pod["metadata"]
            index = (meta.get("annotations") or {}).get("batch.kubernetes.io/job-completion-index", "0")
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                state = status.get("state") or {}
                if not (state.get("running") or state.get("terminated")):
                    continue
                key = (meta["name"], status["name"])
                if key in self.followers:
                    continue
                prefix = line_prefix(index, status["name"], multi)
                # A retried pod of the same index would repeat lines; with backoffLimit 0 there is none.
                position = StreamPosition(skip_lines=self.skip.get(prefix, 0))
                pod_name, container = meta["name"], status["name"]
                follower = ContainerFollower(
                    open_stream=lambda since, p=pod_name, c=container: self.loop.kube.stream_log(
                        self.namespace, p, c, since),
                    container_done=self._container_done_check(pod_name, container),
                    shipper=self.shipper, prefix=prefix, position=position, stop=self.follower_stop,
                    name=f"logs-{pod_name}-{container}")
                self.followers[key] = follower
                follower.start()

    def _container_done_check(self, pod_name: str, container: str) -> Callable[[], bool]:
        def done() -> bool:
            for pod in self.loop.snapshot.pods_by_job.get(self.job_name, []):
                if pod["metadata"]["name"] != pod_name:
                    continue
                for status in (pod.get("status") or {}).get("containerStatuses") or []:
                    if status["name"] == container:
                        return bool((status.get("state") or {}).get("terminated"))
            return True  # the pod is gone: nothing more to read
        return done

    def _lost(self) -> bool:
        """True (after deleting the Job) if Colonies no longer has this process running here."""
        loop = self.loop
        try:
            process = loop.client.get_process(self.process.processid, loop.prvkey)
        except ColoniesUnreachable:
            return False
        except ColoniesError:
            process = None
        if process and process.state == ProcessState.RUNNING and process.assignedexecutorid == loop.executor_id \
                and process.retries == self.process.retries:
            return False
        why = process.state_name if process else "gone"
        log.info("process %s is %s in Colonies: deleting Job %s", self.process.processid, why, self.job_name)
        self.follower_stop.set()
        loop.kube.delete_job(self.namespace, self.job_name)
        return True

    def _drain_logs(self) -> None:
        """Waits for every follower to read its container's log to the end, then ships all of it."""
        deadline = time.monotonic() + FOLLOWER_DRAIN_TIMEOUT
        for follower in list(self.followers.values()):
            follower.finished.wait(max(0.0, deadline - time.monotonic()))
        self.follower_stop.set()
        while not self.shipper.flush() and not self.stop.wait(2):
            pass  # Colonies unreachable: keep the lines and try again

    def _finish(self, outcome: Outcome) -> str:
        # Logs reach Colonies only while the process runs: flush them all before closing.
        pods = self.loop.snapshot.pods_by_job.get(self.job_name, [])
        self._follow(pods)
        self._drain_logs()
        loop = self.loop
        try:
            if outcome.state == "succeeded":
                self._retrying(lambda: loop.client.close_successful(self.process.processid, loop.prvkey,
                                                                    output=list(outcome.output)))
                log.info("process %s succeeded", self.process.processid)
                return "succeeded"
            self.failure_reason = outcome.reason
            self._close_failed(list(outcome.errors) + ship_errors(self.shipper))
            log.info("process %s failed: %s", self.process.processid, "; ".join(outcome.errors))
            return "failed"
        except (InvalidRequest, Forbidden) as err:
            log.info("process %s could not be closed (%s): it was cancelled or re-queued", self.process.processid,
                     err.message)
            return "lost"

    def _close_failed(self, errors: list[str]) -> None:
        try:
            self._retrying(lambda: self.loop.client.close_failed(self.process.processid, errors, self.loop.prvkey))
        except (InvalidRequest, Forbidden) as err:
            log.info("process %s could not be failed (%s)", self.process.processid, err.message)

    def _retrying(self, call: Callable[[], Any]) -> Any:
        """Calls Colonies until it answers (or the operator stops): closing a process must not be lost."""
        delay = 1.0
        while True:
            try:
                return call()
            except ColoniesUnreachable:
                if self.stop.wait(delay):
                    raise
                delay = min(delay * 2, 15.0)
