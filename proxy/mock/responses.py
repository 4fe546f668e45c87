"""Answers shared by every mock endpoint: JSON bodies, scripted faults, Graph's envelope."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from proxy.mock.faults import Fault

GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false"
)


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Return ``body`` serialised as an application/json response."""
    return web.Response(
        text=json.dumps(body),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def graph_headers(request: web.Request) -> dict[str, str]:
    """Return the correlation headers Graph puts on every answer."""
    request_id = str(uuid.uuid4())
    return {
        "request-id": request_id,
        "client-request-id": request.headers.get("client-request-id", request_id),
    }


def graph_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """Return a whole-request Graph error: ``{"error": {code, message, innerError}}``."""
    correlation = graph_headers(request)
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": correlation["request-id"],
                "client-request-id": correlation["client-request-id"],
            },
        }
    }
    return json_response(body, status=status, headers={**correlation, **(headers or {})})


GRAPH_ERROR_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ResourceNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def fault_status_headers(fault: Fault) -> dict[str, str]:
    """Return the Retry-After header of a status fault, verbatim, if it has one."""
    return {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}


def malformed_response() -> web.Response:
    """Return a 200 whose JSON body is cut off mid-object."""
    return web.Response(
        text='{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(micro',
        content_type="application/json",
        charset="utf-8",
    )


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection without answering; the client sees the server disconnect."""
    if request.transport is not None:
        request.transport.close()
    # Never written: the transport is already closed. aiohttp just needs a return value.
    return web.Response(status=204)


def fault_answer(
    request: web.Request,
    fault: Fault,
    *,
    error: Callable[[int, str, dict[str, str]], web.Response],
    body: Callable[[Any], web.Response],
) -> web.Response | None:
    """The response an injected Graph fault stands for, or None for a latency fault.

    ``error(status, code, headers)`` writes the endpoint's error shape; ``body(obj)`` its
    200 answer. Latency faults are served by the caller awaiting ``FaultBook.delay``.
    """
    if fault.kind == "status":
        code = GRAPH_ERROR_CODES.get(fault.status, "UnknownError")
        return error(fault.status, code, fault_status_headers(fault))
    if fault.kind == "malformed":
        return malformed_response()
    if fault.kind == "drop":
        return drop_connection(request)
    if fault.kind == "body":
        return body(fault.body)
    return None
