"""The console's JSON: readiness, consumers, Graph economy, revoking a connection (/admin/...).

Every route needs the admin key (``[connect] admin_key_sha256``) as a bearer header. Answers
are built field by field from configuration, counters and connection records: no address
besides a connection's own account, no subject, no item of anyone.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.access.admin import require_admin
from proxy.config.schema import ConsumerSettings
from proxy.core.errors import Code, ProblemError
from proxy.sources.breaker import BreakerState
from proxy.web.keys import AVAILABILITY, CHAIN, CONNECT, METRICS, SETTINGS
from proxy.web.probes import needing_attention


def admin_only(request: web.Request) -> None:
    """Return when the request carries the admin key; raise Unauthorized otherwise."""
    require_admin(
        request.headers.get("Authorization"), request.app[SETTINGS].connect.admin_key_sha256
    )


def _json(document: dict[str, Any]) -> web.Response:
    return web.json_response(document, headers={"Cache-Control": "no-store"})


async def readiness(request: web.Request) -> web.Response:
    """GET /admin/readiness: every check as one record shape, so new sections need no new UI."""
    admin_only(request)
    app = request.app
    chain = app[CHAIN]
    report = await chain.readiness.report()
    checks: list[dict[str, Any]] = [
        {"name": name, "ok": state == "ok", "state": state, "gates_readiness": True}
        # Why it failed, as a code from a fixed list (never the platform's own words).
        | ({"problem": report.problems[name]} if name in report.problems else {})
        for name, state in report.checks.items()
    ]
    breaker = chain.breaker.state
    checks.append(
        {
            "name": "breaker",
            "ok": breaker is BreakerState.CLOSED,
            "state": breaker.value,
            "gates_readiness": False,
        }
    )
    if chain.cluster is not None:
        state = chain.cluster.state()
        checks.append(
            {
                "name": "cluster",
                "ok": state == "ok",
                "state": state,
                "gates_readiness": False,
                "mode": chain.cluster.mode.value,
            }
        )
    if CONNECT in app:
        connections = app[CONNECT].connections.all()
        statuses = [c.status for c in connections]
        counts = {
            status: statuses.count(status)
            for status in ("connected", "needs_consent", "over_privileged", "revoked")
        }
        calm = not any(needing_attention(connections).values())
        checks.append(
            {
                "name": "connections",
                "ok": calm,
                "state": "ok" if calm else "attention",
                "gates_readiness": False,
                "counts": counts,
            }
        )
    return _json({"ready": report.ready, "checks": checks})


def _consumer(settings: ConsumerSettings, counts: dict[str, int]) -> dict[str, Any]:
    """One consumer for the console: its name, how much it may see and ask, its counters."""
    policy = settings.policy
    domains = sum(pattern.startswith("*@") for pattern in settings.allow)
    return {
        "name": settings.name,
        # Sizes only: the allowlist names people.
        "allowlist": {"addresses": len(settings.allow) - domains, "domains": domains},
        "policy": {
            "detail": policy.detail,
            "granularity_minutes": policy.granularity_minutes,
            "busy_statuses": sorted(status.value for status in policy.busy_statuses),
            "max_lookback_days": policy.max_lookback_days,
            "max_lookahead_days": policy.max_lookahead_days,
            "max_window_days": policy.max_window_days,
            "max_schedules": policy.max_schedules,
            "rate_per_minute": policy.rate_per_minute,
        },
        "requests": sum(counts.values()),
        "rate_limited": counts.get("rate_limited", 0),
        "refused": counts.get("refused", 0),
    }


async def consumers(request: web.Request) -> web.Response:
    """GET /admin/consumers: every configured consumer with its policy and request counters."""
    admin_only(request)
    metrics = request.app[METRICS]
    return _json(
        {
            "consumers": [
                _consumer(c, metrics.consumer_counts(c.name))
                for c in request.app[SETTINGS].consumers
            ]
        }
    )


async def economy(request: web.Request) -> web.Response:
    """GET /admin/economy: Graph calls, cache hit rate, throttling, from /metrics' counters."""
    admin_only(request)
    return _json(request.app[METRICS].economy())


async def revoke_connection(request: web.Request) -> web.Response:
    """POST /admin/connections/{id}/revoke: stop using a connection at once and erase its tokens.

    The record stays, marked revoked, so the console still shows who was connected; caches
    forget what it fetched. Deleting it (DELETE /admin/connections/{id}) removes the record.
    """
    admin_only(request)
    connections = request.app[CONNECT].connections
    connection = connections.get(request.match_info["id"])
    if connection is None:
        raise ProblemError("no such connection", code=Code.NOT_FOUND, status=404)
    # Any status but connected erases the tokens in the store, on every replica.
    await connections.set_status(connection, "revoked")
    await request.app[AVAILABILITY].forget_connection(connection)
    return web.Response(status=204)
