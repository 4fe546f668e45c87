"""Routes of the connect flows (/connect/...) and the admin API (/admin/connections)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from proxy.access.admin import require_admin
from proxy.connect.msal_apps import error_code
from proxy.connect.onboarding import complete
from proxy.connect.scopes import REQUESTED_SCOPES, excess_scopes, listed_permissions
from proxy.core.connections import Kind
from proxy.core.errors import BadRequest, Code, ProblemError, RateLimited, Refusal
from proxy.observability.audit_record import note_outcome
from proxy.sources.credentials import PLATFORM_ERRORS
from proxy.web.bodies import read_body
from proxy.web.clients import client_of, trusted_networks
from proxy.web.connect import pages
from proxy.web.envelope import Envelope
from proxy.web.keys import CONNECT, SETTINGS

log = logging.getLogger(__name__)

# The cookie that ties a sign-in to the browser that started it (see proxy/connect/flows.py).
BINDING_COOKIE = "freebusy_signin"
_BINDING = re.compile(r"^[A-Za-z0-9_-]{43}\Z")
# Without [connect] redirect_uri the proxy listens on loopback (the configuration insists), and
# the redirect URI is built only from a loopback Host: never from whatever name a client sends.
_LOOPBACK_HOST = re.compile(r"^(localhost|127(\.[0-9]{1,3}){3}|\[::1\])(:[0-9]{1,5})?\Z", re.ASCII)
# What the identity platform posts back, and our own marker of a re-post (pages.bounce).
_CALLBACK_FIELDS = 16
BOUNCED = "bounced"
# What msal's auth-code flow and our callback read from the answer.
_BOUNCED_FIELDS = frozenset({"code", "state", "client_info", "session_state", "error"})


def _redirect_uri(request: web.Request) -> str | None:
    """The configured redirect URI, one for the loopback Host the browser used, or None."""
    configured = request.app[SETTINGS].connect.redirect_uri
    if configured:
        return configured
    host = request.headers.get("Host", "")
    if not _LOOPBACK_HOST.match(host):
        return None
    return f"http://{host}/connect/callback"


async def index(request: web.Request) -> web.Response:
    """GET /connect: links to the enabled flows."""
    return pages.index(request.app[SETTINGS].connect.kinds)


async def start(request: web.Request) -> web.StreamResponse:
    """GET /connect/individual|enterprise: start msal's auth-code flow with PKCE, redirect."""
    kind = request.match_info["kind"]
    settings = request.app[SETTINGS].connect
    if kind not in settings.kinds:
        return _failure("disabled")
    redirect_uri = _redirect_uri(request)
    if redirect_uri is None:
        # A person opened the page under another name (a LAN address, a tunnel): tell them in
        # a page, not in problem+json.
        return _failure("wrong_address")
    runtime = request.app[CONNECT]
    trusted = trusted_networks(request.app[SETTINGS].server.trusted_proxies)
    client = client_of(request, trusted)
    try:
        runtime.starts.take(
            client,
            settings.sign_ins_per_minute,
            detail=f"at most {settings.sign_ins_per_minute} sign-ins per minute from one address",
        )
    except RateLimited as limited:
        return _failure("too_many_sign_ins", headers=limited.extra_headers())
    try:
        app = await runtime.starter()
    except PLATFORM_ERRORS:
        # msal's discovery failed: the identity platform is unreachable or answers nonsense.
        log.warning("cannot start a sign-in: the identity platform is unavailable")
        return _failure("sign_in_failed")
    flow: dict[str, Any] = app.initiate_auth_code_flow(
        list(REQUESTED_SCOPES),
        redirect_uri=redirect_uri,
        # The code comes back in a POST body, not in a URL that browsers and proxies log.
        response_mode="form_post",
        prompt="select_account",
    )
    connect_kind: Kind = "individual" if kind == "individual" else "enterprise"
    binding = request.cookies.get(BINDING_COOKIE, "")
    if not _BINDING.match(binding):
        binding = secrets.token_urlsafe(32)
    if not runtime.flows.put(connect_kind, flow, client=client, browser=binding):
        log.warning("sign-in refused: too many sign-ins are in progress")
        return _failure("too_many_in_progress", headers={"Retry-After": "60"})
    redirect = web.HTTPFound(flow["auth_uri"], headers={"Cache-Control": "no-store"})
    redirect.set_cookie(
        BINDING_COOKIE,
        binding,
        path="/connect",
        max_age=int(settings.flow_timeout_seconds) + 60,
        httponly=True,
        # Lax: not sent on the identity platform's cross-site POST back (pages.bounce re-posts
        # it from our own page), and never on a cross-site request a third party makes up.
        samesite="Lax",
        secure=redirect_uri.startswith("https://"),
    )
    raise redirect


async def callback(request: web.Request) -> web.Response:
    """GET/POST /connect/callback: finish the flow and show what was connected, or why not."""
    runtime = request.app[CONNECT]
    answer = await _callback_fields(request)
    binding = request.cookies.get(BINDING_COOKIE)
    bounced = answer.pop(BOUNCED, None) is not None
    if binding is None and request.method == "POST" and not bounced:
        # A cross-site POST carries no SameSite=Lax cookie: post it again from our own page,
        # with only what finishing the sign-in reads (never the platform's error wording).
        return pages.bounce({k: v for k, v in answer.items() if k in _BOUNCED_FIELDS})
    found, pending = runtime.flows.take(answer.get("state"), browser=binding)
    if pending is None:
        if found == "other_browser":
            log.info("a sign-in answer came back to a browser that did not start it")
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


async def _callback_fields(request: web.Request) -> dict[str, str]:
    """The identity platform's answer: form fields (POST) or query parameters (GET), each once.

    Anything else (bytes that are not ASCII, a field given twice, too many fields) is a 400
    page: nothing a real identity platform sends.
    """
    if request.method == "POST":
        if request.content_type != "application/x-www-form-urlencoded":
            raise _not_an_answer()
        try:
            text = (await read_body(request)).decode("ascii")
            pairs = parse_qsl(
                text, keep_blank_values=True, max_num_fields=_CALLBACK_FIELDS, errors="strict"
            )
        except ValueError:  # UnicodeDecodeError included
            raise _not_an_answer() from None
    else:
        pairs = list(request.query.items())
    fields = dict(pairs)
    if len(fields) != len(pairs) or len(fields) > _CALLBACK_FIELDS:
        raise _not_an_answer()
    return fields


def _not_an_answer() -> BadRequest:
    return BadRequest("this is not an answer of the identity platform", code=Code.INVALID_REQUEST)


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


def _failure(reason: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """The page for a sign-in that ended without a connection; the audit line says why."""
    note_outcome(reason)
    return pages.failure(reason, headers=headers)
