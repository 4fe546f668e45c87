"""The floor for the cached path: bare.py plus the duties every proxied request owes.

Usage: python bench/floor.py PORT BODY_FILE KEY REQUEST_FILE AUDIT_FILE [--reuse-port]
(--reuse-port: several of them share the port, as `serve --workers N` does.)

Per request, each as plainly as Python and aiohttp allow: the key checked by a keyed BLAKE2b
tag, the body read and looked up among answers already rendered, a token taken from the
key's bucket, the proxy's three headers, an audit line (msgspec) and an access line, written
once per turn of the loop, and the request counted and timed. Nothing else: no admission
limits, no policy, no envelope. What the proxy spends above this is its own; what this
spends above bare.py, any proxy with these duties spends.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import msgspec
from aiohttp import web

_BOUNDS = [0.0005 * 2**n for n in range(14)]


class _Line(msgspec.Struct):
    """An audit line's fields, as the proxy's trail writes them."""

    ts: str
    consumer: str
    route: str
    status: int
    outcome: str
    schedules: list[str]
    upstream_calls: int


def main() -> None:
    """Serve POST /v1/availability: BODY_FILE's bytes for REQUEST_FILE's body with KEY."""
    port, body = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()
    key, request_body = sys.argv[3], Path(sys.argv[4]).read_bytes()
    with Path(sys.argv[5]).open("ab") as audit:
        web.run_app(
            _app(body, key, request_body, audit),
            host="127.0.0.1",
            port=port,
            access_log=None,
            print=lambda _: None,
            reuse_port="--reuse-port" in sys.argv[6:] or None,
        )


def _app(body: bytes, key: str, request_body: bytes, audit: BinaryIO) -> web.Application:
    """The floor's one route."""
    secret = os.urandom(32)

    def tag(authorization: str) -> bytes:
        return hashlib.blake2b(authorization.encode(), key=secret, digest_size=16).digest()

    consumers = {tag(f"Bearer {key}"): "bench"}
    answers = {("bench", request_body): body}
    buckets = {"bench": [1e9, time.monotonic()]}
    counts: dict[tuple[str, str, int], int] = {}
    histogram = [0] * (len(_BOUNDS) + 1)
    encode = msgspec.json.Encoder().encode
    access = sys.stderr
    pending: list[tuple[str, str, float]] = []
    pseudonyms = ["a" * 22, "b" * 22, "c" * 22]

    def flush() -> None:
        # One time for every line of the turn, as the proxy's trail and log write them.
        stamp = datetime.now(UTC).isoformat()
        audit.write(
            b"".join(
                encode(_Line(stamp, consumer, route, 200, "ok", pseudonyms, 0)) + b"\n"
                for consumer, route, _ in pending
            )
        )
        audit.flush()
        access.write(
            "".join(
                f"{stamp} INFO proxy.access {route} 200 {seconds * 1e3:.1f}ms\n"
                for _, route, seconds in pending
            )
        )
        access.flush()
        pending.clear()

    async def handler(request: web.Request) -> web.Response:
        started = time.perf_counter()
        consumer = consumers.get(tag(request.headers.get("Authorization", "")))
        if consumer is None:
            raise web.HTTPUnauthorized()
        answer = answers.get((consumer, await request.read()))
        if answer is None:
            raise web.HTTPNotFound()
        bucket, now = buckets[consumer], time.monotonic()
        bucket[0], bucket[1] = min(1e9, bucket[0] + now - bucket[1]) - 1, now
        response = web.Response(
            body=answer,
            content_type="application/json",
            headers={
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Server": "freebusy-proxy",
            },
        )
        if not pending:
            asyncio.get_running_loop().call_soon(flush)
        seconds = time.perf_counter() - started
        pending.append((consumer, "POST /v1/availability", seconds))
        route = ("/v1/availability", "POST", 200)
        counts[route] = counts.get(route, 0) + 1
        histogram[bisect.bisect_left(_BOUNDS, seconds)] += 1
        return response

    app = web.Application()
    app.router.add_post("/v1/availability", handler)
    return app


if __name__ == "__main__":
    main()
