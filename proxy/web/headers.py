"""HTTP-level hardening: parser limits for the server, and headers every response carries."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from aiohttp import web

from proxy.config.schema import ServerSettings
from proxy.core.errors import ProblemError
from proxy.observability.logs import http_logger


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


# Well under the parser's request-line limit, so an over-long query string is answered by us,
# as a problem document, rather than cut off by aiohttp's parser with plain text.
MAX_QUERY_LENGTH = 4096


def check_query_length(request: web.BaseRequest) -> None:
    """Refuse query strings longer than MAX_QUERY_LENGTH with 414 problem+json."""
    # The request target as sent, query string included: short, it needs no closer look.
    if len(request.raw_path) <= MAX_QUERY_LENGTH:
        return
    if len(request.rel_url.raw_query_string) > MAX_QUERY_LENGTH:
        raise ProblemError(
            f"the query string may be at most {MAX_QUERY_LENGTH} characters",
            code="uri_too_long",
            status=414,
        )


SERVER_HEADER = "freebusy-proxy"


def add_standard_headers(headers: MutableMapping[str, str]) -> None:
    """Every response is no-store and nosniff, and its banner names no framework or version."""
    # Nothing a proxy answers may be cached or sniffed as another content type; a version in
    # the banner only helps an attacker.
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers["Server"] = SERVER_HEADER
