"""The baseline for the throughput figures: a bare aiohttp handler returning fixed bytes.

Usage: python bench/bare.py PORT BODY_FILE [--reuse-port]
(--reuse-port: several of them share the port, as `serve --workers N` does.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    """Serve POST /v1/availability with the bytes in BODY_FILE, as the proxy would send them."""
    port, body = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
        )

    app = web.Application()
    app.router.add_post("/v1/availability", handler)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=lambda _: None,
        reuse_port="--reuse-port" in sys.argv[3:] or None,
    )


if __name__ == "__main__":
    main()
