"""RFC 9457 problem documents: the default error shape, and aiohttp's errors as ours."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from proxy.core.errors import ProblemError, code_for_status

PROBLEM_JSON = "application/problem+json"
# Our words for aiohttp's own errors; the status phrase for the rest.
_DETAILS = {
    404: "no such resource",
    413: "the request body is too large",
}


def http_problem(method: str, exc: web.HTTPException) -> ProblemError:
    """One of aiohttp's HTTP errors (status 400 or more) as one of ours, Allow kept."""
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    if exc.status == 405:
        detail = f"method {method} is not allowed here"
    else:
        detail = _DETAILS.get(exc.status, HTTPStatus(exc.status).phrase)
    return ProblemError(
        detail, code=code_for_status(exc.status), status=exc.status, headers=headers
    )


def problem_response(error: ProblemError) -> web.Response:
    """The problem document for an error, every field written by us, with its headers."""
    headers = error.extra_headers()
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(error.status).phrase,
        "status": error.status,
        "detail": error.detail,
        "code": error.code.value,
    }
    return web.Response(
        status=error.status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_JSON,
        headers=headers or None,
    )
