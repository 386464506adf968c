"""The list+watch view of Jobs and pods: synced only once a watch is open on a fresh list, and a list after a
broken watch tells of every object that went meanwhile. Against a scripted API server, on virtual time."""

from __future__ import annotations

import asyncio
from typing import Any

from colonies_operator.kube.api import KubeError
from colonies_operator.kube.cache import ClusterView, Reflector
from tests.unit.virtual_time import run_virtual


def job(name: str, version: str = "1", **status: Any) -> dict:
    return {"metadata": {"name": name, "resourceVersion": version, "managedFields": [{"big": "x"}],
                         "labels": {"colonyos.io/executor-id": "e"}},
            "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}, "status": status}


class ScriptedApi:
    """Lists answer from `lists` in turn; each watch first waits for `open_watch`, then yields what is put in its
    queue (an exception put there ends the watch with it)."""

    def __init__(self, *lists: list[dict]) -> None:
        self.lists = list(lists)
        self.listed = 0
        self.open_watch = asyncio.Event()
        self.events: asyncio.Queue = asyncio.Queue()

    async def list(self, path, *, label_selector="", field_selector="", resource=""):
        self.listed += 1
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, str(self.listed)

    async def watch(self, path, version, *, label_selector="", field_selector="", resource=""):
        await self.open_watch.wait()
        yield "OPENED", {}
        while True:
            event = await self.events.get()
            if isinstance(event, Exception):
                raise event
            yield event


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, str]] = []  # (kind, name or None when gone, name of last)

    def __call__(self, kind, obj, last) -> None:
        self.events.append((kind, obj["metadata"]["name"] if obj else None, last["metadata"]["name"]))


def test_the_view_is_unsynced_until_the_watch_opens_then_tells_of_every_object():
    async def main():
        api, heard = ScriptedApi([job("a"), job("b")]), Heard()
        reflector = Reflector(api, "ns", "jobs", heard)
        reflector.start()
        await asyncio.sleep(1)
        assert api.listed == 1 and not reflector.synced and heard.events == []
        api.open_watch.set()
        await asyncio.sleep(1)
        assert reflector.synced and sorted(heard.events) == [("jobs", "a", "a"), ("jobs", "b", "b")]
        await reflector.stop()
    run_virtual(main())


def test_what_the_view_keeps_of_a_job_is_its_metadata_without_managed_fields_and_its_status():
    async def main():
        api = ScriptedApi([job("a", active=1)])
        api.open_watch.set()
        reflector = Reflector(api, "ns", "jobs", Heard())
        reflector.start()
        await asyncio.sleep(1)
        kept = reflector.objects["a"]
        assert set(kept) == {"metadata", "status"} and "managedFields" not in kept["metadata"]
        assert kept["status"] == {"active": 1}
        await reflector.stop()
    run_virtual(main())


def test_a_relist_after_a_broken_watch_tells_of_the_objects_deleted_meanwhile():
    async def main():
        api, heard = ScriptedApi([job("a"), job("b")], [job("a", "7")]), Heard()
        api.open_watch.set()
        reflector = Reflector(api, "ns", "jobs", heard)
        reflector.start()
        await asyncio.sleep(1)
        heard.events.clear()
        await api.events.put(KubeError(410, "Expired", "too old resource version"))  # b deleted meanwhile
        await asyncio.sleep(1)
        assert api.listed == 2 and reflector.synced
        assert ("jobs", None, "b") in heard.events and ("jobs", "a", "a") in heard.events
        assert set(reflector.objects) == {"a"}
        await reflector.stop()
    run_virtual(main())


def test_a_failing_list_leaves_the_view_unsynced_with_the_problem_and_is_retried():
    async def main():
        forbidden = KubeError(403, "Forbidden", 'jobs.batch is forbidden')
        api = ScriptedApi(forbidden, forbidden, [job("a")])
        api.open_watch.set()
        reflector = Reflector(api, "ns", "jobs", Heard())
        reflector.start()
        await asyncio.sleep(0.1)
        assert not reflector.synced and reflector.problem is forbidden
        await asyncio.sleep(5)  # backoff: 0.5 s, then 1 s
        assert api.listed == 3 and reflector.synced and reflector.problem is None
        await reflector.stop()
    run_virtual(main())


def test_watch_events_update_the_view_and_tell_the_listener():
    async def main():
        api, heard = ScriptedApi([job("a")]), Heard()
        api.open_watch.set()
        reflector = Reflector(api, "ns", "jobs", heard)
        reflector.start()
        await asyncio.sleep(1)
        heard.events.clear()
        await api.events.put(("ADDED", job("b", "2")))
        await api.events.put(("MODIFIED", job("a", "3", succeeded=1)))
        await api.events.put(("DELETED", job("b", "4")))
        await asyncio.sleep(1)
        assert heard.events == [("jobs", "b", "b"), ("jobs", "a", "a"), ("jobs", None, "b")]
        assert set(reflector.objects) == {"a"} and reflector.objects["a"]["status"] == {"succeeded": 1}
        await reflector.stop()
    run_virtual(main())


def test_the_cluster_view_routes_events_to_the_executor_that_owns_the_job_and_groups_pods_by_job():
    async def main():
        api = ScriptedApi([job("colonies-x-0")], [{"metadata": {
            "name": "colonies-x-0-abc", "labels": {"colonyos.io/executor-id": "e",
                                                   "batch.kubernetes.io/job-name": "colonies-x-0"}}, "status": {}}])
        api.open_watch.set()
        view, routed = ClusterView(api), []
        view.subscribe("e", lambda namespace, kind, obj, last: routed.append((namespace, kind)))
        view.use("ns")
        assert await view.wait_synced("ns", 5)
        assert sorted(routed) == [("ns", "jobs"), ("ns", "pods")]
        assert [p["metadata"]["name"] for p in view.pods("ns", "colonies-x-0")] == ["colonies-x-0-abc"]
        await view.close()
    run_virtual(main())


class QuietApi:
    """Lists nothing; each watch opens and stays open."""

    async def list(self, path, *, label_selector="", field_selector="", resource=""):
        return [], "1"

    async def watch(self, path, version, *, label_selector="", field_selector="", resource=""):
        yield "OPENED", {}
        await asyncio.Event().wait()


def test_a_namespace_used_again_while_it_is_being_released_keeps_both_its_reflectors():
    async def main():
        view = ClusterView(QuietApi())
        view.use("ns")
        assert await view.wait_synced("ns", 5)
        releasing = asyncio.ensure_future(view.release("ns"))  # its last attempt was dropped ...
        await asyncio.sleep(0)  # ... and the release waits for a reflector to stop
        view.use("ns")  # meanwhile a new attempt there is taken on
        await releasing
        assert await view.wait_synced("ns", 5), "the Jobs and pods of the namespace are watched"
        await view.close()
    run_virtual(main())
