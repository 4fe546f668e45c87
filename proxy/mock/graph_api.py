"""The Graph half of the mock: /v1.0/users/{id}/calendar/getSchedule and /me."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from proxy.mock.canary import canary
from proxy.mock.responses import (
    GRAPH_CONTENT_TYPE,
    fault_answer,
    graph_error,
    graph_headers,
)
from proxy.mock.schedule import (
    ScheduleRequestError,
    build_response,
    parse_query,
    prefer_label,
    prefer_time_zone,
    requested_schedules,
    summarise,
)
from proxy.mock.state import MockGraph
from proxy.mock.tokens import TokenRejected
from proxy.mock.typedefs import GRAPH_KEY

CALENDAR_PERMISSIONS = frozenset({"Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"})
# Outlook answers its throttling with a Retry-After in seconds; small so test suites stay fast.
THROTTLE_RETRY_AFTER = "0.5"


def _error(
    request: web.Request,
    graph: MockGraph,
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
) -> web.Response:
    # Every error message carries a canary too, so tests can prove none is passed on verbatim.
    marker = canary(
        "msg", graph.settings.seed, code, request.path, graph.counters.calls["getSchedule"]
    )
    return graph_error(request, status, code, f"{message} {marker}", headers=headers)


def _authenticate(request: web.Request, graph: MockGraph) -> dict[str, Any] | web.Response:
    """Return the token's claims, or the 401/403 Graph would answer."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(request, graph, 401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = graph.tokens.verify(token.strip())
    except TokenRejected as rejected:
        return _error(request, graph, 401, "InvalidAuthenticationToken", str(rejected))
    granted = set(claims.get("roles") or []) | set(str(claims.get("scp") or "").split())
    if not granted & CALENDAR_PERMISSIONS:
        return _error(
            request,
            graph,
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    return claims


async def get_schedule_for_user(request: web.Request) -> web.StreamResponse:
    """POST /v1.0/users/{id}/calendar/getSchedule."""
    return await _get_schedule(request, url_mailbox=request.match_info["id"])


async def get_schedule_for_me(request: web.Request) -> web.StreamResponse:
    """POST /v1.0/me/calendar/getSchedule (delegated tokens only)."""
    return await _get_schedule(request, url_mailbox=None)


async def _get_schedule(request: web.Request, *, url_mailbox: str | None) -> web.StreamResponse:
    graph = request.app[GRAPH_KEY]
    graph.counters.calls["getSchedule"] += 1
    raw = await request.read()
    try:
        body: object = json.loads(raw) if raw else None
    except ValueError:
        body = None
    summary = summarise(body)
    entry: dict[str, Any] = {
        "mailbox": url_mailbox,
        "schedules": summary["schedules"],
        "start": summary["start"],
        "end": summary["end"],
        "interval": summary["interval"],
        "prefer_tz": prefer_label(request.headers.get("Prefer")),
        "status": 0,
    }
    graph.counters.schedules_requested += len(summary["schedules"])
    response = await _answer(request, graph, body, url_mailbox, entry)
    entry["status"] = response.status
    graph.counters.recent.append(entry)
    return response


async def _answer(
    request: web.Request,
    graph: MockGraph,
    body: object,
    url_mailbox: str | None,
    entry: dict[str, Any],
) -> web.StreamResponse:
    claims = _authenticate(request, graph)
    if isinstance(claims, web.Response):
        return claims
    if url_mailbox is None:
        user = claims.get("upn") or claims.get("preferred_username")
        if not isinstance(user, str):
            return _error(
                request,
                graph,
                400,
                "BadRequest",
                "/me request is only valid with delegated authentication flow.",
            )
        url_mailbox = entry["mailbox"] = user
    # Outlook counts per mailbox, however the URL names it (address in any case, or object id).
    known = graph.organisation.lookup(url_mailbox) or graph.organisation.lookup_object_id(
        url_mailbox
    )
    gate_key = known.address if known is not None else url_mailbox
    verdict = graph.gate.enter(gate_key)
    if verdict != "ok":
        limit = "MailboxConcurrency" if verdict == "concurrency" else "MailboxRequestRate"
        return _error(
            request,
            graph,
            429,
            "ApplicationThrottled",
            f"Application is over its {limit} limit.",
            headers={"Retry-After": THROTTLE_RETRY_AFTER},
        )
    try:
        return await _admitted(request, graph, body, url_mailbox, known_mailbox=known is not None)
    finally:
        graph.gate.leave(gate_key)


async def _admitted(
    request: web.Request, graph: MockGraph, body: object, url_mailbox: str, *, known_mailbox: bool
) -> web.StreamResponse:
    fault = graph.faults.take("getSchedule", url_mailbox, requested_schedules(body))
    if fault is not None:
        answer = fault_answer(
            request,
            fault,
            error=lambda status, code, headers: _error(
                request, graph, status, code, "Injected failure.", headers=headers
            ),
            body=lambda obj: _graph_json(request, obj),
        )
        if answer is not None:
            return answer
        await graph.faults.delay(fault)
    if not known_mailbox:
        return _error(
            request,
            graph,
            404,
            "ErrorInvalidUser",
            f"The requested user '{url_mailbox}' is invalid.",
        )
    try:
        query = parse_query(body)
    except ScheduleRequestError as error:
        if error.breach is not None:
            graph.counters.breaches[error.breach] += 1
        return _error(request, graph, error.status, error.code, error.message)
    result = build_response(
        graph.organisation, query, out_zone=prefer_time_zone(request.headers.get("Prefer"))
    )
    return _graph_json(request, result)


def _graph_json(request: web.Request, body: Any) -> web.Response:
    return web.Response(
        text=json.dumps(body),
        headers={**graph_headers(request), "Content-Type": GRAPH_CONTENT_TYPE + ";charset=utf-8"},
    )
