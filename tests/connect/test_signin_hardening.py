"""Sign-ins: the redirect URI never comes from a client's Host, an answer finishes a sign-in
only in the browser that started it, and floods of starts neither pass nor push anyone out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.config.load import load_settings
from proxy.config.schema import AUDIT_KEY_ENV, CLIENT_SECRET_ENV, TOKEN_KEY_ENV
from proxy.connect.flows import PendingFlows
from proxy.core.clock import ManualClock
from proxy.core.errors import ConfigError
from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.connect import TOKEN_KEY, connect_settings, platform_answer
from tests.support.proxies import ProxyFactory

ADELE = f"adele.vance@{MOCK_DOMAIN}"
CONNECT = """
[server]
host = "{host}"
[graph]
tenant_id = "t"
client_id = "c"
[connect]
kinds = ["individual"]
{redirect}
"""
ENV = {CLIENT_SECRET_ENV: "s", AUDIT_KEY_ENV: "a" * 40, TOKEN_KEY_ENV: TOKEN_KEY}
EVERYWHERE = "0.0.0.0"  # noqa: S104 (a configuration under test, nothing listens)


def config(tmp_path: Path, host: str, redirect: str = "") -> Path:
    """A config file with connect enabled, listening on ``host``."""
    path = tmp_path / "proxy.toml"
    path.write_text(CONNECT.format(host=host, redirect=redirect))
    return path


def test_redirect_uri_is_required_unless_the_proxy_listens_on_loopback(tmp_path: Path) -> None:
    """Without [connect] redirect_uri the redirect URI would come from the Host header: the
    configuration is refused unless the proxy listens on loopback (--host counts too)."""
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        load_settings(config(tmp_path, host), environ=ENV)
    for host in (EVERYWHERE, "192.0.2.10", "freebusy.example.com", "::"):
        with pytest.raises(ConfigError) as caught:
            load_settings(config(tmp_path, host), environ=ENV)
        assert any(p.startswith("connect.redirect_uri:") for p in caught.value.problems)
    with pytest.raises(ConfigError):
        load_settings(config(tmp_path, "127.0.0.1"), environ=ENV, host=EVERYWHERE)
    redirect = 'redirect_uri = "https://freebusy.example.com/connect/callback"'
    settings = load_settings(config(tmp_path, EVERYWHERE, redirect), environ=ENV)
    assert settings.connect.redirect_uri == "https://freebusy.example.com/connect/callback"


async def test_a_sign_in_under_another_host_name_is_refused_with_a_page(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Opened under a name that is not loopback (no redirect_uri configured), the start page
    says what to do, as a page with 400, and starts no sign-in."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    async with aiohttp.ClientSession() as session:
        url = proxy.make_url("/connect/individual")
        headers = {"Host": "freebusy.example.com"}
        async with session.get(url, headers=headers, allow_redirects=False) as refused:
            assert refused.status == 400
            assert refused.content_type == "text/html"
            assert "Open this page on this computer" in await refused.text()
            assert "Set-Cookie" not in refused.headers
        async with session.get(url, allow_redirects=False) as started:
            assert started.status == 302


async def test_an_answer_finishes_a_sign_in_only_in_the_browser_that_started_it(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Someone else's browser posting a sign-in's answer (login CSRF: a victim made to
    connect the attacker's account) gets "does not match", and the sign-in stays for the
    browser that started it. Without the cookie (the platform's POST back is cross-site, so
    SameSite=Lax leaves it out) the answer is posted again from the proxy's own page."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    async with aiohttp.ClientSession() as other:
        url = proxy.make_url("/connect/individual")
        async with other.get(url, allow_redirects=False) as started:
            (cookie,) = started.headers.getall("Set-Cookie")
    assert cookie.startswith("freebusy_signin=")
    assert {"HttpOnly", "SameSite=Lax", "Path=/connect"} <= {a.strip() for a in cookie.split(";")}
    answer = await platform_answer(proxy, mock_graph, "individual", user=ADELE, decision="accept")
    async with aiohttp.ClientSession() as stranger:
        url = proxy.make_url("/connect/callback")
        async with stranger.post(url, data=answer) as bounced:
            page = await bounced.text()
        assert bounced.status == 200
        assert "Finishing the sign-in" in page
        assert 'name="bounced"' in page
        assert '<script src="/static/bounce.js" defer>' in page
        assert "script-src 'self';" in bounced.headers["Content-Security-Policy"]
        async with stranger.post(url, data={**answer, "bounced": "1"}) as refused:
            assert refused.status == 400
            assert "does not match" in await refused.text()
    async with proxy.post("/connect/callback", data={**answer, "bounced": "1"}) as done:
        assert done.status == 200
        assert "Connected" in await done.text()


async def test_the_re_post_page_carries_no_wording_of_the_platform(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """The page that posts a cross-site answer again holds only what finishing the sign-in
    reads: an error's description and URI (the platform's own words) are left behind."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    answer = {
        "error": "access_denied",
        "error_description": "AADSTS65004: CANARY-platform-words",
        "error_uri": "https://login.example/error?CANARY-uri",
        "state": "some-state",
    }
    url = proxy.make_url("/connect/callback")
    async with aiohttp.ClientSession() as session, session.post(url, data=answer) as bounced:
        page = await bounced.text()
    assert bounced.status == 200
    assert 'name="error" value="access_denied"' in page
    assert 'name="state" value="some-state"' in page
    assert "CANARY" not in page
    assert "error_description" not in page
    assert "error_uri" not in page


async def test_floods_of_sign_ins_are_limited_per_client_and_push_no_one_out(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """The reproduction's flood (10,001 unauthenticated starts pushed a real sign-in out):
    starts from one address beyond connect.sign_ins_per_minute get a 429 page with
    Retry-After, and the person who started a sign-in from another address still finishes it."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    answer = await platform_answer(proxy, mock_graph, "individual", user=ADELE, decision="accept")
    # The flood comes from 127.0.0.2: the whole of 127/8 is this machine's loopback.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    statuses = []
    async with aiohttp.ClientSession(connector=connector) as flood:
        for _ in range(40):
            url = proxy.make_url("/connect/individual")
            async with flood.get(url, allow_redirects=False) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) >= 1
                    assert "Too many sign-ins" in await resp.text()
    assert statuses == [302] * 10 + [429] * 30
    async with proxy.post("/connect/callback", data=answer) as done:
        assert done.status == 200, await done.text()
        assert "Connected" in await done.text()


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Behind a reverse proxy in [server] trusted_proxies, X-Forwarded-For says whose starts
    count: many people behind it each get their own allowance (IPv6 per /64), while from any
    other peer the header is ignored, so a flood cannot claim to be many clients."""
    settings = connect_settings(mock_graph, tmp_path / "c.db")
    settings = replace(settings, server=replace(settings.server, trusted_proxies=("127.0.0.3",)))
    proxy = await make_proxy(mock_graph, settings=settings)
    url = proxy.make_url("/connect/individual")

    async def starts(local: str, forwarded: list[str]) -> list[int]:
        connector = aiohttp.TCPConnector(local_addr=(local, 0))
        statuses = []
        async with aiohttp.ClientSession(connector=connector) as session:
            for client in forwarded:
                headers = {"X-Forwarded-For": client}
                async with session.get(url, headers=headers, allow_redirects=False) as resp:
                    statuses.append(resp.status)
        return statuses

    people = [f"198.51.100.{n}" for n in range(12)]
    assert await starts("127.0.0.3", people) == [302] * 12
    # One /64 is one client: five and six starts from two of its addresses make eleven.
    ipv6 = ["2001:db8:1:2::1"] * 5 + ["2001:db8:1:2::ffff"] * 6
    assert await starts("127.0.0.3", ipv6) == [302] * 10 + [429]
    # Not from the trusted proxy: the header is a lie that buys nothing.
    spoofed = [f"203.0.113.{n}" for n in range(11)]
    assert await starts("127.0.0.4", spoofed) == [302] * 10 + [429]


def _flow(n: int) -> dict[str, Any]:
    return {"state": f"state-{n}", "auth_uri": "https://login.example/authorize"}


def test_pending_sign_ins_are_never_evicted_for_a_stranger() -> None:
    """A client's own newest sign-in replaces only its own oldest; with every slot taken, new
    sign-ins are refused rather than anyone's pending one dropped."""
    clock = ManualClock()
    flows = PendingFlows(timeout_s=600, clock=clock, capacity=4, per_client=2)
    assert flows.put("individual", _flow(0), client="person", browser="b" * 43)
    for n in range(1, 4):
        assert flows.put("individual", _flow(n), client="flood", browser="f" * 43)
    assert len(flows) == 3  # the flood's first was replaced by its third
    assert flows.put("individual", _flow(4), client="other", browser="o" * 43)
    assert not flows.put("individual", _flow(5), client="stranger", browser="s" * 43)
    assert flows.take("state-0", browser="f" * 43) == ("other_browser", None)
    found, pending = flows.take("state-0", browser="b" * 43)
    assert found == "ok"
    assert pending is not None
    assert pending.kind == "individual"
    clock.advance(601)
    assert flows.take("state-4", browser="o" * 43) == ("expired", None)
    assert flows.put("individual", _flow(6), client="stranger", browser="s" * 43)
    assert flows.take("state-2", browser="f" * 43) == ("expired", None)
    assert flows.take("never-started", browser="x" * 43) == ("unknown", None)
