"""A real headless Chromium clicks through Individual Connect and the device-login page."""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path

import aiohttp
import pytest

from proxy.mock import MOCK_CLIENT_ID, MOCK_DOMAIN, MOCK_TENANT_ID, RunningMock
from tests.support.browser import chromium, chromium_executable
from tests.support.connect import connect_settings
from tests.support.leaks import assert_no_leak
from tests.support.proxies import ProxyFactory, auth

ADELE = f"adele.vance@{MOCK_DOMAIN}"
MEGAN = f"megan.bowen@{MOCK_DOMAIN}"


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
        # The same five permissions the consent page asked for.
        for permission in ("Calendars.ReadBasic", "User.Read", "offline_access", "openid"):
            assert f"<li>{permission}</li>" in text
        assert_no_leak(text)
    body = {"schedules": [ADELE], "start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        answer = await resp.text()
    assert resp.status == 200, answer
    (entry,) = json.loads(answer)["schedules"]
    assert entry["error"] is None
    assert entry["items"]


async def test_browser_device_login_page(mock_graph: RunningMock) -> None:
    """The page a device-code message names works in a browser: code, account, Accept."""
    devicecode = f"{mock_graph.url}/{MOCK_TENANT_ID}/oauth2/v2.0/devicecode"
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=mock_graph.ca_file))
    async with aiohttp.ClientSession(connector=connector) as session:
        form = {"client_id": MOCK_CLIENT_ID, "scope": "Calendars.ReadBasic offline_access"}
        async with session.post(devicecode, data=form) as resp:
            started = await resp.json()
    found = re.search(r"open the page (\S+) and enter the code (\w+)", started["message"])
    assert found
    url, code = found.groups()
    assert url == f"{mock_graph.url}/devicelogin"
    async with chromium(trusting=mock_graph.server_cert_pem) as browser:
        page = await browser.new_page()
        await page.goto(url)
        await page.get_by_label("Code").fill(code)
        await page.get_by_role("button", name="Next").click()
        await page.get_by_label(f"Megan Bowen ({MEGAN}) — administrator").check()
        await page.get_by_role("button", name="Accept").click()
        heading = page.get_by_role("heading", level=1)
        await heading.wait_for()
        assert await heading.inner_text() == "You are signed in"
    (device,) = mock_graph.graph.consent.devices.values()
    assert (device.state, device.user) == ("approved", MEGAN)


def test_a_missing_chromium_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without a Chromium the browser tests fail saying which variable or package is missing."""
    monkeypatch.setenv("FREEBUSY_PROXY_CHROMIUM", str(tmp_path / "chromium"))
    with pytest.raises(pytest.fail.Exception, match=r"FREEBUSY_PROXY_CHROMIUM=.* is not an exec"):
        chromium_executable()
    monkeypatch.delenv("FREEBUSY_PROXY_CHROMIUM")
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"no Chromium found.*apt-get install chromium"):
        chromium_executable()
