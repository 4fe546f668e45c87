"""Pieces every dialect shares: reading a JSON body, merging busy periods, the root app."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from proxy.core.errors import BadRequest, ProblemError
from proxy.core.model import BusyItem, Status
from proxy.core.policy import merge

# With a realm: httplib2 (Google's Python client) rejects a bare "Bearer" challenge.
BEARER_CHALLENGE = 'Bearer realm="freebusy-proxy"'


def root_app(request: web.Request) -> web.Application:
    """The top-level application, whose state holds the schedule source, from a sub-app route."""
    return request.match_info.apps[0]


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or BadRequest / 415 saying what is wrong."""
    if request.content_type != "application/json":
        raise ProblemError(
            "send a JSON body with Content-Type: application/json",
            code="unsupported_media_type",
            status=415,
        )
    try:
        body = json.loads(await request.read())
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return body


def merge_periods(
    items: Iterable[BusyItem], statuses: Collection[Status]
) -> list[tuple[datetime, datetime]]:
    """Intervals covered by items whose status is in ``statuses``; overlapping and touching
    intervals merged, sorted."""
    busy = [
        BusyItem(start=i.start, end=i.end, status=Status.BUSY)
        for i in items
        if i.status in statuses
    ]
    return [(item.start, item.end) for item in merge(busy)]
