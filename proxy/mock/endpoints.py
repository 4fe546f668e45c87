"""The mock's aiohttp application: routes only, no I/O."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.mock import control, delegated, devicelogin, graph_api, identity
from proxy.mock.responses import graph_error
from proxy.mock.state import MockGraph
from proxy.mock.typedefs import GRAPH_KEY

CLIENT_MAX_SIZE = 1024 * 1024


@web.middleware
async def graph_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer unknown Graph URLs in Graph's error shape rather than aiohttp's plain text."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if not request.path.startswith("/v1.0/") or error.status not in (404, 405):
            raise
        segment = request.path.rstrip("/").rsplit("/", 1)[-1]
        if error.status == 405:
            return graph_error(
                request, 405, "Request_BadRequest", "The HTTP method is not supported."
            )
        return graph_error(
            request, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
        )


def create_mock_app(graph: MockGraph) -> web.Application:
    """Return an app serving Graph getSchedule, the identity platform and /_mock/ for ``graph``."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[graph_not_found])
    app[GRAPH_KEY] = graph
    app.router.add_get(
        "/{tenant}/v2.0/.well-known/openid-configuration", identity.openid_configuration
    )
    app.router.add_get("/{tenant}/discovery/v2.0/keys", identity.jwks)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", identity.token)
    app.router.add_route("GET", "/{tenant}/oauth2/v2.0/authorize", delegated.authorize)
    app.router.add_route("POST", "/{tenant}/oauth2/v2.0/authorize", delegated.authorize)
    app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", delegated.devicecode)
    app.router.add_get("/devicelogin", devicelogin.device_login_page)
    app.router.add_post("/devicelogin", devicelogin.device_login)
    app.router.add_get("/v1.0/organization", delegated.organization)
    app.router.add_post("/v1.0/users/{id}/calendar/getSchedule", graph_api.get_schedule_for_user)
    app.router.add_post("/v1.0/me/calendar/getSchedule", graph_api.get_schedule_for_me)
    app.router.add_post("/_mock/faults", control.add_fault)
    app.router.add_get("/_mock/faults", control.list_faults)
    app.router.add_delete("/_mock/faults", control.clear_faults)
    app.router.add_get("/_mock/stats", control.stats)
    app.router.add_post("/_mock/reset", control.reset)
    app.router.add_get("/_mock/organisation", control.organisation)
    app.router.add_get("/_mock/grants", delegated.grants)
    app.router.add_post("/_mock/grants", delegated.switch_grant)
    app.router.add_post("/_mock/devicecode", delegated.decide_device)
    return app
