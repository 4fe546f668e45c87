"""The pages: GET / (where to go), /console (for operators), /view (a week of availability).

The console and the week view are shells their scripts fill in: the admin key or consumer key
stays in the browser (session storage) and travels only as a bearer header to the JSON API,
so no key ever appears in a URL, a form submission or a log line. Their inputs have no
``name``, so even a form submitted without scripts sends nothing.
"""

from __future__ import annotations

import html

from aiohttp import web

from proxy.web.console.frame import page
from proxy.web.keys import SETTINGS

_NOSCRIPT = (
    '<noscript><p class="notice" role="alert">This page needs JavaScript: it keeps the key in '
    "this tab only and sends it as a header, never in a link. The JSON API works without it "
    '(see <a href="/openapi.json">/openapi.json</a>).</p></noscript>'
)


def _connect_enabled(request: web.Request) -> bool:
    return bool(request.app[SETTINGS].connect.kinds)


async def home(request: web.Request) -> web.Response:
    """GET /: what this proxy is and where each kind of visitor goes next."""
    kinds = request.app[SETTINGS].connect.kinds
    connect = ""
    if kinds:
        flows = "".join(
            f'<li><a href="/connect/{html.escape(k)}">{html.escape(k.capitalize())} Connect '
            "Free/Busy</a></li>"
            for k in kinds
        )
        connect = (
            '<section class="card"><h2><a href="/connect">Connect a calendar</a></h2>'
            "<p>Give the proxy delegated access to free/busy: one person's own, or an "
            f"organisation's through its administrator.</p><ul>{flows}</ul></section>"
        )
    body = (
        '<p class="kicker">Free/busy proxy for Microsoft Graph</p>'
        "<h1>freebusy-proxy</h1>"
        '<p class="lead">Scheduling apps ask this proxy when people are busy; it asks Microsoft '
        "Graph and passes on status, start and end, nothing else: no subjects, no locations, "
        "no attendees.</p>"
        '<div class="cards">'
        '<section class="card"><h2><a href="/view">Week view</a></h2>'
        "<p>Enter a consumer API key and a few addresses to see their week, drawn from the "
        "same API your app uses, with that key's policy.</p></section>"
        '<section class="card"><h2><a href="/console">Console</a></h2>'
        "<p>For operators (admin key): readiness, connections, consumers and what Graph "
        "costs.</p></section>"
        f"{connect}"
        '<section class="card"><h2><a href="/openapi.json">API</a></h2>'
        "<p>The OpenAPI 3.1 description of every endpoint: the JSON API, the Graph, Google and "
        "iCalendar dialects, probes.</p>"
        '<ul><li><a href="/healthz">/healthz</a> liveness</li>'
        '<li><a href="/readyz">/readyz</a> readiness</li>'
        '<li><a href="/metrics">/metrics</a> Prometheus metrics</li></ul></section>'
        '<section class="card"><h2>Documentation</h2>'
        "<p>In the source tree: <code>README.md</code>, and <code>docs/</code> "
        "(<code>docs/console.md</code> for these pages, <code>docs/threat-model.md</code> "
        "for what is protected and how).</p></section>"
        "</div>"
    )
    return page("Home", body, current="/", connect=_connect_enabled(request))


async def console(request: web.Request) -> web.Response:
    """GET /console: the admin console's shell (console.js fills it in with the admin key)."""
    body = (
        '<div class="page-head"><div><p class="kicker">Operator console</p><h1>Console</h1>'
        '</div><div id="toolbar" class="toolbar" hidden>'
        '<span id="updated" class="muted" aria-live="polite"></span>'
        '<button type="button" id="refresh" class="button">Refresh</button>'
        '<button type="button" id="sign-out" class="button">Sign out</button></div></div>'
        f"{_NOSCRIPT}"
        '<form id="login" class="card narrow" method="post" action="/console" hidden>'
        "<h2>Sign in with the admin key</h2>"
        "<p>The key stays in this browser tab (session storage) and is sent only as an "
        "<code>Authorization</code> header.</p>"
        '<label for="admin-key">Admin key</label>'
        '<input id="admin-key" type="password" autocomplete="off" spellcheck="false" required>'
        '<p id="login-error" class="error" role="alert" hidden></p>'
        '<button type="submit" class="button primary">Sign in</button></form>'
        '<div id="dashboard" hidden>'
        '<p id="console-error" class="error" role="alert" hidden></p>'
        '<section aria-labelledby="h-readiness"><h2 id="h-readiness">Readiness</h2>'
        '<div id="readiness" class="checks"></div></section>'
        '<section aria-labelledby="h-connections"><h2 id="h-connections">Connections</h2>'
        '<div id="connections"></div></section>'
        '<section aria-labelledby="h-consumers"><h2 id="h-consumers">Consumers</h2>'
        '<div id="consumers"></div></section>'
        '<section aria-labelledby="h-economy"><h2 id="h-economy">Graph economy '
        '<span class="muted">since this process started, from the counters /metrics '
        "exports</span></h2>"
        '<div id="economy" class="stats"></div></section>'
        "</div>"
    )
    return page(
        "Console",
        body,
        scripts=("console.js",),
        current="/console",
        connect=_connect_enabled(request),
    )


async def week(request: web.Request) -> web.Response:
    """GET /view: the week view's shell (week.js asks /v1/availability with the consumer key)."""
    body = (
        '<p class="kicker">Availability</p><h1>Week view</h1>'
        f"{_NOSCRIPT}"
        '<form id="query" class="card query" method="post" action="/view" hidden>'
        '<div class="field"><label for="consumer-key">Consumer API key</label>'
        '<input id="consumer-key" type="password" autocomplete="off" spellcheck="false" '
        "required></div>"
        '<div class="field wide"><label for="schedules">Addresses (up to 8)</label>'
        '<input id="schedules" type="text" spellcheck="false" autocomplete="off" required '
        'placeholder="adele.vance@contoso.example, alex.wilber@contoso.example"></div>'
        '<div class="field"><label for="week-of">Week of</label>'
        '<input id="week-of" type="date" required></div>'
        '<div class="field"><label for="time-zone">Time zone</label>'
        '<select id="time-zone"></select></div>'
        '<div class="actions"><button type="button" id="previous" class="button" '
        'aria-label="Previous week">&larr;</button>'
        '<button type="submit" class="button primary">Show</button>'
        '<button type="button" id="next" class="button" aria-label="Next week">&rarr;</button>'
        "</div></form>"
        '<p id="view-status" class="muted" aria-live="polite"></p>'
        '<p id="view-error" class="error" role="alert" hidden></p>'
        '<div id="legend" class="legend"></div>'
        '<div id="week" class="week" hidden></div>'
    )
    return page(
        "Week view",
        body,
        scripts=("week.js",),
        current="/view",
        connect=_connect_enabled(request),
    )
