"""Routes of the connect flows (/connect/...) and the admin API (/admin/connections)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from proxy.access.admin import require_admin
from proxy.connect.msal_apps import error_code
from proxy.connect.onboarding import complete
from proxy.connect.scopes import REQUESTED_SCOPES, excess_scopes, listed_permissions
from proxy.core.connections import Kind
from proxy.core.errors import Code, ProblemError, Refusal
from proxy.observability.audit_record import note_outcome
from proxy.sources.credentials import PLATFORM_ERRORS
from proxy.web.connect import pages
from proxy.web.envelope import Envelope
from proxy.web.keys import CONNECT, SETTINGS

log = logging.getLogger(__name__)


def _redirect_uri(request: web.Request) -> str:
    configured = request.app[SETTINGS].connect.redirect_uri
    return configured or f"{request.scheme}://{request.host}/connect/callback"


async def index(request: web.Request) -> web.Response:
    """GET /connect: links to the enabled flows."""
    return pages.index(request.app[SETTINGS].connect.kinds)


async def start(request: web.Request) -> web.StreamResponse:
    """GET /connect/individual|enterprise: start msal's auth-code flow with PKCE, redirect."""
    kind = request.match_info["kind"]
    if kind not in request.app[SETTINGS].connect.kinds:
        return _failure("disabled")
    runtime = request.app[CONNECT]
    try:
        app = await runtime.starter()
    except PLATFORM_ERRORS:
        # msal's discovery failed: the identity platform is unreachable or answers nonsense.
        log.warning("cannot start a sign-in: the identity platform is unavailable")
        return _failure("sign_in_failed")
    flow: dict[str, Any] = app.initiate_auth_code_flow(
        list(REQUESTED_SCOPES),
        redirect_uri=_redirect_uri(request),
        # The code comes back in a POST body, not in a URL that browsers and proxies log.
        response_mode="form_post",
        prompt="select_account",
    )
    connect_kind: Kind = "individual" if kind == "individual" else "enterprise"
    runtime.flows.put(connect_kind, flow)
    raise web.HTTPFound(flow["auth_uri"], headers={"Cache-Control": "no-store"})


async def callback(request: web.Request) -> web.Response:
    """GET/POST /connect/callback: finish the flow and show what was connected, or why not."""
    runtime = request.app[CONNECT]
    if request.method == "POST":
        posted = await request.post()
        answer = {k: v for k, v in posted.items() if isinstance(v, str)}
    else:
        answer = dict(request.query)
    found, pending = runtime.flows.take(answer.get("state"))
    if pending is None:
        return _failure("expired" if found == "expired" else "state_mismatch")
    if "error" in answer:
        reason = "declined" if answer["error"] == "access_denied" else "sign_in_failed"
        log.info("sign-in ended with %s", error_code(answer))
        return _failure(reason)
    try:
        app, cache = await runtime.finisher()
        try:
            result = await asyncio.to_thread(
                app.acquire_token_by_auth_code_flow, pending.flow, answer
            )
        except json.JSONDecodeError:
            raise  # a token response that is not JSON: the platform's fault, not the state's
        except ValueError:
            # msal's own state (and scope) check.
            return _failure("state_mismatch")
    except PLATFORM_ERRORS:
        log.warning("cannot finish a sign-in: the identity platform is unavailable")
        return _failure("sign_in_failed")
    if not isinstance(result, dict) or "access_token" not in result:
        log.warning("code redemption refused: %s", error_code(result))
        return _failure("sign_in_failed")
    try:
        connection = await complete(
            runtime.connections,
            runtime.session,
            kind=pending.kind,
            result=result,
            token_cache=cache.serialize(),
            public_client=False,
        )
    except Refusal as refusal:
        log.info("%s sign-in refused: %s", pending.kind, refusal.reason)
        return _failure(refusal.reason)
    return pages.connected(connection)


def _require_admin(request: web.Request) -> None:
    require_admin(
        request.headers.get("Authorization"), request.app[SETTINGS].connect.admin_key_sha256
    )


async def list_connections(request: web.Request) -> web.Response:
    """GET /admin/connections: every connection, field by field; never a token."""
    _require_admin(request)
    connections = request.app[CONNECT].connections
    listing = [
        {
            "id": c.id,
            "kind": c.kind,
            "account": c.account,
            "tenant_id": c.tenant_id,
            "tenant_name": c.tenant_name,
            "domains": list(c.domains),
            "scopes": list(listed_permissions(c.scopes)),
            "excess_scopes": sorted(excess_scopes(frozenset(c.scopes))),
            "status": c.status,
            "created": c.created,
            "last_refresh": connections.last_refresh(c.id),
        }
        for c in connections.all()
    ]
    return web.json_response({"connections": listing}, headers={"Cache-Control": "no-store"})


async def delete_connection(request: web.Request) -> web.Response:
    """DELETE /admin/connections/{id}: delete its tokens and what caches hold for it."""
    _require_admin(request)
    removed = await request.app[CONNECT].connections.remove(request.match_info["id"])
    if removed is None:
        raise ProblemError("no such connection", code=Code.NOT_FOUND, status=404)
    return web.Response(status=204)


def setup_connect_routes(router: web.UrlDispatcher, envelope: Envelope) -> None:
    """Register the connect and admin routes."""
    envelope.add_get(router, "/connect", index)
    envelope.add(router, "GET", "/connect/callback", callback)
    envelope.add(router, "POST", "/connect/callback", callback)
    envelope.add_get(router, "/connect/{kind}", start)
    envelope.add_get(router, "/admin/connections", list_connections)
    envelope.add(router, "DELETE", "/admin/connections/{id}", delete_connection)


def _failure(reason: str) -> web.Response:
    """The page for a sign-in that ended without a connection; the audit line says why."""
    note_outcome(reason)
    return pages.failure(reason)
