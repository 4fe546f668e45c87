"""URL map of the proxy: every route, and last the fallback for what none serves."""

from __future__ import annotations

from aiohttp import web

from proxy.web import openapi, probes
from proxy.web.connect import views as connect
from proxy.web.dialects import ical, native, slots_api
from proxy.web.dialects.google import google_app
from proxy.web.dialects.graph_dropin import graph_app
from proxy.web.envelope import Envelope


def setup_routes(app: web.Application, envelope: Envelope, *, connect_routes: bool) -> None:
    """Register every route the proxy serves, and last the fallback for what it does not."""
    router = app.router
    envelope.add(router, "GET", "/v1/availability", native.availability)
    envelope.add(router, "POST", "/v1/availability", native.availability)
    envelope.add(router, "POST", "/v1/slots", slots_api.slots)
    envelope.add_get(router, "/healthz", probes.healthz)
    envelope.add_get(router, "/readyz", probes.readyz)
    envelope.add_get(router, "/metrics", probes.metrics)
    envelope.add_get(router, "/v1/schedules/{address}/freebusy.ics", ical.freebusy_ics)
    envelope.add_get(router, "/openapi.json", openapi.openapi_json)
    if connect_routes:
        connect.setup_connect_routes(router, envelope)
    # Each dialect's sub-app answers errors in that dialect's shape.
    app.add_subapp("/v1.0", graph_app(envelope))
    app.add_subapp("/calendar/v3", google_app(envelope))
    envelope.add_fallback(router)
