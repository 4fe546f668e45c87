"""HTTP-level hardening: parser limits for the server, and headers every response carries."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.logs import http_logger
from proxy.settings import ServerSettings


def server_kwargs(server: ServerSettings) -> dict[str, Any]:
    """Keyword arguments for aiohttp's request handler (AppRunner, TestServer, handler_args).

    aiohttp enforces these while parsing, before any of our code runs: an over-long request
    line (query string included), header or header count is answered by aiohttp itself
    with a plain-text 400. Its log line about it goes to a redacted logger.
    """
    return {
        "max_line_size": server.max_line_size,
        "max_field_size": server.max_field_size,
        "max_headers": server.max_headers,
        "logger": http_logger(),
    }


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Nothing a proxy answers may be cached or sniffed as another content type."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
