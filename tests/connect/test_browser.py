"""A real headless Chromium clicks through Individual Connect; availability then flows."""

from __future__ import annotations

import json
from pathlib import Path

from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.browser import chromium
from tests.support.connect import connect_settings
from tests.support.leaks import assert_no_leak
from tests.support.proxies import ProxyFactory, auth

ADELE = f"adele.vance@{MOCK_DOMAIN}"


async def test_browser_individual_connect_then_availability(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Sign in as Adele on the mock's consent page, Accept, land on 'Connected', query her."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    async with chromium(trusting=mock_graph.server_cert_pem) as browser:
        page = await browser.new_page()
        await page.goto(str(proxy.make_url("/connect/individual")))
        assert page.url.startswith(mock_graph.url)
        await page.get_by_label(f"Adele Vance ({ADELE})").check()
        await page.get_by_role("button", name="Accept").click()
        # The platform's cross-site POST back is posted again from the proxy's own page
        # (carrying the cookie that binds the sign-in to this browser), then "Connected".
        heading = page.get_by_role("heading", level=1, name="Connected")
        await heading.wait_for()
        await page.wait_for_url(str(proxy.make_url("/connect/callback")))
        text = await page.content()
        assert ADELE in text
        assert "Calendars.ReadBasic" in text
        assert_no_leak(text)
    body = {"schedules": [ADELE], "start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        answer = await resp.text()
    assert resp.status == 200, answer
    (entry,) = json.loads(answer)["schedules"]
    assert entry["error"] is None
    assert entry["items"]
