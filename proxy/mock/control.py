"""Scenario endpoints under /_mock/ (no authentication): faults, counters, the directory."""

from __future__ import annotations

from aiohttp import web

from proxy.mock.faults import Fault
from proxy.mock.responses import json_response
from proxy.mock.typedefs import GRAPH_KEY


async def add_fault(request: web.Request) -> web.Response:
    """POST /_mock/faults with a Fault as JSON: 201 and the fault, or 400 saying what is wrong."""
    try:
        fault = Fault.from_json(await request.json())
    except ValueError as error:
        return json_response({"error": str(error)}, status=400)
    request.app[GRAPH_KEY].add_fault(fault)
    return json_response(fault.to_json(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    """GET /_mock/faults: the faults that still have uses left, in order."""
    return json_response([fault.to_json() for fault in request.app[GRAPH_KEY].faults.pending()])


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_mock/faults: remove every fault, releasing requests held by latency."""
    request.app[GRAPH_KEY].clear_faults()
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    """GET /_mock/stats: calls, breaches and the most recent getSchedule requests."""
    return json_response(request.app[GRAPH_KEY].stats())


async def reset(request: web.Request) -> web.Response:
    """POST /_mock/reset: clear faults, counters and rate budgets."""
    request.app[GRAPH_KEY].reset()
    return web.Response(status=204)


async def organisation(request: web.Request) -> web.Response:
    """GET /_mock/organisation: every address, people and rooms, in directory order."""
    return json_response(request.app[GRAPH_KEY].organisation.addresses())
