"""The health endpoint answers whether this instance leads or stands by: a stand-by is Ready too (a rolling update
waits for readiness, and only one instance of several leads)."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp

from colonies_operator.engine.health import serve_health


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_health_endpoint_answers_leading_or_standing_by():
    async def main():
        leading = False
        url = f"http://127.0.0.1:{free_port()}/healthz"
        runner = await serve_health(url, lambda: leading)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as reply:
                    assert reply.status == 200 and json.loads(await reply.text()) == {"leader": False}
                leading = True
                async with session.get(url) as reply:
                    assert reply.status == 200 and json.loads(await reply.text()) == {"leader": True}
        finally:
            await runner.cleanup()
    asyncio.run(main())
