"""The pages as HTTP answers: strict headers, no inline code, no named key fields, files served."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.mock import RunningMock
from proxy.web.console.frame import CONTENT_SECURITY_POLICY
from tests.support.connect import connect_settings
from tests.support.proxies import ProxyFactory

PAGES = ("/", "/console", "/view")
STRICT = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


async def fetch(client: TestClient[Any, Any], path: str) -> tuple[int, dict[str, str], str]:
    """GET ``path``: status, headers and text."""
    async with client.get(path) as resp:
        return resp.status, dict(resp.headers), await resp.text()


def assert_strict_page(headers: dict[str, str], text: str) -> None:
    """Strict headers; scripts and styles only from the proxy's files; nothing inline."""
    for name, value in STRICT.items():
        assert headers[name] == value, name
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert re.findall(r"<script(?![^>]*\bsrc=\"/static/)", text) == []
    assert "<style" not in text
    assert " style=" not in text
    assert re.search(r"(src|href)=\"(https?:)?//", text) is None  # nothing from elsewhere
    assert '<link rel="stylesheet" href="/static/site.css">' in text


@pytest.mark.parametrize("path", PAGES)
async def test_pages_are_strict_and_self_contained(proxy: TestClient[Any, Any], path: str) -> None:
    """Each page and every file it references is served by the proxy, with strict headers."""
    status, headers, text = await fetch(proxy, path)
    assert status == 200
    assert_strict_page(headers, text)
    for asset in re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", text):
        status, headers, body = await fetch(proxy, asset)
        assert status == 200, asset
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Content-Type"].split(";")[0] in (
            "text/css",
            "text/javascript",
            "image/svg+xml",
        )
        assert body


async def test_connect_pages_share_the_frame(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """The connect start page and a result page: same frame, which flow, what it grants, and a
    next step."""
    client = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    status, headers, text = await fetch(client, "/connect")
    assert status == 200
    assert_strict_page(headers, text)
    for words in (
        "Individual Connect Free/Busy",
        "Enterprise Connect Free/Busy",
        "Calendars.ReadBasic",
        "User.Read",
        "offline_access",
        'href="/connect/individual"',
        'href="/connect/enterprise"',
    ):
        assert words in text
    # Without the sign-in's cookie the answer is first posted again from the proxy's own
    # page (in the same frame); posted again, an unknown state is a result page.
    async with client.post("/connect/callback", data={"state": "unknown"}) as resp:
        bounce = await resp.text()
        assert_strict_page(dict(resp.headers), bounce)
    assert 'name="bounced"' in bounce
    async with client.post("/connect/callback", data={"state": "unknown", "bounced": "1"}) as resp:
        failure = await resp.text()
        assert_strict_page(dict(resp.headers), failure)
    assert 'href="/connect">Start again</a>' in failure


@pytest.mark.parametrize("path", ["/console", "/view"])
async def test_key_fields_cannot_be_submitted(proxy: TestClient[Any, Any], path: str) -> None:
    """No input has a name, so a form sent without scripts carries no key; the form stays
    hidden until the script shows it, and a notice says the page needs scripts."""
    _, _, text = await fetch(proxy, path)
    fields = re.findall(r"<(?:input|textarea|select)\b[^>]*>", text)
    assert fields
    assert [f for f in fields if " name=" in f] == []
    assert re.search(r'<input id="(admin|consumer)-key" type="password"', text)
    assert re.search(r'<form id="\w+" [^>]*method="post"[^>]*hidden>', text)
    assert "<noscript>" in text


async def test_home_links_where_to_go(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """GET / links the console, the week view, the API and the docs; connect only when on."""
    plain = await make_proxy(mock_graph)
    _, _, text = await fetch(plain, "/")
    for link in ('href="/console"', 'href="/view"', 'href="/openapi.json"', "docs/console.md"):
        assert link in text
    assert 'href="/connect' not in text
    connected = await make_proxy(
        mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db")
    )
    _, _, text = await fetch(connected, "/")
    assert 'href="/connect/individual"' in text


@pytest.mark.parametrize("name", ["nope.js", "..%2Fframe.py", "site.css.map", "__init__.py"])
async def test_unknown_static_files_are_404_problems(
    proxy: TestClient[Any, Any], name: str
) -> None:
    """Only the shipped files are served; anything else is a 404 problem document."""
    async with proxy.get(f"/static/{name}") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
        assert (await resp.json(content_type=None))["code"] == "not_found"


async def test_a_page_error_is_a_page(proxy: TestClient[Any, Any]) -> None:
    """A browser asking a page for too much gets an HTML page saying so, strict as the rest."""
    status, headers, text = await fetch(proxy, "/view?" + "x" * 5000)
    assert status == 414
    assert_strict_page(headers, text)
    assert '<p role="alert">the query string may be at most 4096 characters</p>' in text
