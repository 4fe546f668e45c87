"""URL map of the proxy: every route, and last the fallback for what none serves."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from proxy.web import cluster_api, openapi, probes
from proxy.web.connect import views as connect
from proxy.web.console import admin_api, assets, screens
from proxy.web.console.frame import page_problem
from proxy.web.dialects import ical, native, slots_api
from proxy.web.dialects.google import google_app
from proxy.web.dialects.graph_dropin import graph_app
from proxy.web.envelope import Envelope


def setup_routes(
    app: web.Application, envelope: Envelope, *, connect_routes: bool, cluster_routes: bool
) -> None:
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
    # Pages for people, answering errors as pages; their stylesheet and scripts.
    envelope.add_get(router, "/", screens.home, shape=page_problem)
    envelope.add_get(router, "/console", screens.console, shape=page_problem)
    envelope.add_get(router, "/view", screens.week, shape=page_problem)
    envelope.add_get(router, "/static/{name}", assets.static_file)
    # The console's JSON, behind the admin key.
    envelope.add_get(router, "/admin/readiness", admin_api.readiness)
    envelope.add_get(router, "/admin/consumers", admin_api.consumers)
    envelope.add_get(router, "/admin/economy", admin_api.economy)
    if connect_routes:
        connect.setup_connect_routes(router, envelope)
        envelope.add(router, "POST", "/admin/connections/{id}/revoke", admin_api.revoke_connection)
    if cluster_routes:
        # Other replicas' misses for the windows this one fetches.
        cluster_api.setup_cluster_route(app, partial(envelope.add, router, "POST"))
    # Each dialect's sub-app answers errors in that dialect's shape.
    app.add_subapp("/v1.0", graph_app(envelope))
    app.add_subapp("/calendar/v3", google_app(envelope))
    envelope.add_fallback(router)
