"""The device-login page a person opens to finish a device-code sign-in, as at Entra ID.

``GET /devicelogin`` asks for the code the device printed; posting it shows who signs in and
what the application asks for, with Accept and Decline; posting the decision finishes the
sign-in that the device is polling for.
"""

from __future__ import annotations

import html

from aiohttp import web

from proxy.mock.consent import graph_scope
from proxy.mock.delegated import _page, find_account
from proxy.mock.state import MockGraph
from proxy.mock.typedefs import GRAPH_KEY


def _code_form(message: str = "", *, status: int = 200) -> web.Response:
    """The first step: one field for the code."""
    alert = f'<p role="alert">{html.escape(message)}</p>' if message else ""
    return _page(
        "Enter code",
        f"{alert}<p>Enter the code displayed on your device or in your terminal.</p>"
        '<form method="post"><p><label for="user_code">Code</label> '
        '<input id="user_code" name="user_code" autocomplete="off" autofocus required></p>'
        '<button type="submit">Next</button></form>',
        status=status,
    )


def _consent_form(graph: MockGraph, user_code: str, requested: tuple[str, ...]) -> web.Response:
    """The second step: pick a test user, see the permissions, Accept or Decline."""
    admins = graph.settings.admins
    people = graph.organisation.people()
    options = "".join(
        f'<div><input type="radio" name="user" id="user-{i}" value="{html.escape(p.address)}"'
        f"{' checked' if i == 0 else ''}>"
        f' <label for="user-{i}">{html.escape(p.display_name)} ({html.escape(p.address)})'
        f"{' — administrator' if p.address in admins else ''}</label></div>"
        for i, p in enumerate(sorted(people, key=lambda p: p.address not in admins))
    )
    scopes = "".join(f"<li>{html.escape(graph_scope(s))}</li>" for s in requested)
    return _page(
        "Sign in to contoso.example (mock)",
        '<p class="tenant">Mock identity platform · device sign-in</p>'
        '<form method="post">'
        f'<input type="hidden" name="user_code" value="{html.escape(user_code)}">'
        "<p>Are you trying to sign in to an application on another device? Only continue if "
        "you started this sign-in yourself.</p>"
        "<fieldset><legend>Sign in as (mock test user)</legend>"
        f'<div class="accounts">{options}</div></fieldset>'
        '<div class="asks">The application asks for these permissions:'
        f"<ul>{scopes}</ul></div>"
        '<div class="buttons">'
        '<button type="submit" name="decision" value="decline">Decline</button>'
        '<button type="submit" class="accept" name="decision" value="accept">Accept</button>'
        "</div></form>",
    )


async def device_login_page(request: web.Request) -> web.Response:
    """GET /devicelogin: the page the device-code message sends people to."""
    request.app[GRAPH_KEY].counters.calls["devicelogin"] += 1
    return _code_form()


async def device_login(request: web.Request) -> web.Response:
    """POST /devicelogin: a code (show the consent), or a decision on it (finish the sign-in)."""
    graph = request.app[GRAPH_KEY]
    graph.counters.calls["devicelogin"] += 1
    posted = await request.post()
    user_code = str(posted.get("user_code", "")).strip().upper()
    device = graph.consent.pending_device(user_code)
    if device is None:
        return _code_form(
            "That code is not valid, has expired or was already used. Check it and try again.",
            status=400,
        )
    decision = posted.get("decision")
    if decision is None:
        return _consent_form(graph, user_code, device.requested)
    if decision != "accept":
        graph.decline_device_code(user_code)
        return _page(
            "Sign-in declined",
            "<p>You declined the sign-in. The application on your device was not signed in; "
            "you may close this window.</p>",
        )
    account = find_account(graph, str(posted.get("user", "")))
    if account is None:
        return _page("Sign in failed", "<p>Pick one of the accounts offered.</p>", status=400)
    graph.approve_device_code(user_code, account.address)
    return _page(
        "You are signed in",
        f"<p>You signed in as {html.escape(account.address)} to the application on your "
        "device. You may now close this window.</p>",
    )
