"""The health endpoint the liveness and readiness probes ask, served from start to exit in the event loop.

It answers 200 whenever the event loop answers, leader or not: a stand-by instance is ready (a rolling update waits
for readiness, and only one instance of several ever leads). The body says whether this instance leads.
"""

from __future__ import annotations

import json
from typing import Callable
from urllib.parse import urlsplit

from aiohttp import web


async def serve_health(url: str, leading: Callable[[], bool]) -> web.AppRunner:
    """Serves GET on `url` (e.g. http://0.0.0.0:8080/healthz); close with `await runner.cleanup()`."""
    parts = urlsplit(url)
    if not parts.port:
        raise ValueError(f"the liveness URL {url!r} names no port")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text=json.dumps({"leader": leading()}), content_type="application/json")

    app = web.Application()
    app.router.add_get(parts.path or "/", health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port).start()
    return runner
