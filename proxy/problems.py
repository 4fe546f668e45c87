"""RFC 9457 problem documents, and the one middleware that maps errors to them."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.errors import ProblemError

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)

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


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into problem+json; unexpected ones become a bare 500."""
    try:
        return await handler(request)
    except ProblemError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        headers = {**(headers or {}), **exc.extra_headers()} or None
        return problem_response(exc.status, code=exc.code, detail=exc.detail, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        detail = {
            404: "no such resource",
            405: f"method {request.method} is not allowed here",
            413: "the request body is too large",
        }.get(exc.status, HTTPStatus(exc.status).phrase)
        return problem_response(
            exc.status,
            code=_HTTP_CODES.get(exc.status, "http_error"),
            detail=detail,
            headers=headers,
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, code="internal_error", detail="internal error")
