"""URL map of the proxy."""

from __future__ import annotations

from aiohttp import web

from proxy.observability.metrics import metrics_view
from proxy.web import openapi
from proxy.web.dialects import ical
from proxy.web.dialects import native as api
from proxy.web.dialects.google import google_app
from proxy.web.dialects.graph_dropin import graph_app
from proxy.web.envelope import Envelope


def setup_routes(app: web.Application, envelope: Envelope) -> None:
    """Register every route the proxy serves, and last the fallback for what it does not."""
    router = app.router
    envelope.add(router, "GET", "/v1/availability", api.availability)
    envelope.add(router, "POST", "/v1/availability", api.availability)
    envelope.add_get(router, "/healthz", api.healthz)
    envelope.add_get(router, "/readyz", api.readyz)
    envelope.add_get(router, "/metrics", metrics_view)
    envelope.add_get(router, "/v1/schedules/{address}/freebusy.ics", ical.freebusy_ics)
    envelope.add_get(router, "/openapi.json", openapi.openapi_json)
    # Each dialect's sub-app answers errors in that dialect's shape.
    app.add_subapp("/v1.0", graph_app(envelope))
    app.add_subapp("/calendar/v3", google_app(envelope))
    envelope.add_fallback(router)
