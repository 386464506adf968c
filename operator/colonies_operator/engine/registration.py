"""Who the operator is in Colonies for one ColoniesExecutor: the key, the executor, its functions.

The executor key is read from a Secret (an admin's, or one the operator created and owns), so a restarted
operator is the same executor: it never registers anew, which would re-queue its work (Colonies removes
the old registration's processes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
from pathlib import Path

from ..colonies import (
    ColoniesError,
    ColoniesUnreachable,
    Executor,
    ExecutorState,
    Forbidden,
    InvalidRequest,
    NotFound,
    ServerError,
    crypto,
)
from ..colonies.address import server_url
from ..colonies.client import AsyncColoniesClient
from ..colonies.wire import function_payload
from ..core.conditions import REACHABLE, REGISTERED, Problem
from ..core.config import ExecutorConfig, SecretKeyRef
from ..core.functions import sync_plan
from ..core.names import API_VERSION, KIND, LABEL_MANAGED_BY, MANAGED_BY, OWN_KEY_FIELD, own_key_secret
from ..kube.api import KubeApi
from . import metrics

log = logging.getLogger(__name__)

COLONIES_TIMEOUT_SECONDS = 30.0  # a Colonies reply slower than this is a failure (a long-poll assign waits longer)


@dataclasses.dataclass(frozen=True)
class Identity:
    """The registered executor: the client for its server, its key and id."""

    client: AsyncColoniesClient
    prvkey: str = dataclasses.field(repr=False)
    executor_id: str
    colony: str
    executor_name: str

    def __repr__(self) -> str:  # never the key
        return f"Identity({self.executor_name} {self.executor_id[:12]}… in {self.colony})"

    async def log(self, message: str) -> None:
        """A line in the executor's own Colonies log (`colonies log get -e <executor>`), for colony members
        without access to the cluster. Best effort: a line that cannot be sent is only logged here."""
        try:
            await self.client.add_executor_log(self.colony, self.executor_name, message.rstrip("\n") + "\n",
                                               self.prvkey)
        except ColoniesError as err:
            log.debug("executor %s: cannot add to its Colonies log (%s): %s", self.executor_name, err, message)


async def colonies_client_for(kube: KubeApi, config: ExecutorConfig, *,
                              read_timeout: float = COLONIES_TIMEOUT_SECONDS) -> AsyncColoniesClient:
    """A client for the resource's Colonies server, trusting its CA bundle when it names one; a reply slower than
    `read_timeout` seconds is taken for a failure."""
    server = config.server
    ca_file = None
    if server.tls and server.ca_bundle:
        ref = server.ca_bundle
        read = kube.read_secret_value if ref.kind == "Secret" else kube.read_configmap_value
        pem = await read(config.resource_namespace, ref.name, ref.key)
        if not pem:
            raise Problem(REACHABLE, "CABundleMissing", f"{ref.kind} {config.resource_namespace}/{ref.name} has no "
                          f"key {ref.key!r} with the CA bundle")
        # One file per distinct bundle, so reconnecting does not pile files up.
        path = Path(tempfile.gettempdir()) / f"colonies-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
        if not path.exists():
            path.write_text(pem)
        ca_file = str(path)
    return AsyncColoniesClient(server_url(server.host, server.port, server.tls, "/api"), ca_bundle=ca_file,
                               read_timeout=read_timeout, on_rpc=metrics.colonies_rpc)


async def connect(client: AsyncColoniesClient, config: ExecutorConfig) -> None:
    """Checks that the server answers, with a condition that says what to fix when it does not."""
    try:
        await client.version()
    except ColoniesUnreachable as err:
        reason = "TLSError" if "TLS" in err.message else "Unreachable"
        hint = ("check spec.server.tls and the CA bundle" if reason == "TLSError"
                else "check spec.server.host and port, and that the server runs")
        raise Problem(REACHABLE, reason, f"{err.message}; {hint}") from None
    except ColoniesError as err:
        hint = "does spec.server.tls match the server?" if not config.server.tls else "is this a Colonies server?"
        raise Problem(REACHABLE, "BadReply", f"{client.url} answered {err}; {hint}") from None


async def read_key(kube: KubeApi, namespace: str, ref: SecretKeyRef, what: str) -> str:
    value = await kube.read_secret_value(namespace, ref.name, ref.key)
    if not value:
        raise Problem(REGISTERED, "KeySecretMissing",
                      f"Secret {namespace}/{ref.name} has no key {ref.key!r} holding the {what}; create it: "
                      f"kubectl -n {namespace} create secret generic {ref.name} --from-literal={ref.key}=<key>")
    try:
        crypto.prvkey_to_id(value)
    except ValueError:
        raise Problem(REGISTERED, "InvalidKey", f"Secret {namespace}/{ref.name} key {ref.key!r} is not a Colonies "
                      "private key (64 hex characters)") from None
    return value


async def own_key(kube: KubeApi, namespace: str, name: str, uid: str) -> str:
    """The executor key this operator generated for the resource, kept in a Secret it owns."""
    secret_name = own_key_secret(name)
    value = await kube.read_secret_value(namespace, secret_name, OWN_KEY_FIELD)
    if value:
        return value
    owner = {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid, "controller": True,
             "blockOwnerDeletion": False}
    created = await kube.create_secret(namespace, secret_name, {OWN_KEY_FIELD: crypto.generate_prvkey()},
                                       owner if uid else None, {LABEL_MANAGED_BY: MANAGED_BY})
    value = await kube.read_secret_value(namespace, secret_name, OWN_KEY_FIELD)
    if not value:
        raise Problem(REGISTERED, "KeySecretMissing", f"Secret {namespace}/{secret_name} exists without key "
                      f"{OWN_KEY_FIELD!r}; delete it so the operator can create it")
    if created:
        log.info("executor %s/%s: created Secret %s for its executor key", namespace, name, secret_name)
    return value


async def find_registered(kube: KubeApi, client: AsyncColoniesClient, config: ExecutorConfig) -> Identity | None:
    """The executor as it is registered and approved, changing nothing (no key created, nothing registered): for a
    resource that may take no new work but may have work running. None when there is no such executor."""
    namespace = config.resource_namespace
    if config.executor_key:
        prvkey = await kube.read_secret_value(namespace, config.executor_key.name, config.executor_key.key)
    else:
        prvkey = await kube.read_secret_value(namespace, own_key_secret(config.resource_name), OWN_KEY_FIELD)
    try:
        executor_id = crypto.prvkey_to_id(prvkey or "")
    except ValueError:
        return None
    try:
        existing = await client.get_executor(config.colony_name, config.executor_name, prvkey)
    except (Forbidden, NotFound, ServerError):
        return None
    except ColoniesError as err:
        raise _transient(err) from None
    if existing.executorid != executor_id or existing.state != ExecutorState.APPROVED:
        return None
    return Identity(client, prvkey, executor_id, config.colony_name, config.executor_name)


async def register(kube: KubeApi, client: AsyncColoniesClient, config: ExecutorConfig, uid: str,
                   capabilities: dict | None = None) -> Identity:
    """Finds the executor by its key, registers and approves it when the operator may and must (in its
    location, with the cluster's capabilities when known), and makes its functions' registrations exactly the
    documented ones. Raises Problem with what to fix."""
    namespace = config.resource_namespace
    colony_prvkey = ""
    if config.executor_key:
        prvkey = await read_key(kube, namespace, config.executor_key, "executor private key")
    else:
        colony_prvkey = await read_key(kube, namespace, config.colony_key, "colony private key")
        prvkey = await own_key(kube, namespace, config.resource_name, uid)
    executor_id = crypto.prvkey_to_id(prvkey)
    try:
        existing: Executor | None = await client.get_executor(config.colony_name, config.executor_name, prvkey)
    except (Forbidden, NotFound):
        existing = None  # not a member: never registered, or removed
    except ServerError as err:
        if "nil" not in err.message:  # the server's "executor is nil": no executor of that name
            raise _transient(err) from None
        existing = None
    except ColoniesError as err:
        raise _transient(err) from None
    if existing and existing.executorid != executor_id:
        existing = None
    relocate = bool(existing and existing.state == ExecutorState.APPROVED
                    and (existing.locationname or "").lower() != config.location_name.lower())
    if config.executor_key:
        if not existing:
            raise Problem(REGISTERED, "NotRegistered",
                          f"the key in Secret {config.executor_key.name} is not an executor named "
                          f"{config.executor_name} in colony {config.colony_name}; register and approve it, "
                          "or give spec.credentials.colonyKeySecret instead")
        if existing.state != ExecutorState.APPROVED:
            raise Problem(REGISTERED, "NotApproved", f"executor {config.executor_name} is "
                          f"{ExecutorState(existing.state).name}; approve it: colonies executor approve --name "
                          f"{config.executor_name}")
        if relocate:
            raise Problem(REGISTERED, "LocationMismatch", f"executor {config.executor_name} is in location "
                          f"{existing.locationname or '(none)'!r}, spec.locationName says "
                          f"{config.location_name or '(none)'!r}; Colonies sets an executor's location only when "
                          "it is registered: register it again there, or change spec.locationName")
    else:
        registering = not existing or existing.state in (ExecutorState.UNREGISTERED, ExecutorState.REJECTED)
        try:
            if registering or relocate:
                # A location is set only at registration: moving re-registers, which hands the executor's
                # running processes back to the queue.
                await client.add_executor(Executor(executorid=executor_id, executorname=config.executor_name,
                                                   executortype=config.executor_type, colonyname=config.colony_name,
                                                   locationname=config.location_name,
                                                   capabilities=dict(capabilities or {})), colony_prvkey)
                log.info("executor %s/%s: registered %s in colony %s%s", namespace, config.resource_name,
                         config.executor_name, config.colony_name,
                         f", location {config.location_name}" if config.location_name else "")
            if registering or relocate or existing.state != ExecutorState.APPROVED:
                await client.approve_executor(config.colony_name, config.executor_name, colony_prvkey)
        except Forbidden as err:
            raise Problem(REGISTERED, "WrongColonyKey", f"the key in Secret {config.colony_key.name} is not the "
                          f"owner of colony {config.colony_name} ({err.message})") from None
        except InvalidRequest as err:
            raise Problem(REGISTERED, "RegistrationRefused", f"Colonies refused to register "
                          f"{config.executor_name}: {err.message}") from None
        except ColoniesError as err:
            raise _transient(err) from None
    try:
        # addfunction is not idempotent in Colonies: keep exactly one up-to-date, documented row per function.
        plan = sync_plan(await client.get_functions(config.colony_name, config.executor_name, prvkey),
                         config.functions, config.executor_type)
        for functionid in plan.remove:
            await client.remove_function(functionid, prvkey)
        for doc in plan.add:
            fun = function_payload(config.colony_name, config.executor_name, config.executor_type, doc.funcname,
                                   description=doc.description, args=doc.args)["fun"]
            await client.add_function(fun, prvkey)
        if capabilities is not None:
            await client.update_capabilities(config.colony_name, config.executor_name, capabilities, prvkey)
    except ColoniesError as err:
        raise _transient(err) from None
    identity = Identity(client, prvkey, executor_id, config.colony_name, config.executor_name)
    where = f" in location {config.location_name}" if config.location_name else ""
    if existing and not relocate and existing.state != ExecutorState.UNREGISTERED:
        await identity.log(f"colonies-operator: executor {config.executor_name} found again by its key "
                           f"(ColoniesExecutor {namespace}/{config.resource_name}){where}: carrying on its work")
    else:
        await identity.log(f"colonies-operator: registered executor {config.executor_name} "
                           f"({config.executor_type}){where} for ColoniesExecutor {namespace}/{config.resource_name}")
    return identity


def _transient(err: ColoniesError) -> Problem:
    if isinstance(err, ColoniesUnreachable):
        return Problem(REACHABLE, "Unreachable", f"{err.message}; retrying")
    return Problem(REACHABLE, "ServerError", f"Colonies answered {err}; retrying")
