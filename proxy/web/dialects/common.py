"""Pieces every dialect shares: reading a JSON body, the bearer challenge, paced rendering,
the JSON answer and the memo's view of a JSON body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

import msgspec
from aiohttp import web

from proxy.core.errors import BadRequest, Code, ProblemError
from proxy.core.pacing import SLICE
from proxy.web.bodies import read_body

Parts = Iterator[tuple[bytes, int]]
"""An answer being rendered, piece by piece, each with the work it took (items, view days).

Each piece is computed when asked for, so join_paced can give the event loop a turn between
slices of work however large the answer is; join() is the same answer at once."""


def json_response(body: bytes) -> web.Response:
    """A rendered JSON answer, never cached by anyone on the way."""
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


async def json_body_key(request: web.Request) -> bytes | None:
    """The JSON body as sent, for the response memo; None unless it is sent as
    ``application/json`` (anything else is parsed: parameters, letter case)."""
    # The common spelling compared as is, before aiohttp parses the header.
    if (
        request.headers.get("Content-Type") != "application/json"
        and request.content_type != "application/json"
    ):
        return None
    return await read_body(request)


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
    return decode_json_object(await read_body(request))


def decode_json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object, or BadRequest saying what is wrong."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON", code=Code.INVALID_JSON) from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object", code=Code.INVALID_JSON)
    return value


async def join_paced(parts: Parts) -> bytes:
    """The pieces joined; the event loop gets a turn between slices of rendering work."""
    chunks: list[bytes] = []
    done = 0
    for chunk, units in parts:
        chunks.append(chunk)
        done += units
        if done >= SLICE:
            done = 0
            await asyncio.sleep(0)
    return b"".join(chunks)


def join(parts: Parts) -> bytes:
    """The pieces joined at once (for small answers and tests)."""
    return b"".join(chunk for chunk, _ in parts)


_ENCODE = msgspec.json.Encoder().encode
K = TypeVar("K", bound=Hashable)


def compact(value: Any) -> bytes:
    """``value`` as compact JSON (UTF-8, nothing escaped that JSON does not require)."""
    return _ENCODE(value)


class Fragments(dict[K, bytes], Generic[K]):
    """Rendered JSON by value, each made once: served availability repeats the same items.

    ``fragments[value]`` renders a value not seen yet; at ``kept`` values the memo is emptied
    (a plain dict: an LRU's bookkeeping would cost more than rendering again). A value is
    only what the answer shows anyway (statuses and times, no address).
    """

    def __init__(self, render: Callable[[K], bytes], *, kept: int = 16_384) -> None:
        super().__init__()
        self._render = render
        self._kept = kept

    def __missing__(self, value: K) -> bytes:
        if len(self) >= self._kept:
            self.clear()
        rendered = self[value] = self._render(value)
        return rendered


def tail(value: dict[str, Any]) -> bytes:
    """A JSON object's members and closing brace, to follow a member written before them."""
    return compact(value)[1:]
