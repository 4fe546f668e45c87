"""Pieces every dialect shares: reading a JSON body, the bearer challenge."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from proxy.core.errors import BadRequest, Code, ProblemError
from proxy.web.bodies import read_body

# With a realm: httplib2 (Google's Python client) rejects a bare "Bearer" challenge.
BEARER_CHALLENGE = 'Bearer realm="freebusy-proxy"'


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or BadRequest / 415 saying what is wrong."""
    if request.content_type != "application/json":
        raise ProblemError(
            "send a JSON body with Content-Type: application/json",
            code=Code.UNSUPPORTED_MEDIA_TYPE,
            status=415,
        )
    try:
        body = json.loads(await read_body(request))
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON", code=Code.INVALID_JSON) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code=Code.INVALID_JSON)
    return body
