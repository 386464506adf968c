"""Log streams and watches of any line length the API server sends, against a small HTTP server on loopback that
answers as the API server does (aiohttp's own line reader refuses lines over 512 KiB)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from colonies_operator.kube.api import KubeApi
from colonies_operator.kube.cache import Reflector

BIG = 1024 * 1024 + 17  # over aiohttp's limit, over a piece


def big_job(name: str, version: str) -> dict:
    # A Job near the size cap: a long command (the Job's spec is what makes it big).
    return {"metadata": {"name": name, "resourceVersion": version, "labels": {"colonyos.io/executor-id": "e"}},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "command": ["sh", "-c", "x" * BIG]}]}}},
            "status": {"active": 1}}


async def serve(routes: web.RouteTableDef):
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, KubeApi(f"http://127.0.0.1:{port}", ssl_context=False)


def test_a_log_line_of_a_mebibyte_is_read_in_pieces_and_the_lines_after_it_too():
    routes = web.RouteTableDef()
    body = (b"2026-01-01T00:00:01.000000000Z before\n" + b"2026-01-01T00:00:02.000000000Z " + b"y" * BIG + b"\n"
            + b"2026-01-01T00:00:03.000000000Z after\n")

    @routes.get("/api/v1/namespaces/ns/pods/p/log")
    async def log(request):
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(body), 10_000):
            await response.write(body[start:start + 10_000])
        return response

    async def main():
        runner, api = await serve(routes)
        try:
            return [piece async for piece in api.stream_log("ns", "p", "main", None)]
        finally:
            await api.close()
            await runner.cleanup()
    pieces = asyncio.run(main())
    assert b"".join(pieces) == body
    assert all(len(p) <= 512 * 1024 for p in pieces) and pieces[-1].endswith(b"after\n")


def test_a_job_event_over_aiohttps_line_limit_keeps_the_view_synced_without_listing_again():
    routes = web.RouteTableDef()
    lists, closing = [], asyncio.Event()

    @routes.get("/apis/batch/v1/namespaces/ns/jobs")
    async def jobs(request):
        if request.query.get("watch") != "true":
            lists.append(1)
            return web.json_response({"items": [], "metadata": {"resourceVersion": "1"}})
        response = web.StreamResponse()
        await response.prepare(request)
        if len(lists) == 1:
            for name, version in (("big", "2"), ("small", "3")):
                event = {"type": "ADDED", "object": big_job(name, version) if name == "big" else
                         {"metadata": {"name": name, "resourceVersion": version}}}
                await response.write(json.dumps(event).encode() + b"\n")
        await closing.wait()  # the watch stays open
        return response

    async def main():
        runner, api = await serve(routes)
        heard, small = [], asyncio.Event()

        def listener(kind, obj, last):
            heard.append(last["metadata"]["name"])
            if heard[-1] == "small":
                small.set()
        reflector = Reflector(api, "ns", "jobs", listener)
        reflector.start()
        try:
            await asyncio.wait_for(small.wait(), 20)
            return dict(reflector.objects), reflector.synced, len(lists), heard
        finally:
            closing.set()
            await reflector.stop()
            await api.close()
            await runner.cleanup()
    objects, synced, listed, heard = asyncio.run(main())
    assert set(objects) == {"big", "small"} and synced and listed == 1, (set(objects), synced, listed)
    assert heard == ["big", "small"]
