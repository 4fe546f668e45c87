"""URL map of the proxy."""

from __future__ import annotations

from aiohttp import web

from proxy import api
from proxy.metrics import metrics_view


def setup_routes(app: web.Application) -> None:
    """Register every route the proxy serves."""
    app.router.add_route("GET", "/v1/availability", api.availability)
    app.router.add_route("POST", "/v1/availability", api.availability)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", metrics_view)
