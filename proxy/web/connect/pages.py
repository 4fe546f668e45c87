"""Small, accessible HTML pages for every outcome of a sign-in; everything is escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping

from aiohttp import web

from proxy.connect.scopes import listed_permissions
from proxy.core.connections import Connection
from proxy.web.console import frame

# Our own words for every way a sign-in can end; upstream error text is never shown.
FAILURES: dict[str, tuple[int, str, str]] = {
    "declined": (
        403,
        "Consent declined",
        "You declined the permissions, so nothing was connected. You can start again at any time.",
    ),
    "state_mismatch": (
        400,
        "This sign-in does not match",
        "The answer from Microsoft does not belong to a sign-in started here (state mismatch). "
        "Nothing was connected. Please start again.",
    ),
    "expired": (
        400,
        "This sign-in has expired",
        "The sign-in took too long and has expired. Nothing was connected. Please start again.",
    ),
    "wrong_account": (
        403,
        "Wrong account type",
        "Please sign in with a work or school account of your organisation; personal Microsoft "
        "accounts cannot be connected.",
    ),
    "not_admin": (
        403,
        "Wrong account type: an administrator is needed",
        "Enterprise Connect needs an administrator of the organisation. Ask one to connect, or "
        "use Individual Connect for your own calendar.",
    ),
    "wrong_tenant": (
        403,
        "Wrong account type: another organisation",
        "This account belongs to an organisation this proxy does not serve.",
    ),
    "over_privileged": (
        403,
        "Too many permissions granted",
        "The account granted more than the Free/Busy permissions (Calendars.ReadBasic, "
        "User.Read, offline_access). This proxy refuses such a connection; remove the extra "
        "permissions from the app's consent and connect again.",
    ),
    "missing_scopes": (
        403,
        "Permissions missing",
        "The sign-in did not grant Calendars.ReadBasic and User.Read, so free/busy cannot be read.",
    ),
    "no_refresh_token": (
        403,
        "Offline access missing",
        "The sign-in did not grant offline_access; the connection would stop within the hour.",
    ),
    "organization_unavailable": (
        502,
        "Organisation not readable",
        "The organisation's details could not be read. Nothing was connected. Please try again.",
    ),
    "sign_in_failed": (
        502,
        "Sign-in failed",
        "Microsoft's identity platform did not complete the sign-in. Nothing was connected.",
    ),
    "disabled": (404, "Not available", "This kind of connection is not enabled here."),
    "wrong_address": (
        400,
        "Open this page on this computer",
        "Without a redirect URI in its configuration, this proxy takes sign-ins only at its "
        "loopback address (http://localhost:PORT/connect). Open it there, or ask the operator "
        "to set [connect] redirect_uri.",
    ),
    "too_many_sign_ins": (
        429,
        "Too many sign-ins",
        "Too many sign-ins were started from this address. Please wait a minute and start again.",
    ),
    "too_many_in_progress": (
        503,
        "Too many sign-ins in progress",
        "Too many sign-ins are in progress right now. Please try again in a few minutes.",
    ),
}


FLOWS = {
    "individual": (
        "Individual Connect Free/Busy",
        "You connect your own calendar: the proxy may read your free/busy (when you are busy, "
        "never what the meetings are) and answer scheduling apps with it.",
    ),
    "enterprise": (
        "Enterprise Connect Free/Busy",
        "An administrator connects the whole organisation once: the proxy may read the free/busy "
        "of every mailbox in it (when people are busy, never what the meetings are).",
    ),
}
PERMISSIONS = (
    ("Calendars.ReadBasic", "read when calendars are busy (the proxy passes on only times)"),
    ("User.Read", "read who signed in and the organisation's name and domains"),
    ("offline_access", "keep access without you signing in again, until revoked"),
)
_NEXT = (
    '<p class="next"><a class="button primary" href="/view">See availability in the week view'
    '</a><a class="button" href="/console">Manage connections in the console</a></p>'
)


def page(title: str, body: str, *, status: int = 200) -> web.Response:
    """Return a connect page in the shared frame; ``body`` must already be escaped."""
    return frame.page(title, body, status=status, current="/connect")


def failure(reason: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """Return the page for a failed sign-in: what happened, in our words, and what to do next
    (``headers``: e.g. Retry-After)."""
    status, title, text = FAILURES.get(reason, FAILURES["sign_in_failed"])
    response = page(
        title,
        '<div class="card flow"><p class="kicker">Sign-in ended: nothing was connected</p>'
        f'<h1 id="outcome">{html.escape(title)}</h1>'
        f'<p role="alert">{html.escape(text)}</p>'
        '<p class="next"><a class="button primary" href="/connect">Start again</a>'
        '<a class="button" href="/">Back to the start page</a></p></div>',
        status=status,
    )
    response.headers.update(headers or {})
    return response


def bounce(fields: Mapping[str, str]) -> web.Response:
    """A page that posts the identity platform's answer again, from this origin.

    The platform's POST back is cross-site, so the browser leaves out the SameSite=Lax cookie
    that binds the sign-in to it; the same fields posted from our own page carry it. The
    page's own script (bounce.js) submits the form; without scripts, its button does. The
    authorization code is only in the page's body (no-store), never in a URL.
    """
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return frame.page(
        "Finishing the sign-in",
        '<div class="card flow"><p class="kicker">Connect</p>'
        '<h1 id="outcome">Finishing the sign-in</h1>'
        '<form id="bounce" method="post" action="/connect/callback">'
        f'{inputs}<input type="hidden" name="bounced" value="1">'
        '<p class="next"><button class="button primary" type="submit">Continue</button></p>'
        "</form></div>",
        scripts=("bounce.js",),
        current="/connect",
    )


def connected(connection: Connection) -> web.Response:
    """Return the page confirming a connection: who, which organisation, which permissions."""
    flow, _ = FLOWS[connection.kind]
    what = (
        "your own free/busy"
        if connection.kind == "individual"
        else "free/busy of everyone in " + ", ".join(connection.domains)
    )
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in listed_permissions(connection.scopes))
    return page(
        "Connected",
        f'<div class="card flow"><p class="kicker">{html.escape(flow)}</p>'
        '<h1 id="outcome">Connected</h1>'
        f"<p>The proxy may now answer for {html.escape(what)}: busy times only.</p>"
        '<dl class="facts">'
        f"<dt>Account</dt><dd>{html.escape(connection.account)}</dd>"
        f"<dt>Organisation</dt><dd>{html.escape(connection.tenant_name)} "
        f"({html.escape(connection.tenant_id)})</dd>"
        f"<dt>Connection</dt><dd>{html.escape(connection.kind.capitalize())} Connect: "
        f"{html.escape(what)}</dd>"
        f"<dt>Permissions granted</dt><dd><ul>{scopes}</ul></dd>"
        "</dl><p>offline_access is listed because Microsoft issued a refresh token, which is "
        "what it grants; access tokens never list it.</p>"
        f"{_NEXT}</div>",
    )


def index(kinds: tuple[str, ...]) -> web.Response:
    """Return the start page: each enabled flow, what it grants, and its button."""
    permissions = "".join(
        f"<li><code>{html.escape(name)}</code>: {html.escape(why)}</li>"
        for name, why in PERMISSIONS
    )
    flows = "".join(
        f'<section class="card"><h2>{html.escape(FLOWS[k][0])}</h2>'
        f"<p>{html.escape(FLOWS[k][1])}</p>"
        f'<p><a class="button primary" href="/connect/{html.escape(k)}">Start '
        f"{html.escape(k.capitalize())} Connect</a></p></section>"
        for k in kinds
        if k in FLOWS
    )
    return page(
        "Connect your calendar",
        '<p class="kicker">Connect</p><h1 id="outcome">Connect your calendar</h1>'
        '<p class="lead">You sign in with Microsoft and consent to these permissions, and '
        "nothing else:</p>"
        f"<ul>{permissions}</ul>"
        "<p>The proxy passes on nothing but free/busy times: no subjects, locations or "
        "attendees. An administrator can revoke the connection in the console at any time.</p>"
        f'<div class="cards">{flows}</div>',
    )
