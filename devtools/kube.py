"""Kubernetes clean-up the tests and the benchmarks share: namespaces deleted without hanging on finalizers."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException

from devtools.waiting import wait_for


def delete_namespace(api: client.ApiClient, name: str, timeout: float = 120, wait: bool = True) -> None:
    """Deletes a namespace: Jobs and Pods first, Pods without a grace period (waiting until none is left),
    then the namespace itself. Finalizers on Pods, Jobs and namespaced custom resources (e.g. kopf's, when
    no operator runs any more) are removed, so this cannot hang on them. With `wait`, returns once the
    namespace is gone."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    for call in (lambda: batch.delete_collection_namespaced_job(name, propagation_policy="Background"),
                 lambda: core.delete_collection_namespaced_pod(name, grace_period_seconds=0),
                 lambda: core.delete_namespace(name, grace_period_seconds=0)):
        try:
            call()
        except ApiException as err:
            if err.status != 404:
                raise

    def no_pods() -> bool:
        strip_finalizers(api, name)
        return not core.list_namespaced_pod(name).items

    wait_for(no_pods, timeout=timeout, interval=0.2, description=f"the pods of namespace {name} to be deleted")
    if not wait:
        return

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        strip_finalizers(api, name)
        return False

    wait_for(gone, timeout=timeout, interval=0.5, description=f"namespace {name} to be deleted")


def strip_finalizers(api: client.ApiClient, namespace: str) -> None:
    """Removes the finalizers of every Pod, Job and namespaced custom resource in `namespace`."""
    core, batch, custom = client.CoreV1Api(api), client.BatchV1Api(api), client.CustomObjectsApi(api)
    remove = [{"op": "remove", "path": "/metadata/finalizers"}]

    def ignore_gone(call) -> None:
        try:
            call()
        except ApiException as err:
            if err.status not in (404, 409, 422):  # already gone, changed, or finalizers already removed
                raise

    for pod in core.list_namespaced_pod(namespace).items:
        if pod.metadata.finalizers:
            ignore_gone(lambda: core.patch_namespaced_pod(pod.metadata.name, namespace, remove))
    for job in batch.list_namespaced_job(namespace).items:
        if job.metadata.finalizers:
            ignore_gone(lambda: batch.patch_namespaced_job(job.metadata.name, namespace, remove))
    for crd in client.ApiextensionsV1Api(api).list_custom_resource_definition().items:
        if crd.spec.scope != "Namespaced":
            continue
        group, plural = crd.spec.group, crd.spec.names.plural
        version = next((v.name for v in crd.spec.versions if v.storage), crd.spec.versions[0].name)
        try:
            objects = custom.list_namespaced_custom_object(group, version, namespace, plural)["items"]
        except ApiException as err:
            if err.status == 404:
                continue
            raise
        for obj in objects:
            if obj["metadata"].get("finalizers"):
                # A merge patch: the client sends custom-object patches as merge patches, not JSON patches.
                ignore_gone(lambda: custom.patch_namespaced_custom_object(
                    group, version, namespace, plural, obj["metadata"]["name"], {"metadata": {"finalizers": None}}))
