"""What every request and response of the proxy is held to: query length, standard headers."""

from __future__ import annotations

from collections.abc import MutableMapping

from aiohttp import web

from proxy.core.errors import Code, ProblemError

# Routes that are not consumer requests: probes, scrapes, and the pages people open and their
# static files would drown the audit trail (what the pages then ask is audited).
UNAUDITED_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/", "/console", "/view", "/static/{name}"}
)

# Well under the parser's request-line limit, so an over-long query string is answered by us,
# in the route's error shape, rather than cut off by aiohttp's parser with plain text.
MAX_QUERY_LENGTH = 4096
SERVER_HEADER = "freebusy-proxy"


def check_query_length(request: web.BaseRequest) -> None:
    """Refuse query strings longer than MAX_QUERY_LENGTH with 414."""
    # The request target as sent, query string included: short, it needs no closer look.
    if len(request.raw_path) <= MAX_QUERY_LENGTH:
        return
    if len(request.rel_url.raw_query_string) > MAX_QUERY_LENGTH:
        raise ProblemError(
            f"the query string may be at most {MAX_QUERY_LENGTH} characters",
            code=Code.URI_TOO_LONG,
            status=414,
        )


def add_standard_headers(headers: MutableMapping[str, str]) -> None:
    """Every response is no-store and nosniff, and its banner names no framework or version."""
    # Nothing a proxy answers may be cached or sniffed as another content type; a version in
    # the banner only helps an attacker.
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers["Server"] = SERVER_HEADER
