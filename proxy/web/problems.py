"""RFC 9457 problem documents for our errors and aiohttp's (proxy.web.envelope sends them)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from proxy.core.errors import ProblemError

PROBLEM_JSON = "application/problem+json"

# aiohttp's own HTTP errors, given stable codes of ours.
_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
}


def http_error_code(status: int) -> str:
    """Our stable code for one of aiohttp's HTTP errors (404, 405, 413, …)."""
    return _HTTP_CODES.get(status, "http_error")


def problem_response(
    status: int, *, code: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A problem+json response whose every field is written by us."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_for(exc: ProblemError) -> web.Response:
    """The problem document for one of our errors, with its extra headers."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    headers = {**(headers or {}), **exc.extra_headers()} or None
    return problem_response(exc.status, code=exc.code, detail=exc.detail, headers=headers)


def problem_for_http(method: str, exc: web.HTTPException) -> web.Response:
    """The problem document for one of aiohttp's HTTP errors (status 400 or more)."""
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    detail = {
        404: "no such resource",
        405: f"method {method} is not allowed here",
        413: "the request body is too large",
    }.get(exc.status, HTTPStatus(exc.status).phrase)
    return problem_response(
        exc.status, code=http_error_code(exc.status), detail=detail, headers=headers
    )


def internal_error() -> web.Response:
    """The bare 500 for a bug: nothing about it leaves the process but the log line."""
    return problem_response(500, code="internal_error", detail="internal error")
