"""The floor for the cold path: a bare aiohttp pass-through making the call the proxy makes.

Usage: python bench/passthrough.py PORT GRAPH_BASE_URL CA_FILE DAYS
(the bearer token in FREEBUSY_BENCH_TOKEN)

Per request, as plainly as Python and aiohttp allow: the body read, one getSchedule call for
the first address over DAYS days from the asked start (the block the proxy fetches on a miss),
its answer read, and status, start and end of each item sent back. Nothing else: no key, no
limits, no cache, no audit or log line. What the proxy adds above this on a miss is its own;
what this adds above calling Graph directly, any proxy of getSchedule adds.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from proxy.core.timefmt import format_graph_local
from proxy.sources.tls import client_ssl_context

TOKEN_ENV = "FREEBUSY_BENCH_TOKEN"  # noqa: S105 (a variable name)
_SESSION = web.AppKey("session", aiohttp.ClientSession)


def main() -> None:
    """Serve POST /v1/availability by one getSchedule call per request."""
    port, base, ca_file, days = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    token = os.environ[TOKEN_ENV]
    decode, encode = msgspec.json.decode, msgspec.json.encode

    async def session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(ca_file))
        async with aiohttp.ClientSession(connector=connector) as opened:
            app[_SESSION] = opened
            yield

    async def handler(request: web.Request) -> web.Response:
        question = decode(await request.read())
        start = datetime.fromisoformat(question["start"])
        address = question["schedules"][0]
        call = {
            "schedules": [address],
            "startTime": {"dateTime": format_graph_local(start), "timeZone": "UTC"},
            "endTime": {
                "dateTime": format_graph_local(start + timedelta(days=days)),
                "timeZone": "UTC",
            },
            "availabilityViewInterval": 1440,
        }
        async with request.app[_SESSION].post(
            f"{base}/users/{address}/calendar/getSchedule",
            data=encode(call),
            headers={
                "Authorization": f"Bearer {token}",
                "Prefer": 'outlook.timezone="UTC"',
                "Content-Type": "application/json",
            },
        ) as resp:
            answer = decode(await resp.read())
        return web.Response(
            body=encode({"schedules": [_kept(entry) for entry in answer["value"]]}),
            content_type="application/json",
        )

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/availability", handler)
    app.router.add_get("/healthz", lambda _: _ok())
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda _: None)


async def _ok() -> web.Response:
    """The readiness answer server() waits for."""
    return web.Response(text="ok")


def _kept(entry: dict[str, Any]) -> dict[str, Any]:
    """One schedule's items: status, start and end only."""
    return {
        "schedule": entry["scheduleId"],
        "busy": [
            {"status": i["status"], "start": i["start"]["dateTime"], "end": i["end"]["dateTime"]}
            for i in entry.get("scheduleItems", ())
        ],
    }


if __name__ == "__main__":
    main()
