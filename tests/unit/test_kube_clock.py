"""The API server's notion of now, from the Date of its replies: an operator whose own clock is off (outside the
cluster) times pods against the cluster's clock. Against a local HTTP server standing in for the API server."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils

from aiohttp import web

from colonies_operator.kube.api import KubeApi


def test_now_is_the_api_servers_clock_within_a_second():
    async def main():
        behind = dt.timedelta(minutes=5)  # the cluster's clock; this machine's runs 5 minutes ahead of it

        async def answer(_: web.Request) -> web.Response:
            date = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) - behind, usegmt=True)
            return web.json_response({}, headers={"Date": date})

        app = web.Application()
        app.router.add_get("/version", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        kube = KubeApi(f"http://127.0.0.1:{port}", ssl_context=False)
        try:
            await kube.request("GET", "/version")
            off = kube.now() - (dt.datetime.now(dt.timezone.utc) - behind)
            assert abs(off.total_seconds()) <= 1.0, off
        finally:
            await kube.close()
            await runner.cleanup()
    asyncio.run(main())
