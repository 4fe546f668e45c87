"""Small, accessible HTML pages for every outcome of a sign-in; everything is escaped."""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping

from aiohttp import web

from proxy.core.connections import Connection

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
# The one script any page runs (the bounce page's form submits itself), allowed by its hash.
_SUBMIT = "document.forms[0].submit();"
_SUBMIT_HASH = base64.b64encode(hashlib.sha256(_SUBMIT.encode()).digest()).decode()


def page(
    title: str,
    body: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    submit: bool = False,
) -> web.Response:
    """Return an HTML page; ``body`` must already be escaped. ``submit``: the page's form
    submits itself (the only script a page may run); otherwise no script runs at all."""
    scripts = f"script-src 'sha256-{_SUBMIT_HASH}'; " if submit else ""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} - freebusy-proxy</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5}</style></head>"
        f'<body><main><h1 id="outcome">{html.escape(title)}</h1>{body}</main></body></html>'
    )
    if submit:
        document = document.replace("</body>", f"<script>{_SUBMIT}</script></body>")
    return web.Response(
        text=document,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            **(headers or {}),
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                f"default-src 'none'; {scripts}style-src 'unsafe-inline'; "
                "frame-ancestors 'none'; form-action 'self'"
            ),
            "Referrer-Policy": "no-referrer",
        },
    )


def failure(reason: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """Return the page for a failed sign-in (``headers``: e.g. Retry-After)."""
    status, title, text = FAILURES.get(reason, FAILURES["sign_in_failed"])
    return page(
        title,
        f'<p role="alert">{html.escape(text)}</p><p><a href="/connect">Start again</a></p>',
        status=status,
        headers=headers,
    )


def bounce(fields: Mapping[str, str]) -> web.Response:
    """A page that posts the identity platform's answer again, from this origin.

    The platform's POST back is cross-site, so the browser leaves out the SameSite=Lax cookie
    that binds the sign-in to it; the same fields posted from our own page carry it. The
    page holds the authorization code only in its body (no-store, never in a URL).
    """
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )
    return page(
        "Finishing the sign-in",
        '<form method="post" action="/connect/callback">'
        f'{inputs}<input type="hidden" name="bounced" value="1">'
        '<p><button type="submit">Continue</button></p></form>',
        submit=True,
    )


def connected(connection: Connection) -> web.Response:
    """Return the page confirming a connection: who, which organisation, which permissions."""
    what = (
        "your own free/busy"
        if connection.kind == "individual"
        else "free/busy of everyone in " + ", ".join(connection.domains)
    )
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in connection.scopes)
    return page(
        "Connected",
        "<dl>"
        f"<dt>Account</dt><dd>{html.escape(connection.account)}</dd>"
        f"<dt>Organisation</dt><dd>{html.escape(connection.tenant_name)} "
        f"({html.escape(connection.tenant_id)})</dd>"
        f"<dt>Connection</dt><dd>{html.escape(connection.kind.capitalize())} Connect: "
        f"{html.escape(what)}</dd>"
        f"<dt>Permissions granted</dt><dd><ul>{scopes}</ul></dd>"
        "</dl>",
    )


def index(kinds: tuple[str, ...]) -> web.Response:
    """Return the start page linking to the enabled connect flows."""
    links = "".join(
        f'<li><a href="/connect/{html.escape(k)}">{html.escape(k.capitalize())} Connect '
        "Free/Busy</a></li>"
        for k in kinds
    )
    return page(
        "Connect your calendar",
        "<p>The proxy asks only for Calendars.ReadBasic, User.Read and offline_access, and "
        "passes on nothing but free/busy times.</p>"
        f"<ul>{links}</ul>",
    )
