"""CORS: off by default; exact origins from [cors] allow_origins may call from a browser.

A few lines in the request envelope (``proxy.web.envelope``) rather than aiohttp-cors: the policy is
one allowlist for every route, and a preflight is answered by the envelope's fallback route,
which would otherwise answer the OPTIONS request with a 405.
"""

from __future__ import annotations

from collections.abc import Set

from aiohttp import web
from multidict import CIMultiDict

from proxy.config.schema import CorsSettings
from proxy.core.errors import Code, ProblemError
from proxy.web.problems import problem_response

# What a browser client may send and read; everything else stays hidden from scripts.
ALLOWED_REQUEST_HEADERS = frozenset({"authorization", "content-type"})
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate"


def preflight(
    request: web.Request, cors: CorsSettings, methods: Set[str]
) -> web.StreamResponse | None:
    """The answer to a CORS preflight for a path serving ``methods``; None for any other request.

    No methods: there is no such path, and the request gets its 404 as usual.
    """
    if not is_preflight(request) or not methods:
        return None
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in cors.allow_origins
    return _preflight(request, cors, allowed=allowed, methods=methods, origin=origin or "")


def is_preflight(request: web.Request) -> bool:
    """Whether the request is a CORS preflight (OPTIONS asking for a method)."""
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def expose(request: web.Request, cors: CorsSettings, headers: CIMultiDict[str]) -> None:
    """Mark a response (not a preflight's) readable by the request's origin if it is allowed."""
    # Behind a shared cache the answer differs by origin, allowed or not.
    headers.add("Vary", "Origin")
    origin = request.headers.get("Origin")
    if origin is not None and origin in cors.allow_origins:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


def _preflight(
    request: web.Request,
    cors: CorsSettings,
    *,
    allowed: bool,
    methods: Set[str],
    origin: str,
) -> web.StreamResponse:
    """204 with the grant for an allowed origin, method and headers; 403 problem otherwise."""
    method = request.headers["Access-Control-Request-Method"].strip().upper()
    asked = {
        name.strip().lower()
        for name in request.headers.get("Access-Control-Request-Headers", "").split(",")
        if name.strip()
    }
    if not allowed or method not in methods or not asked <= ALLOWED_REQUEST_HEADERS:
        response = problem_response(
            ProblemError(
                "this origin, method or header may not call the proxy from a browser",
                code=Code.CORS_NOT_ALLOWED,
                status=403,
            )
        )
        response.headers["Vary"] = "Origin"
        return response
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(sorted(methods - {"HEAD", "OPTIONS"})),
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": str(cors.max_age_seconds),
            "Vary": "Origin",
        },
    )
