"""Probes and scrapes: liveness, readiness, metrics; no key needed, never audited."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from proxy.access.admin import require_admin
from proxy.connect.scopes import excess_scopes
from proxy.core.connections import Connection
from proxy.web.keys import CHAIN, CONNECT, METRICS, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: a token can be had and Graph answers; 503 otherwise.

    With [cluster] set, ``checks.cluster`` says "ok" or "degraded" (Redis unreachable: local
    limits) and never makes the replica unready.

    Anyone sees the checks as fixed words and connection counts. With the admin key (an
    ``Authorization`` header that is not the admin key is a 401) the answer also says why a
    check failed, as a code from a fixed list, and which connections need attention.
    """
    admin = "Authorization" in request.headers
    if admin:
        require_admin(
            request.headers.get("Authorization"), request.app[SETTINGS].connect.admin_key_sha256
        )
    chain = request.app[CHAIN]
    report = await chain.readiness.report()
    checks = report.checks
    if chain.cluster is not None:
        # Never gates readiness: a replica without Redis still serves, with local limits.
        checks = {**checks, "cluster": chain.cluster.state()}
    body: dict[str, Any] = {"status": "ready" if report.ready else "not_ready", "checks": checks}
    if admin and report.problems:
        body["problems"] = report.problems
    connect = request.app.get(CONNECT)
    if connect is not None:
        attention = needing_attention(connect.connections.all())
        body["connections"] = {
            "connected": sum(c.status == "connected" for c in connect.connections.all()),
            **{status: len(ids) for status, ids in attention.items()},
        }
        if admin:
            body["attention"] = attention
    return web.json_response(body, status=200 if report.ready else 503)


def needing_attention(connections: list[Connection]) -> dict[str, list[str]]:
    """Ids of connections that need consent again, or hold more than the Free/Busy scopes
    (refused, or kept and flagged under strict_scopes = false): what /readyz and the console
    both report."""
    found: dict[str, list[str]] = {"needs_consent": [], "over_privileged": []}
    for connection in connections:
        if connection.status == "needs_consent":
            found["needs_consent"].append(connection.id)
        # Reported whether refused (strict_scopes) or only flagged.
        if connection.status == "over_privileged" or excess_scopes(frozenset(connection.scopes)):
            found["over_privileged"].append(connection.id)
    return found


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: this process's metrics in Prometheus text format."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
