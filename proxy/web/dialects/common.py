"""Pieces every dialect shares: reading a JSON body, the bearer challenge, paced rendering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from proxy.core.errors import BadRequest, Code, ProblemError
from proxy.core.pacing import Pacer
from proxy.web.bodies import read_body

Parts = Iterator[tuple[bytes, int]]
"""An answer being rendered, piece by piece, each with the work it took (items, view days).

Each piece is computed when asked for, so join_paced can give the event loop a turn between
slices of work however large the answer is; join() is the same answer at once."""

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


async def join_paced(parts: Parts) -> bytes:
    """The pieces joined; the event loop gets a turn between slices of rendering work."""
    pacer = Pacer()
    chunks: list[bytes] = []
    for chunk, units in parts:
        chunks.append(chunk)
        if pacer.due(units):
            await asyncio.sleep(0)
    return b"".join(chunks)


def join(parts: Parts) -> bytes:
    """The pieces joined at once (for small answers and tests)."""
    return b"".join(chunk for chunk, _ in parts)


def compact(value: Any) -> bytes:
    """``value`` as compact JSON."""
    return json.dumps(value, separators=(",", ":")).encode()


def tail(value: dict[str, Any]) -> bytes:
    """A JSON object's members and closing brace, to follow a member written before them."""
    return compact(value)[1:]
