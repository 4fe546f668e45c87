"""URL map of the proxy."""

from __future__ import annotations

from aiohttp import web

from proxy import api, openapi
from proxy.formats import ical
from proxy.formats.google import google_app
from proxy.formats.graph_dropin import graph_app
from proxy.metrics import metrics_view


def setup_routes(app: web.Application) -> None:
    """Register every route the proxy serves."""
    app.router.add_route("GET", "/v1/availability", api.availability)
    app.router.add_route("POST", "/v1/availability", api.availability)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/v1/schedules/{address}/freebusy.ics", ical.freebusy_ics)
    app.router.add_get("/openapi.json", openapi.openapi_json)
    # Each dialect's sub-app answers errors in that dialect's shape.
    app.add_subapp("/v1.0", graph_app())
    app.add_subapp("/calendar/v3", google_app())
