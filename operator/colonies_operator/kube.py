"""The Kubernetes side: a thin adapter over the official client, returning plain JSON dicts.

Reads use `_preload_content=False` and parse the JSON themselves: the pure core works on the API's own
camelCase objects, and parsing is much cheaper than building the client's model objects.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
from typing import Any, Callable, Iterator, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

from .names import LABEL_EXECUTOR_ID, LABEL_MANAGED_BY, MANAGED_BY, label_value

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "colonyos.io", "v1alpha1", "coloniesexecutors"
REQUEST_TIMEOUT = (5, 30)
T = TypeVar("T")
SINCE_MARGIN_SECONDS = 10


def load_config() -> kubernetes.client.ApiClient:
    """In a pod, the service account; elsewhere, KUBECONFIG or ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 64  # many log streams and runners share it
    return kubernetes.client.ApiClient(configuration)


def _json(response) -> Any:
    return json.loads(response.data)


def _none_if_absent(call: Callable[[], T]) -> T | None:
    """The call's result, or None when the object it reads or changes does not exist (404)."""
    try:
        return call()
    except ApiException as err:
        if err.status == 404:
            return None
        raise


class Kube:
    """Everything the operator asks of the Kubernetes API."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.batch = kubernetes.client.BatchV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)

    # -- Jobs and pods --------------------------------------------------------------------------

    def create_job(self, job: dict[str, Any]) -> bool:
        """Creates the Job; False if it already exists (created before a restart)."""
        try:
            self.batch.create_namespaced_job(job["metadata"]["namespace"], job, _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise

    def delete_job(self, namespace: str, name: str) -> None:
        """Deletes the Job and its pods now (no grace period to wait for)."""
        _none_if_absent(lambda: self.batch.delete_namespaced_job(
            name, namespace, propagation_policy="Background", grace_period_seconds=0,
            _request_timeout=REQUEST_TIMEOUT))
        # Background propagation leaves pod deletion to the garbage collector; do it here so the pods go now.
        _none_if_absent(lambda: self.core.delete_collection_namespaced_pod(
            namespace, label_selector=f"job-name={name}", grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT))

    def list_jobs(self, namespace: str, executor_id: str) -> list[dict[str, Any]]:
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_EXECUTOR_ID}={label_value(executor_id)}"
        response = self.batch.list_namespaced_job(namespace, label_selector=selector, _preload_content=False,
                                                  _request_timeout=REQUEST_TIMEOUT)
        return _json(response).get("items") or []

    def list_pods(self, namespace: str, executor_id: str) -> list[dict[str, Any]]:
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_EXECUTOR_ID}={label_value(executor_id)}"
        response = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False,
                                                 _request_timeout=REQUEST_TIMEOUT)
        return _json(response).get("items") or []

    def stream_log(self, namespace: str, pod: str, container: str, since_time: str | None) -> Iterator[bytes]:
        """The container's log with timestamps, following it until the container ends."""
        kwargs: dict[str, Any] = {"container": container, "follow": True, "timestamps": True,
                                  "_preload_content": False, "_request_timeout": (5, 300)}
        if since_time:
            # The Python client offers sinceSeconds only. Ask from a little before the last line read (margin
            # for clock skew with the node); the caller drops what it has already seen.
            last = dt.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
            age = (dt.datetime.now(dt.timezone.utc) - last).total_seconds()
            kwargs["since_seconds"] = max(1, math.ceil(age) + SINCE_MARGIN_SECONDS)
        response = self.core.read_namespaced_pod_log(pod, namespace, **kwargs)
        if response.status != 200:
            # Without preloading the client does not raise: an API server that is still starting answers
            # with an error Status, which must not pass for log lines.
            body = response.data[:300]
            response.release_conn()
            raise ApiException(status=response.status, reason=body.decode("utf-8", "replace"))
        try:
            yield from response.stream(64 * 1024, decode_content=False)
        finally:
            response.release_conn()

    # -- Secrets and ConfigMaps -------------------------------------------------------------------

    def read_secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value, or None if the Secret or key is missing."""
        secret = _none_if_absent(lambda: self.core.read_namespaced_secret(name, namespace,
                                                                         _request_timeout=REQUEST_TIMEOUT))
        data = (secret.data if secret else None) or {}
        return base64.b64decode(data[key]).decode("utf-8").strip() if key in data else None

    def read_configmap_value(self, namespace: str, name: str, key: str) -> str | None:
        """The value, or None if the ConfigMap or key is missing."""
        configmap = _none_if_absent(lambda: self.core.read_namespaced_config_map(name, namespace,
                                                                                _request_timeout=REQUEST_TIMEOUT))
        return ((configmap.data if configmap else None) or {}).get(key)

    def create_secret(self, namespace: str, name: str, data: dict[str, str], owner: dict[str, Any] | None,
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
            self.core.create_namespaced_secret(namespace, body, _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise

    # -- the ColoniesExecutor resource -----------------------------------------------------------

    def patch_executor_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        # A resource that is gone has nothing to report on.
        _none_if_absent(lambda: self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _request_timeout=REQUEST_TIMEOUT))
