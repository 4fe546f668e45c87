"""The proxy's own JSON API: GET and POST /v1/availability."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from proxy.availability.memo import MemoKey
from proxy.core.errors import BadRequest, Code
from proxy.core.model import BusyItem, Query, ScheduleResult
from proxy.core.timefmt import format_utc
from proxy.web.dialects.common import (
    Fragments,
    Parts,
    compact,
    decode_json_object,
    join,
    join_paced,
    json_body_key,
    json_response,
    read_json_object,
)
from proxy.web.dialects.query import parse_instant, schedules_of, window_of
from proxy.web.keys import AVAILABILITY, CONSUMERS

_FIELDS = frozenset({"schedules", "start", "end"})


def parse_query(raw: Mapping[str, Any]) -> Query:
    """The request's fields as a Query, or BadRequest saying what is wrong."""
    unknown = set(raw) - _FIELDS
    if unknown:
        raise BadRequest(f"unknown field: {sorted(unknown)[0]}", code=Code.UNKNOWN_FIELD)
    schedules = schedules_of(raw.get("schedules"))
    start, end = parse_instant(raw.get("start"), "start"), parse_instant(raw.get("end"), "end")
    return Query(schedules=schedules, window=window_of(start, end))


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """A POST body as it usually comes: exactly the three fields, of the right types."""

    schedules: list[str]
    start: str
    end: str


_DECODE = msgspec.json.Decoder(_Body).decode


def parse_body(body: bytes) -> Query:
    """A JSON body as a Query, or BadRequest saying what is wrong with it."""
    try:
        fields = _DECODE(body)
    except msgspec.MsgspecError:
        # Anything unusual is judged field by field, with our own messages.
        return parse_query(decode_json_object(body))
    schedules = schedules_of(fields.schedules)
    start = parse_instant(fields.start, "start")
    return Query(schedules=schedules, window=window_of(start, parse_instant(fields.end, "end")))


def render_availability(query: Query, results: Mapping[str, ScheduleResult]) -> bytes:
    """The JSON API body: an entry per requested address, in request order, field by field."""
    return join(availability_parts(query, results))


def availability_parts(query: Query, results: Mapping[str, ScheduleResult]) -> Parts:
    """render_availability() piece by piece; each distinct address is rendered once."""
    window = query.window
    yield b'{"start":' + compact(format_utc(window.start)), 0
    yield b',"end":' + compact(format_utc(window.end)) + b',"schedules":[', 0
    rendered: dict[str, bytes] = {}
    for n, address in enumerate(query.schedules):
        key = address.casefold()
        body = rendered.get(key)
        units = 0
        if body is None:
            body = rendered[key] = _schedule(results[key])
            units = len(results[key].items) + 1
        opening = b',{"schedule":' if n else b'{"schedule":'
        yield opening + compact(address) + body, units
    yield b"]}", 0


def _schedule(result: ScheduleResult) -> bytes:
    """One entry's members after its address: items, error, stale, and the closing brace."""
    if result.error is not None:
        return b',"items":[],"error":{"code":' + compact(result.error) + _STALE[result.stale]
    return b',"items":[' + b",".join(map(_ITEMS.__getitem__, result.items)) + _FINE[result.stale]


def _item(item: BusyItem) -> bytes:
    """One item, field by field."""
    return compact(
        {"status": item.status, "start": format_utc(item.start), "end": format_utc(item.end)}
    )


_ITEMS: Fragments[BusyItem] = Fragments(_item)
_FINE = {False: b'],"error":null,"stale":false}', True: b'],"error":null,"stale":true}'}
_STALE = {False: b'},"stale":false}', True: b'},"stale":true}'}


async def availability(request: web.Request) -> web.Response:
    """GET or POST /v1/availability: minimized free/busy for the requested addresses."""
    app = request.app
    consumer = app[CONSUMERS].authenticate(request.headers.get("Authorization"))
    service = app[AVAILABILITY]
    key = await _memo_key(request, consumer.name)
    if key is not None:
        body = await service.recall(consumer, key)
        if body is not None:
            return json_response(body)
    if key is not None and request.method == "POST":
        query = parse_body(key[2])
    else:
        query = parse_query(await _read_request(request))
    results = await service.lookup(consumer, query)
    body = await join_paced(availability_parts(query, results))
    if key is not None:
        service.remember(consumer, key, query, results, body)
    return json_response(body)


async def _memo_key(request: web.Request, consumer: str) -> MemoKey | None:
    """The request as sent, for the memo; None when it could not succeed as it stands."""
    if request.method == "GET":
        # Raw: percent-decoding first would let "a%26b" and "a&b" share an entry.
        return (
            consumer,
            "GET",
            request.rel_url.raw_query_string.encode("utf-8", "surrogateescape"),
        )
    body = await json_body_key(request)
    return None if body is None else (consumer, "POST", body)


async def _read_request(request: web.Request) -> Mapping[str, Any]:
    """The request's fields from a JSON body (POST) or the query string (GET)."""
    if request.method == "GET":
        query = request.query
        for name in query:
            if len(query.getall(name)) > 1:
                raise BadRequest(f"{name} is given more than once", code=Code.INVALID_REQUEST)
        raw: dict[str, Any] = dict(query)
        if "schedules" in raw:
            raw["schedules"] = [s.strip() for s in raw["schedules"].split(",") if s.strip()]
        return raw
    return await read_json_object(request)
