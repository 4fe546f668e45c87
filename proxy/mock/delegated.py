"""Delegated sign-in for the mock: authorize page, code/refresh/device grants, /organization.

The token endpoint in ``identity`` finds the grants below in ``identity.GRANTS``; they are
registered when this module is imported (``proxy.mock.endpoints`` does).
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web

from proxy.mock import identity
from proxy.mock.canary import stable_object_id
from proxy.mock.consent import OIDC_SCOPES, Grant, graph_scope, pkce_s256
from proxy.mock.identity import TokenRequest, aad_error
from proxy.mock.responses import (
    fault_answer,
    graph_error,
    json_response,
)
from proxy.mock.state import MockGraph
from proxy.mock.tokens import TokenRejected
from proxy.mock.typedefs import GRAPH_KEY

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# The directory role template id of Global Administrator, as it appears in ``wids``.
GLOBAL_ADMIN_ROLE = "62e90394-69f5-4237-9190-012177145e10"
_ID_TOKEN_SCOPES = ("openid", "profile", "email")
_AUTHORIZE_PARAMS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
    "response_mode",
    "client_info",
)


@dataclass(frozen=True, kw_only=True)
class Account:
    """Who can sign in: a person of the organisation, or an account from outside it."""

    address: str
    object_id: str
    display_name: str
    tenant_id: str
    """The account's home tenant: the organisation's, another one's, or personal accounts'."""


def find_account(graph: MockGraph, address: str) -> Account | None:
    """Return the person or outside account signing in as ``address``, or None."""
    mailbox = graph.organisation.lookup(address)
    if mailbox is not None and mailbox.kind == "person":
        return Account(
            address=mailbox.address,
            object_id=mailbox.object_id,
            display_name=mailbox.display_name,
            tenant_id=graph.settings.tenant_id,
        )
    for outside, tenant_id in graph.settings.outside_accounts:
        if outside.lower() == address.lower():
            return Account(
                address=outside.lower(),
                object_id=stable_object_id(tenant_id, "user", outside.lower()),
                display_name=outside.split("@")[0],
                tenant_id=tenant_id,
            )
    return None


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """Return ``url`` with ``params`` appended to whatever query it already has."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), *params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


# The sign-in page looks like a sign-in page: the account list scrolls inside the card, so
# the buttons stay in view however large the organisation.
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#eef1f5;color:#1b1b1b;"
    "line-height:1.5}main{max-width:34rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;"
    "box-shadow:0 2px 8px rgba(0,0,0,.15)}h1{font-size:1.4rem;margin:.2rem 0 1rem}"
    ".tenant{color:#5e5e5e;font-size:.85rem;margin:0}"
    "fieldset{border:1px solid #c8c8c8;padding:.25rem .75rem;margin:0}"
    "legend{font-weight:600;padding:0 .25rem}"
    ".accounts{max-height:14rem;overflow-y:auto;margin:.5rem 0}"
    ".accounts div{padding:.15rem 0}.accounts label{cursor:pointer}"
    "input[type=search]{width:100%;box-sizing:border-box;font:inherit;padding:.35rem .5rem;"
    "border:1px solid #8a8a8a;margin-top:.25rem}"
    ".asks{margin:.75rem 0 .5rem}.asks ul{margin:.25rem 0;padding-left:1.2rem}"
    ".buttons{display:flex;gap:.6rem;justify-content:flex-end;margin-top:1rem}"
    "button{font-size:1rem;padding:.4rem 1.4rem;border:1px solid #8a8a8a;background:#fff;"
    "cursor:pointer}button.accept{background:#0067b8;border-color:#0067b8;color:#fff}"
    ".none{color:#a4262c}"
)
# Filters the account list as one types; without scripts the list still scrolls.
_FILTER_SCRIPT = (
    "<script>(function(){var q=document.getElementById('account-search');"
    "var rows=document.querySelectorAll('.accounts div');var none=document.getElementById("
    "'no-match');q.hidden=false;q.previousElementSibling.hidden=false;"
    "q.addEventListener('input',function(){var t=q.value.trim().toLowerCase();var shown=0;"
    "rows.forEach(function(r){var hit=r.textContent.toLowerCase().indexOf(t)>=0;"
    "r.hidden=!hit;if(hit)shown++;});none.hidden=shown>0;});"
    # Enter in the search box must not submit the form (its first button declines).
    "q.addEventListener('keydown',function(e){if(e.key==='Enter')e.preventDefault();});"
    "})();</script>"
)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    """Return a small, accessible HTML page (the caller escapes what goes into ``body``)."""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(text=document, status=status, content_type="text/html", charset="utf-8")


def _back_to_client(params: Mapping[str, str], answer: dict[str, str]) -> web.Response:
    """Send the browser back to the redirect URI: a 302 with a query, or an auto-posted form."""
    if params.get("state"):
        answer = {**answer, "state": params["state"]}
    if params.get("response_mode") != "form_post":
        raise web.HTTPFound(_with_query(params["redirect_uri"], answer))
    fields = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in answer.items()
    )
    # As Entra ID does: a form the page submits itself, with a button if scripts are off.
    return _page(
        "Signing you in…",
        f'<form method="post" id="back" action="{html.escape(params["redirect_uri"])}">{fields}'
        '<noscript><button type="submit">Continue</button></noscript></form>'
        '<script>document.getElementById("back").submit()</script>',
    )


def _authorize_error(params: Mapping[str, str], error: str, description: str) -> web.Response:
    """Send the browser back to the client with ``error`` (RFC 6749 §4.1.2.1)."""
    return _back_to_client(params, {"error": error, "error_description": description})


def _check_authorize(graph: MockGraph, params: Mapping[str, str]) -> web.Response | None:
    """Return the answer to a bad authorize request, or None when it may proceed."""
    if params.get("client_id") != graph.settings.client_id:
        return _page(
            "Sign in failed",
            "<p>AADSTS700016: the application was not found in the directory.</p>",
            status=400,
        )
    redirect_uri = params.get("redirect_uri", "")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _page(
            "Sign in failed",
            "<p>AADSTS50011: the redirect URI in the request is not valid.</p>",
            status=400,
        )
    if params.get("response_mode", "query") not in ("query", "form_post"):
        return _page("Sign in failed", "<p>AADSTS900061: unsupported response_mode.</p>", 400)
    if params.get("response_type") != "code":
        return _authorize_error(
            params, "unsupported_response_type", "AADSTS70005: response_type must be code."
        )
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        return _authorize_error(
            params, "invalid_request", "AADSTS501491: PKCE with code_challenge_method S256 needed."
        )
    if not params.get("scope", "").split():
        return _authorize_error(params, "invalid_scope", "AADSTS70011: the scope is empty.")
    return None


def _authorize_form(graph: MockGraph, params: Mapping[str, str]) -> web.Response:
    """The sign-in and consent page: pick a test user of the organisation, Accept or Decline."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(params[name])}">'
        for name in _AUTHORIZE_PARAMS
        if name in params
    )
    people = [
        (
            p.address,
            p.display_name,
            " — administrator" if p.address in graph.settings.admins else "",
        )
        for p in graph.organisation.people()
    ] + [(a, a, " — outside the organisation") for a, _ in graph.settings.outside_accounts]
    hint = params.get("login_hint", "").lower()
    chosen = next((a for a, _, _ in people if a == hint), people[0][0])
    options = "".join(
        f'<div><input type="radio" name="user" id="user-{i}" value="{html.escape(address)}"'
        f"{' checked' if address == chosen else ''}>"
        f' <label for="user-{i}">{html.escape(name)} ({html.escape(address)})'
        f"{html.escape(note)}</label></div>"
        for i, (address, name, note) in enumerate(people)
    )
    scopes = "".join(
        f"<li>{html.escape(graph_scope(s))}</li>" for s in params.get("scope", "").split()
    )
    body = (
        f'<p class="tenant">Mock identity platform · {len(people)} test accounts</p>'
        '<form method="post">'
        f"{hidden}"
        "<fieldset><legend>Sign in as (mock test user)</legend>"
        '<label for="account-search" hidden>Find an account</label>'
        '<input type="search" id="account-search" placeholder="Type a name or address" '
        'autocomplete="off" hidden>'
        f'<div class="accounts">{options}</div>'
        '<p id="no-match" class="none" hidden>No account matches.</p></fieldset>'
        '<div class="asks">The application asks for these permissions:'
        f"<ul>{scopes}</ul></div>"
        '<div class="buttons">'
        '<button type="submit" name="decision" value="decline">Decline</button>'
        '<button type="submit" class="accept" name="decision" value="accept">Accept</button>'
        "</div></form>"
        f"{_FILTER_SCRIPT}"
    )
    return _page("Sign in to contoso.example (mock)", body)


async def authorize(request: web.Request) -> web.Response:
    """GET/POST /{tenant}/oauth2/v2.0/authorize: the sign-in and consent page, then a redirect."""
    graph = request.app[GRAPH_KEY]
    graph.counters.calls["authorize"] += 1
    if request.method == "GET":
        params: dict[str, str] = dict(request.query)
        refused = _check_authorize(graph, params)
        if refused is not None:
            return refused
        graph.consent.authorize_scopes.append(tuple(params["scope"].split()))
        return _authorize_form(graph, params)
    posted = await request.post()
    params = {key: value for key, value in posted.items() if isinstance(value, str)}
    refused = _check_authorize(graph, params)
    if refused is not None:
        return refused
    if params.get("decision") != "accept":
        return _authorize_error(
            params, "access_denied", "AADSTS65004: User declined to consent to access the app."
        )
    account = find_account(graph, params.get("user", ""))
    if account is None:
        return _page("Sign in failed", "<p>Pick one of the accounts offered.</p>", status=400)
    requested = tuple(params["scope"].split())
    grant = graph.consent.consent(
        user=account.address, client_id=graph.settings.client_id, requested=requested
    )
    code = graph.consent.issue_code(
        grant=grant,
        redirect_uri=params["redirect_uri"],
        code_challenge=params["code_challenge"],
        nonce=params.get("nonce"),
        requested=requested,
    )
    return _back_to_client(params, {"code": code})


def _b64url_json(value: Mapping[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def user_tokens(
    graph: MockGraph,
    request: TokenRequest,
    grant: Grant,
    *,
    requested: tuple[str, ...],
    nonce: str | None,
    public: bool,
) -> web.Response:
    """Return the token response for ``grant``: access, id and refresh token, client_info."""
    settings = graph.settings
    account = find_account(graph, grant.user)
    assert account is not None
    oid = account.object_id
    tenant_id = account.tenant_id
    oidc = [s for s in _ID_TOKEN_SCOPES if s in requested]
    # As in Entra ID, the token carries every permission consented to, not only those asked for.
    permissions = sorted(s for s in grant.scopes if s not in OIDC_SCOPES)
    admin = {"wids": [GLOBAL_ADMIN_ROLE]} if account.address in settings.admins else {}
    # An outside account's tokens come from its home tenant (and this Graph refuses them).
    home = (
        {}
        if tenant_id == settings.tenant_id
        else {"tid": tenant_id, "iss": f"https://sts.windows.net/{tenant_id}/"}
    )
    access = graph.tokens.issue_user_token(
        client_id=settings.client_id,
        user_oid=oid,
        upn=account.address,
        scopes=(*permissions, *oidc),
        extra={"name": account.display_name, **admin, **home},
    )
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join([*permissions, *oidc]),
        "expires_in": graph.tokens.lifetime_s,
        "ext_expires_in": graph.tokens.lifetime_s,
        "access_token": access,
        "client_info": _b64url_json({"uid": oid, "utid": tenant_id}),
    }
    if "openid" in requested:
        claims: dict[str, Any] = {
            "iss": f"{request.base_url}/{tenant_id}/v2.0",
            "aud": settings.client_id,
            "tid": tenant_id,
            "oid": oid,
            "sub": stable_object_id(tenant_id, "pairwise", settings.client_id, oid),
            "preferred_username": account.address,
            "name": account.display_name,
            # As with groupMembershipClaims "DirectoryRole" in the app's manifest.
            **admin,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        body["id_token"] = graph.tokens.issue_id_token(claims)
    if "offline_access" in requested and "offline_access" in grant.scopes:
        body["refresh_token"] = graph.consent.issue_refresh_token(grant, public=public)
    return json_response(body)


def _invalid_grant(code: int, description: str, **extra: str) -> web.Response:
    response = aad_error(400, "invalid_grant", code, description)
    if extra:
        body = json.loads(response.text or "{}")
        response.text = json.dumps({**body, **extra})
    return response


async def authorization_code(graph: MockGraph, request: TokenRequest) -> web.Response:
    """grant_type=authorization_code: redeem a code once, checking client, redirect and PKCE."""
    refused = identity._authenticate_client(graph, request)
    if refused is not None:
        return refused
    code = request.form.get("code", "")
    if code in graph.consent.redeemed:
        return _invalid_grant(54005, "OAuth2 Authorization code was already redeemed.")
    issued = graph.consent.codes.pop(code, None)
    if issued is None or issued.expires_at < time.monotonic():
        return _invalid_grant(
            70008, "The provided authorization code or refresh token has expired."
        )
    graph.consent.redeemed.add(code)
    if issued.client_id != request.client_id:
        return _invalid_grant(70000, "The provided authorization code was issued to another app.")
    if issued.redirect_uri != request.form.get("redirect_uri"):
        return _invalid_grant(
            50148, "The redirect_uri does not match the one of the authorization request."
        )
    verifier = request.form.get("code_verifier", "")
    if not verifier or pkce_s256(verifier) != issued.code_challenge:
        return _invalid_grant(
            501481, "The Code_Verifier does not match the code_challenge of the request."
        )
    grant = graph.consent.grants.get((issued.client_id, issued.user))
    if grant is None or grant.revoked:
        return _invalid_grant(65001, "The user or administrator has not consented.")
    return user_tokens(
        graph, request, grant, requested=issued.requested, nonce=issued.nonce, public=False
    )


async def refresh_token(graph: MockGraph, request: TokenRequest) -> web.Response:
    """grant_type=refresh_token: new tokens while the grant lives; invalid_grant once revoked."""
    token = request.form.get("refresh_token", "")
    public = graph.consent.is_public(token)
    if not public:
        refused = identity._authenticate_client(graph, request)
        if refused is not None:
            return refused
    elif request.client_id != graph.settings.client_id:
        return aad_error(400, "unauthorized_client", 700016, "The application was not found.")
    grant = graph.consent.grant_for_refresh_token(token)
    if token in graph.consent.spent or grant is None:
        if not graph.consent.redeem(token):
            return _invalid_grant(70000, "The provided refresh token was already redeemed.")
        return _invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
    if grant.revoked:
        return _invalid_grant(
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is "
            "needed. The user might have changed or reset their password.",
            suberror="bad_token",
        )
    graph.consent.redeem(token)
    graph.consent.refreshes += 1
    requested = tuple(request.form.get("scope", "").split())
    return user_tokens(graph, request, grant, requested=requested, nonce=None, public=public)


async def device_code(graph: MockGraph, request: TokenRequest) -> web.Response:
    """grant_type=device_code: pending, slow_down, declined, expired, or the tokens."""
    device = graph.consent.devices.get(request.form.get("device_code", ""))
    if device is None or device.client_id != request.client_id:
        return _invalid_grant(70000, "The provided device code is not valid.")
    now = time.monotonic()
    if device.expires_at < now:
        return aad_error(400, "expired_token", 70020, "The provided device code has expired.")
    if device.state == "declined":
        return aad_error(
            400, "authorization_declined", 70019, "The end user declined the authorization."
        )
    if device.state == "pending":
        too_soon = device.last_poll is not None and now - device.last_poll < device.interval_s / 2
        device.last_poll = now
        if too_soon:
            return aad_error(400, "slow_down", 70016, "Polling too fast; wait the interval.")
        return aad_error(
            400, "authorization_pending", 70016, "The user has not yet finished authorizing."
        )
    assert device.user is not None
    graph.consent.devices.pop(device.device_code)
    grant = graph.consent.consent(
        user=device.user, client_id=device.client_id, requested=device.requested
    )
    return user_tokens(graph, request, grant, requested=device.requested, nonce=None, public=True)


identity.GRANTS.update(
    {
        "authorization_code": authorization_code,
        "refresh_token": refresh_token,
        DEVICE_CODE_GRANT: device_code,
    }
)


async def devicecode(request: web.Request) -> web.Response:
    """POST /{tenant}/oauth2/v2.0/devicecode: start a device sign-in for a public client."""
    graph = request.app[GRAPH_KEY]
    graph.counters.calls["devicecode"] += 1
    posted = await request.post()
    if posted.get("client_id") != graph.settings.client_id:
        return aad_error(400, "unauthorized_client", 700016, "The application was not found.")
    scope = str(posted.get("scope", ""))
    if not scope.split():
        return aad_error(400, "invalid_scope", 70011, "The scope is empty.")
    settings = graph.settings
    device = graph.consent.start_device(
        client_id=settings.client_id,
        requested=tuple(scope.split()),
        lifetime_s=settings.device_code_lifetime_s,
        interval_s=settings.device_poll_interval_s,
    )
    verification_uri = f"{identity.browser_base_url(request)}/devicelogin"
    return json_response(
        {
            "device_code": device.device_code,
            "user_code": device.user_code,
            "verification_uri": verification_uri,
            "expires_in": settings.device_code_lifetime_s,
            "interval": settings.device_poll_interval_s,
            "message": (
                f"To sign in, use a web browser to open the page {verification_uri} and enter "
                f"the code {device.user_code} to authenticate."
            ),
        }
    )


async def organization(request: web.Request) -> web.Response:
    """GET /v1.0/organization: the signed-in user's tenant (id, name, verified domains)."""
    graph = request.app[GRAPH_KEY]
    graph.counters.calls["organization"] += 1
    fault = graph.faults.take("organization", None)
    if fault is not None:
        answer = fault_answer(
            request,
            fault,
            error=lambda status, code, headers: graph_error(
                request, status, code, "Injected failure.", headers=headers
            ),
            body=json_response,
        )
        if answer is not None:
            return answer
        await graph.faults.delay(fault)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        claims = graph.tokens.verify(token.strip()) if scheme.lower() == "bearer" else None
    except TokenRejected:
        claims = None
    if claims is None:
        return json_response(
            {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}},
            status=401,
        )
    scopes = set(str(claims.get("scp") or "").split()) | set(claims.get("roles") or [])
    if not scopes & {"User.Read", "Organization.Read.All", "Directory.Read.All"}:
        return json_response(
            {
                "error": {
                    "code": "Authorization_RequestDenied",
                    "message": "Insufficient privileges.",
                }
            },
            status=403,
        )
    domain = graph.organisation.domain
    return json_response(
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#organization",
            "value": [
                {
                    "id": graph.settings.tenant_id,
                    "displayName": "Contoso (mock)",
                    "verifiedDomains": [
                        {
                            "capabilities": "Email, OfficeCommunicationsOnline",
                            "isDefault": True,
                            "isInitial": False,
                            "name": domain,
                            "type": "Managed",
                        },
                        {
                            "capabilities": "Email",
                            "isDefault": False,
                            "isInitial": True,
                            "name": "contosomock.onmicrosoft.example",
                            "type": "Managed",
                        },
                    ],
                }
            ],
        }
    )


async def grants(request: web.Request) -> web.Response:
    """GET /_mock/grants: every delegated grant (user, scopes, revoked); never tokens."""
    book = request.app[GRAPH_KEY].consent
    return json_response(
        [
            {"user": g.user, "scopes": sorted(g.scopes), "revoked": g.revoked}
            for g in book.grants.values()
        ]
    )


async def switch_grant(request: web.Request) -> web.Response:
    """POST /_mock/grants {"user", "revoke": true | "add_scopes": [...]}: script a grant change."""
    graph = request.app[GRAPH_KEY]
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        return json_response({"error": 'expected {"user": ...}'}, status=400)
    if body.get("revoke") is True:
        changed = graph.revoke_grant(body["user"])
    elif isinstance(body.get("add_scopes"), list):
        changed = graph.grant_extra_scopes(body["user"], *map(str, body["add_scopes"]))
    else:
        return json_response({"error": "expected revoke or add_scopes"}, status=400)
    return json_response({"changed": changed})


async def decide_device(request: web.Request) -> web.Response:
    """POST /_mock/devicecode {"user_code", "user" | "decline": true}: finish a device sign-in."""
    graph = request.app[GRAPH_KEY]
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("user_code"), str):
        return json_response({"error": 'expected {"user_code": ...}'}, status=400)
    if body.get("decline") is True:
        done = graph.decline_device_code(body["user_code"])
    elif isinstance(body.get("user"), str):
        done = graph.approve_device_code(body["user_code"], body["user"])
    else:
        return json_response({"error": "expected user or decline"}, status=400)
    return json_response({"done": done}, status=200 if done else 404)
