"""The Kubernetes side: a thin asyncio adapter over the API server's REST interface (aiohttp).

Why not the official client: its calls block a thread each, and a log stream or a watch holds one for its
whole life, so the operator's threads would grow with its work. Here every request, watch and log stream is
a coroutine in kopf's event loop. Objects stay the API's own camelCase JSON dicts, which the pure core reads.
Credentials come from the kopf adapters (how kopf logged in: the pod's service account, or a kubeconfig).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
import logging
import ssl
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp

from ..core.loglines import PIECE_BYTES, LineSplitter
from ..core.names import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=5)
WATCH_TIMEOUT_SECONDS = 290  # the server ends each watch; the reflector re-opens it from its resourceVersion
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
TOKEN_REREAD_SECONDS = 60  # projected tokens are rotated by the kubelet; re-read them often


class KubeError(Exception):
    """The API server refused a request (`status` is its HTTP code), or could not be reached (`status` None)."""

    def __init__(self, status: int | None, reason: str, message: str = "") -> None:
        self.status, self.reason, self.message = status, reason, message
        super().__init__(f"{status or 'unreachable'} {reason}: {message}" if message else f"{status} {reason}")

    @property
    def transient(self) -> bool:
        """Worth retrying as it is: unreachable, throttled, or a server-side failure."""
        return self.status is None or self.status == 429 or self.status >= 500


class KubeApi:
    """Every request the operator makes of the API server."""

    def __init__(self, host: str, *, ssl_context: ssl.SSLContext | bool, headers: dict[str, str] | None = None,
                 token_file: Path | None = None, max_connections: int = 512,
                 on_request: Callable[[str, str], None] | None = None) -> None:
        self.host = host.rstrip("/")
        self._ssl = ssl_context
        self._auth_headers = dict(headers or {})
        self._token_file = token_file  # re-read now and then: the kubelet rotates projected tokens
        self._token_read_at = 0.0
        self._max_connections = max_connections
        self._on_request = on_request  # told of every request, watch and log stream: (verb, resource)
        self._session: aiohttp.ClientSession | None = None
        # The API server's clock minus this machine's, from the Date of its replies: timestamps the API server
        # writes (creationTimestamp, a condition's lastTransitionTime) are compared with its now, not this machine's
        # (an operator outside the cluster may run minutes off).
        self._clock_offset = 0.0

    # -- the API server's clock ----------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The API server's notion of now, within about a second."""
        return dt.datetime.fromtimestamp(time.time() + self._clock_offset, dt.timezone.utc)

    def _note_date(self, date: str | None) -> None:
        try:
            server = email.utils.parsedate_to_datetime(date or "")
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            return
        # Date has whole seconds: the server's time is on average half a second past it. A change within the
        # second's precision is noise.
        offset = server.timestamp() + 0.5 - time.time()
        if abs(offset - self._clock_offset) > 1.0:
            self._clock_offset = offset

    # -- transport ---------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self._token_file and time.monotonic() - self._token_read_at > TOKEN_REREAD_SECONDS:
            try:
                self._auth_headers = {"Authorization": f"Bearer {self._token_file.read_text().strip()}"}
                self._token_read_at = time.monotonic()
            except OSError as err:
                log.warning("cannot read the service account token: %s", err)
        return dict(self._auth_headers)

    def _told(self, verb: str, resource: str) -> None:
        if self._on_request:
            self._on_request(verb, resource)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                      content_type: str = "application/json", resource: str = "") -> Any:
        """One request; the decoded JSON reply (None for 404 when `method` is GET or DELETE is not special:
        callers decide), or KubeError."""
        self._told(method.lower(), resource or _resource_of(path))
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        try:
            async with self.session.request(method, self.host + path, params=_params(params), data=data,
                                            headers=headers, timeout=REQUEST_TIMEOUT) as response:
                self._note_date(response.headers.get("Date"))
                text = await response.text()
                if response.status >= 400:
                    raise _error(response.status, text)
                return json.loads(text) if text else None
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            raise KubeError(None, type(err).__name__, str(err) or "no answer") from None

    async def _absent_is_none(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self.request(method, path, **kwargs)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    async def list(self, path: str, *, label_selector: str = "", field_selector: str = "",
                   resource: str = "") -> tuple[list[dict[str, Any]], str]:
        """Every object (paged), and the list's resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 500, "labelSelector": label_selector, "fieldSelector": field_selector}
        while True:
            reply = await self.request("GET", path, params=params, resource=resource)
            items.extend(reply.get("items") or [])
            meta = reply.get("metadata") or {}
            if not meta.get("continue"):
                return items, meta.get("resourceVersion", "")
            params["continue"] = meta["continue"]

    async def watch(self, path: str, resource_version: str, *, label_selector: str = "", field_selector: str = "",
                    resource: str = "") -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events from `resource_version` until the server ends the watch, the first being
        ("OPENED", {}) once the server has accepted it. A 410 (history compacted) raises KubeError(410): list
        again."""
        self._told("watch", resource or _resource_of(path))
        params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": WATCH_TIMEOUT_SECONDS, "labelSelector": label_selector,
                  "fieldSelector": field_selector}
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=WATCH_TIMEOUT_SECONDS + 30)
        try:
            async with self.session.get(self.host + path, params=_params(params), headers=self._headers(),
                                        timeout=timeout) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.text())
                yield "OPENED", {}
                # An event is one line of any length the API server holds (aiohttp's own line reader refuses
                # lines over 512 KiB: a big Job would break every watch of its namespace).
                async for line in _lines(response.content, LineSplitter()):
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise KubeError(status.get("code") or 500, status.get("reason") or "WatchError",
                                        status.get("message") or "")
                    yield event["type"], event["object"]
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            raise KubeError(None, type(err).__name__, str(err) or "watch broke") from None

    # -- Jobs and pods -------------------------------------------------------------------------------

    async def create_job(self, job: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any] | None:
        """Creates the Job; None if one of that name exists already (created before a restart)."""
        namespace = job["metadata"]["namespace"]
        try:
            return await self.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job,
                                      params={"dryRun": "All"} if dry_run else None, resource="jobs")
        except KubeError as err:
            if err.status == 409 and err.reason == "AlreadyExists":
                return None
            raise

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._absent_is_none("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                                          resource="jobs")

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """A strategic merge patch; None when the Job is gone."""
        return await self._absent_is_none("PATCH", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", body=patch,
                                          content_type="application/strategic-merge-patch+json", resource="jobs")

    async def delete_job(self, namespace: str, name: str) -> None:
        """Deletes the Job and its pods now (no grace period): nothing of it runs on."""
        await self._absent_is_none("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                                   body={"propagationPolicy": "Background", "gracePeriodSeconds": 0},
                                   resource="jobs")
        # Background propagation leaves the pods to the garbage collector; remove them here so they stop now.
        await self._absent_is_none("DELETE", f"/api/v1/namespaces/{namespace}/pods",
                                   params={"labelSelector": f"job-name={name}", "gracePeriodSeconds": 0},
                                   resource="pods")

    async def delete_jobs(self, namespace: str, label_selector: str) -> None:
        """Deletes every Job the selector matches, and their pods, with one request each."""
        await self._absent_is_none("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs",
                                   params={"labelSelector": label_selector}, resource="jobs",
                                   body={"propagationPolicy": "Background", "gracePeriodSeconds": 0})
        await self._absent_is_none("DELETE", f"/api/v1/namespaces/{namespace}/pods",
                                   params={"labelSelector": label_selector, "gracePeriodSeconds": 0},
                                   resource="pods")

    async def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        items, _ = await self.list(f"/apis/batch/v1/namespaces/{namespace}/jobs", label_selector=label_selector,
                                   resource="jobs")
        return items

    async def list_jobs_everywhere(self, label_selector: str) -> list[dict[str, Any]]:
        items, _ = await self.list("/apis/batch/v1/jobs", label_selector=label_selector, resource="jobs")
        return items

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._absent_is_none("GET", f"/api/v1/namespaces/{namespace}/pods/{name}", resource="pods")

    async def list_pods_of_job(self, namespace: str, job: str) -> list[dict[str, Any]]:
        items, _ = await self.list(f"/api/v1/namespaces/{namespace}/pods", label_selector=f"job-name={job}",
                                   resource="pods")
        return items

    async def stream_log(self, namespace: str, pod: str, container: str, since_time: str | None, *,
                         follow: bool = True) -> AsyncIterator[bytes]:
        """The container's log with timestamps, following it until the container ends (`follow`) or up to what
        the kubelet holds now: each line ending with b"\\n", a line longer than PIECE_BYTES in pieces of that
        size (the first with the timestamp, every one but the last without b"\\n")."""
        params = {"container": container, "follow": "true" if follow else "false", "timestamps": "true"}
        if since_time:
            params["sinceTime"] = since_time
        self._told("get", "pods/log")
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=None)
        try:
            async with self.session.get(f"{self.host}/api/v1/namespaces/{namespace}/pods/{pod}/log", params=params,
                                        headers=self._headers(), timeout=timeout) as response:
                if response.status >= 400:
                    # An error Status must never pass for log lines.
                    raise _error(response.status, await response.text())
                async for piece in _lines(response.content, LineSplitter(PIECE_BYTES)):
                    yield piece
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            raise KubeError(None, type(err).__name__, str(err) or "log stream broke") from None

    # -- Secrets, ConfigMaps, namespaces ---------------------------------------------------------------

    async def read_secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value, or None if the Secret or key is missing."""
        secret = await self._absent_is_none("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}",
                                            resource="secrets")
        data = (secret or {}).get("data") or {}
        return base64.b64decode(data[key]).decode("utf-8").strip() if key in data else None

    async def read_configmap_value(self, namespace: str, name: str, key: str) -> str | None:
        configmap = await self._absent_is_none("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}",
                                               resource="configmaps")
        return ((configmap or {}).get("data") or {}).get(key)

    async def create_secret(self, namespace: str, name: str, data: dict[str, str], owner: dict[str, Any] | None,
                            labels: dict[str, str]) -> bool:
        """Creates an Opaque Secret; False if one with that name exists already."""
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        try:
            await self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body, resource="secrets")
            return True
        except KubeError as err:
            if err.status == 409:
                return False
            raise

    # -- the leader election Lease ---------------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._absent_is_none("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                                          resource="leases")

    async def create_lease(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Creates the Lease; KubeError 409 when another instance created it first."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        return await self.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body=body,
                                  resource="leases")

    async def replace_lease(self, lease: dict[str, Any]) -> dict[str, Any]:
        """Writes the Lease if nobody wrote it since it was read (its resourceVersion); KubeError 409 otherwise."""
        meta = lease["metadata"]
        return await self.request("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{meta['namespace']}/leases/"
                                  f"{meta['name']}", body=lease, resource="leases")

    # -- the ColoniesExecutor resource ---------------------------------------------------------------

    def _executors(self, namespace: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"

    async def get_executor_resource(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._absent_is_none("GET", f"{self._executors(namespace)}/{name}", resource=PLURAL)

    async def list_executor_resources(self, namespace: str) -> list[dict[str, Any]]:
        items, _ = await self.list(self._executors(namespace), resource=PLURAL)
        return items

    async def delete_executor_resource(self, namespace: str, name: str) -> None:
        await self._absent_is_none("DELETE", f"{self._executors(namespace)}/{name}", resource=PLURAL)

    async def set_executor_finalizers(self, resource: dict[str, Any], finalizers: list[str]) -> None:
        """Replaces the resource's finalizers, if nobody changed it since it was read (KubeError 409 otherwise)."""
        meta = resource["metadata"]
        await self._absent_is_none("PATCH", f"{self._executors(meta['namespace'])}/{meta['name']}",
                                   body={"metadata": {"finalizers": finalizers,
                                                      "resourceVersion": meta["resourceVersion"]}},
                                   content_type="application/merge-patch+json", resource=PLURAL)

    async def patch_executor_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        # A resource that is gone has nothing to report on.
        await self._absent_is_none("PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
                                   body={"status": status}, content_type="application/merge-patch+json",
                                   resource=PLURAL)


async def _lines(content: aiohttp.StreamReader, splitter: LineSplitter) -> AsyncIterator[bytes]:
    """The lines (or pieces) of a response body as they arrive; a last line without b"\\n" ends with one."""
    async for chunk in content.iter_any():
        for line in splitter.feed(chunk):
            yield line
    rest = splitter.end()
    if rest is not None:
        yield rest + b"\n"


def _params(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v not in ("", None)}


def _resource_of(path: str) -> str:
    """The resource a path names, for metrics: /api/v1/namespaces/x/pods/y -> pods."""
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        parts = parts[parts.index("namespaces") + 2:]
    elif parts and parts[0] == "api":
        parts = parts[2:]
    elif parts and parts[0] == "apis":
        parts = parts[3:]
    return parts[0] if parts else "other"


def _error(status: int, text: str) -> KubeError:
    try:
        body = json.loads(text)
        return KubeError(status, body.get("reason") or "", body.get("message") or text[:300])
    except ValueError:
        return KubeError(status, "", text[:300])
