"""Probes and scrapes: liveness, readiness, metrics; no key needed, never audited."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from proxy.web.keys import CHAIN, METRICS


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: a token can be had and Graph answers; 503 otherwise."""
    report = await request.app[CHAIN].readiness.report()
    return web.json_response(
        {
            "status": "ready" if report.ready else "not_ready",
            "checks": report.checks,
            **report.details,
        },
        status=200 if report.ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: this process's metrics in Prometheus text format."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
