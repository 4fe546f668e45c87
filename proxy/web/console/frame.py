"""The frame every HTML page shares: head, header, one stylesheet, and strict security headers."""

from __future__ import annotations

import html
from collections.abc import Sequence
from http import HTTPStatus

from aiohttp import web

from proxy.core.errors import ProblemError

# Scripts and styles only from the proxy's own files (no inline code, no other origin); the
# scripts talk to the proxy only; no page may be framed, and no form posts elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STYLESHEET = "/static/site.css"
_CURRENT = ' aria-current="page"'
_NAV = (("/", "Home"), ("/console", "Console"), ("/view", "Week view"), ("/connect", "Connect"))


def page(
    title: str,
    body: str,
    *,
    status: int = 200,
    scripts: Sequence[str] = (),
    current: str | None = None,
    connect: bool = True,
) -> web.Response:
    """An HTML page in the shared frame; ``body`` must already be escaped.

    ``scripts``: names of the proxy's own static scripts; ``current``: the path whose menu
    entry is marked as this page; ``connect``: whether the menu offers the connect flows.
    """
    menu = "".join(
        f'<a href="{path}"{_CURRENT if path == current else ""}>{label}</a>'
        for path, label in _NAV
        if connect or path != "/connect"
    )
    tags = "".join(f'<script src="/static/{html.escape(name)}" defer></script>' for name in scripts)
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} - freebusy-proxy</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{STYLESHEET}">{tags}</head>'
        '<body><header class="topbar"><a class="brand" href="/">'
        '<span class="brand-mark" aria-hidden="true"></span>freebusy-proxy</a>'
        f'<nav aria-label="Main">{menu}</nav></header>'
        f"<main>{body}</main>"
        '<footer class="footer">Free/busy from Microsoft Graph, minimized: status, start and '
        'end, nothing else. <a href="/openapi.json">API</a></footer>'
        "</body></html>"
    )
    return web.Response(
        text=document,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=PAGE_HEADERS,
    )


def page_problem(request: web.Request, error: ProblemError) -> web.StreamResponse:
    """The error shape of routes a browser reads: the problem as a page, in our words."""
    phrase = HTTPStatus(error.status).phrase
    response = page(
        phrase,
        f'<h1 id="outcome">{html.escape(phrase)}</h1>'
        f'<p role="alert">{html.escape(error.detail)}</p>'
        '<p class="next"><a class="button" href="/">Back to the start page</a></p>',
        status=error.status,
    )
    response.headers.update(error.extra_headers())
    return response
