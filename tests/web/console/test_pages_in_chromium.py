"""The console and the week view in Debian's Chromium: what people see, what the pages send.

Every page is photographed at 1280x800 (FREEBUSY_SCREENSHOTS, default build/screenshots);
every request the pages make and every answer they get is scanned for canaries and keys.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Dialog, Page, expect

from proxy.access.consumers import new_key
from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN, RunningMock
from tests.support.browser import VIEWPORT, Traffic, chromium, screenshot_path
from tests.support.connect import ADMIN_KEY, admin, connect_settings
from tests.support.leaks import assert_no_leak
from tests.support.proxies import (
    AUDIT_KEY,
    KEY_ALL,
    KEY_ONE,
    ProxyFactory,
    auth,
    consumer,
    proxy_settings,
)

ADELE = f"adele.vance@{MOCK_DOMAIN}"
KEY_BUSY, KEY_BUSY_SHA = new_key()
WRONG_KEY = "fbp_not-the-admin-key"
KEYS = (ADMIN_KEY, KEY_ALL, KEY_ONE, KEY_BUSY)
SECRETS = (*KEYS, WRONG_KEY, MOCK_CLIENT_SECRET, AUDIT_KEY, "CANARY")
Block = tuple[str, int, int, str, float, float]


def at(client: TestClient[Any, Any], path: str) -> str:
    """The absolute URL of ``path`` on the proxy under test."""
    return str(client.make_url(path))


async def shot(page: Page, name: str) -> None:
    """Photograph the viewport (1280x800) into the screenshot folder."""
    await page.screenshot(path=screenshot_path(name))


async def scan(traffic: Traffic, origin: str, *, bearer: dict[str, str]) -> None:
    """Nothing forbidden in any page, request or answer; a key only ever in an Authorization
    header, and only to the proxy's routes listed for it in ``bearer`` (key -> path prefix)."""
    await traffic.settled()
    assert traffic.requests
    authorized = 0
    for request in traffic.requests:
        # Exact secrets only: the sign-in's random state and PKCE values may spell "eyJ".
        for name, value in (("url", request.url), ("body", request.body), *request.headers.items()):
            if name == "authorization":
                key = value.removeprefix("Bearer ")
                assert request.url.startswith(origin + bearer[key]), request.url
                authorized += 1
            else:
                for secret in SECRETS:
                    assert secret not in value, (name, secret[:8])
    assert authorized
    for url, body in traffic.bodies:
        if url.startswith(origin):
            assert_no_leak(body)
    assert_no_leak(*traffic.pages)
    for html in traffic.pages:
        for key in KEYS:
            assert key not in html


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The access log lines written so far in this test."""
    return [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]


async def test_console_shows_and_revokes_a_connection_made_in_the_browser(
    make_proxy: ProxyFactory,
    mock_graph: RunningMock,
    tmp_path: Path,
    log_capture: pytest.LogCaptureFixture,
) -> None:
    """Connect Adele through the pages (the mock's searchable sign-in), sign into the console
    with the admin key, see her connection, revoke it, see the status change; the key lives in
    session storage and travels only as a header to /admin/, never in a URL or a log line."""
    trail = tmp_path / "audit.jsonl"
    settings = connect_settings(mock_graph, tmp_path / "c.db")
    proxy = await make_proxy(
        mock_graph, settings=replace(settings, audit=replace(settings.audit, file=trail))
    )
    traffic = Traffic()
    async with chromium(trusting=mock_graph.server_cert_pem) as browser:
        page = traffic.watch(await browser.new_page(viewport=VIEWPORT))
        await page.goto(at(proxy, "/"))
        await traffic.snapshot(page)
        await shot(page, "home.png")
        await page.get_by_role("link", name="Connect a calendar").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Connect your calendar")
        await traffic.snapshot(page)
        await shot(page, "connect.png")
        await page.get_by_role("link", name="Start Individual Connect").click()
        await page.wait_for_url(f"{mock_graph.url}/**")
        # The mock's sign-in: a long list, searchable, the buttons in view.
        accounts = page.locator(".accounts > div")
        assert await accounts.count() > 20
        await page.get_by_role("searchbox", name="Find an account").fill("adele")
        await expect(page.locator(".accounts > div:visible")).to_have_count(1)
        await expect(page.get_by_role("button", name="Accept")).to_be_in_viewport()
        await expect(page.get_by_role("button", name="Decline")).to_be_in_viewport()
        await page.get_by_label(f"Adele Vance ({ADELE})").check()
        await shot(page, "mock-sign-in.png")
        await page.get_by_role("button", name="Accept").click()
        await page.wait_for_url(at(proxy, "/connect/callback"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("Connected")
        assert "Individual Connect Free/Busy" in await traffic.snapshot(page)
        await shot(page, "connected.png")
        # A scheduling app asks about her, through the new connection.
        week = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-21T00:00:00Z"}
        body = {"schedules": [ADELE], **week}
        async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
            assert resp.status == 200
        day = {"start": "2026-03-17T09:00:00Z", "end": "2026-03-17T17:00:00Z"}
        body = {"schedules": [ADELE], **day}
        async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
            assert resp.status == 200  # from the cache
        # The result page's next step: the console.
        await page.get_by_role("link", name="Manage connections in the console").click()
        await page.wait_for_url(at(proxy, "/console"))
        await page.get_by_label("Admin key").fill(WRONG_KEY)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#login-error")).to_contain_text("not the admin key")
        await page.get_by_label("Admin key").fill(ADMIN_KEY)
        await page.get_by_role("button", name="Sign in").click()
        row = page.locator("tr[data-connection]", has_text=ADELE)
        await expect(row.locator(".badge")).to_have_text("connected")
        await expect(page.locator('.check[data-check="connections"] .detail').first).to_have_text(
            "1 connected"
        )
        requests = page.locator('tr[data-consumer="all"] td.num')
        await expect(requests).to_have_text(["2", "0", "0"])
        await expect(page.locator(".stat .value").first).to_have_text("1")  # getSchedule calls
        assert await page.get_by_label("Admin key").input_value() == ""
        await traffic.snapshot(page)
        await shot(page, "console.png")

        async def accept(dialog: Dialog) -> None:
            assert "Revoke" in dialog.message
            await dialog.accept()

        page.once("dialog", accept)
        await row.get_by_role("button", name="Revoke").click()
        await expect(row.locator(".badge")).to_have_text("revoked")
        await expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
        await traffic.snapshot(page)
        await shot(page, "console-revoked.png")
        # Still signed in after a reload, from this tab's session storage and nowhere else.
        await page.reload()
        await expect(row.locator(".badge")).to_have_text("revoked")
        stored = await page.evaluate(
            "() => [sessionStorage.getItem('freebusy-proxy.admin-key'), localStorage.length,"
            " document.cookie]"
        )
        assert stored == [ADMIN_KEY, 0, ""]
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_label("Admin key")).to_be_visible()
        assert await page.evaluate("() => sessionStorage.length") == 0
        await traffic.settled()
    async with proxy.get("/admin/connections", headers=admin()) as resp:
        (listed,) = (await resp.json())["connections"]
    assert (listed["account"], listed["status"]) == (ADELE, "revoked")
    await scan(traffic, at(proxy, ""), bearer={ADMIN_KEY: "/admin/", WRONG_KEY: "/admin/"})
    lines = access_lines(log_capture)
    assert any("POST /admin/connections/{id}/revoke 204" in line for line in lines), lines
    audit = trail.read_text()
    routes = {json.loads(line)["route"] for line in audit.splitlines()}
    assert {"GET /admin/readiness", "POST /admin/connections/{id}/revoke"} <= routes
    for text in (*lines, audit):
        assert ADMIN_KEY not in text


def week_window(monday: date, zone: str) -> list[datetime]:
    """The 8 local midnights (UTC instants) that bound the days of the week from ``monday``."""
    tz = ZoneInfo(zone)
    return [
        datetime.combine(monday + timedelta(days=i), time(), tz).astimezone(UTC) for i in range(8)
    ]


def minutes(instant: datetime, zone: str) -> float:
    """Minutes since local midnight of ``instant`` in ``zone``, as the page computes them."""
    local = instant.astimezone(ZoneInfo(zone))
    return local.hour * 60 + local.minute + local.second / 60


def expected_blocks(doc: dict[str, Any], monday: date, zone: str) -> list[Block]:
    """The blocks the page must draw for an API answer: one per item per local day it touches,
    placed by local wall-clock time (top and height in percent of the day)."""
    bounds = week_window(monday, zone)
    blocks = []
    for lane, entry in enumerate(doc["schedules"]):
        for index, item in enumerate(entry["items"]):
            start = datetime.fromisoformat(item["start"])
            end = datetime.fromisoformat(item["end"])
            for day in range(7):
                first, last = max(start, bounds[day]), min(end, bounds[day + 1])
                if last <= first:
                    continue
                top = 0 if first == bounds[day] else minutes(first, zone)
                bottom = 1440 if last == bounds[day + 1] else minutes(last, zone)
                blocks.append(
                    (
                        (monday + timedelta(days=day)).isoformat(),
                        lane,
                        index,
                        item["status"],
                        top / 1440 * 100,
                        (bottom - top) / 1440 * 100,
                    )
                )
    return sorted(blocks)


async def drawn_blocks(page: Page) -> list[Block]:
    """Every block the page drew: day, lane, item, status, top and height in percent."""
    raw = await page.evaluate(
        "() => [...document.querySelectorAll('.week .block')].map((b) => [b.closest('.day')"
        ".dataset.date, Number(b.dataset.lane), Number(b.dataset.item), b.dataset.status,"
        " parseFloat(b.style.top), parseFloat(b.style.height)])"
    )
    return sorted(tuple(block) for block in raw)


def assert_same_blocks(drawn: list[Block], expected: list[Block]) -> None:
    """The same blocks in the same places (CSSOM keeps about six significant digits)."""
    assert [block[:4] for block in drawn] == [block[:4] for block in expected]
    for got, want in zip(drawn, expected, strict=True):
        assert got[4:] == pytest.approx(want[4:], abs=1e-3), got


async def api_answer(
    client: TestClient[Any, Any], key: str, people: list[str], monday: date, zone: str
) -> dict[str, Any]:
    """What /v1/availability answers for the week the page shows."""
    bounds = week_window(monday, zone)
    body = {
        "schedules": people,
        "start": bounds[0].isoformat().replace("+00:00", "Z"),
        "end": bounds[7].isoformat().replace("+00:00", "Z"),
    }
    async with client.post("/v1/availability", json=body, headers=auth(key)) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    answer: dict[str, Any] = json.loads(text)
    return answer


async def shows(page: Page, monday: date, zone: str, count: int) -> None:
    """Wait until the page says it shows ``count`` items of that week in that zone."""
    status = page.locator("#view-status")
    await expect(status).to_have_text(f"Week of {monday.isoformat()} in {zone}: {count} items.")


async def test_week_view_draws_the_api_items_in_any_zone_and_policy(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """The demo-style link (key in the fragment) draws exactly the API's items, placed by local
    time; switching to Europe/Berlin over its DST change redraws them there; a busy-only key's
    view shows only merged busy blocks."""
    base = proxy_settings(mock_graph)
    busy_only = consumer("busy", KEY_BUSY_SHA, (f"*@{MOCK_DOMAIN}",), detail="busy")
    proxy = await make_proxy(
        mock_graph, settings=replace(base, consumers=(*base.consumers, busy_only))
    )
    people = mock_graph.graph.organisation.addresses()[:3]
    march, dst_week = date(2026, 3, 16), date(2026, 3, 23)
    traffic = Traffic()
    async with chromium() as browser:
        page = traffic.watch(await browser.new_page(viewport=VIEWPORT))
        fragment = {"key": KEY_ALL, "schedules": ",".join(people), "week": "2026-03-18"}
        await page.goto(at(proxy, "/view") + "#" + urlencode({**fragment, "zone": "UTC"}))
        full = await api_answer(proxy, KEY_ALL, people, march, "UTC")
        items = sum(len(entry["items"]) for entry in full["schedules"])
        assert items > 10
        await shows(page, march, "UTC", items)
        assert page.url == at(proxy, "/view")  # the fragment is read, then dropped
        drawn = await drawn_blocks(page)
        assert_same_blocks(drawn, expected_blocks(full, march, "UTC"))
        assert len({(lane, item) for _, lane, item, *_ in drawn}) == items
        await traffic.snapshot(page)
        await shot(page, "week-view.png")

        await page.get_by_label("Week of").fill(dst_week.isoformat())
        await page.get_by_label("Time zone").select_option("Europe/Berlin")
        berlin = await api_answer(proxy, KEY_ALL, people, dst_week, "Europe/Berlin")
        in_berlin = sum(len(entry["items"]) for entry in berlin["schedules"])
        await shows(page, dst_week, "Europe/Berlin", in_berlin)
        expected = expected_blocks(berlin, dst_week, "Europe/Berlin")
        assert_same_blocks(await drawn_blocks(page), expected)
        await traffic.snapshot(page)
        await shot(page, "week-view-berlin.png")

        merged = await api_answer(proxy, KEY_BUSY, people, dst_week, "Europe/Berlin")
        busy = sum(len(entry["items"]) for entry in merged["schedules"])
        await page.get_by_label("Consumer API key").fill(KEY_BUSY)
        await page.get_by_role("button", name="Show").click()
        await shows(page, dst_week, "Europe/Berlin", busy)
        drawn = await drawn_blocks(page)
        assert_same_blocks(drawn, expected_blocks(merged, dst_week, "Europe/Berlin"))
        assert {status for _, _, _, status, _, _ in drawn} == {"busy"}
        statuses = {item["status"] for entry in berlin["schedules"] for item in entry["items"]}
        assert statuses > {"busy"}  # the full view had more to merge away
        assert busy < in_berlin
        await expect(page.locator(".legend .status-key")).to_have_text(["Busy"])
        await traffic.snapshot(page)
        await shot(page, "week-view-busy.png")
        await traffic.settled()
    await scan(traffic, at(proxy, ""), bearer={KEY_ALL: "/v1/", KEY_BUSY: "/v1/"})


async def test_week_view_asks_from_now_when_the_key_may_not_look_back(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A week that began before now: refused as too early, the page asks again from now and
    shades the past (the proxy's clock and the browser's both read 2026-01-01)."""
    proxy = await make_proxy(mock_graph)
    people = mock_graph.graph.organisation.addresses()[:2]
    traffic = Traffic()
    async with chromium() as browser:
        page = traffic.watch(await browser.new_page(viewport=VIEWPORT))
        await page.clock.set_fixed_time(datetime(2026, 1, 1, 12, tzinfo=UTC))
        fragment = {"key": KEY_ALL, "schedules": ",".join(people), "zone": "UTC"}
        await page.goto(at(proxy, "/view") + "#" + urlencode(fragment))
        monday = date(2025, 12, 29)
        body = {
            "schedules": people,
            "start": "2026-01-01T12:00:00Z",
            "end": "2026-01-05T00:00:00Z",
        }
        async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
            answer = await resp.json()
        await shows(page, monday, "UTC", sum(len(e["items"]) for e in answer["schedules"]))
        await traffic.settled()
        asked = [
            json.loads(r.body)["start"]
            for r in traffic.requests
            if r.url.endswith("/v1/availability")
        ]
        assert asked == ["2025-12-29T00:00:00Z", "2026-01-01T12:00:00Z"]
        heights = await page.evaluate(
            "() => [...document.querySelectorAll('.week .past')].map((p) => p.style.height)"
        )
        assert heights == ["100%", "100%", "100%", "50%"]
        assert_same_blocks(await drawn_blocks(page), expected_blocks(answer, monday, "UTC"))
        await shot(page, "week-view-from-now.png")
        await traffic.settled()
    await scan(traffic, at(proxy, ""), bearer={KEY_ALL: "/v1/"})


async def test_pages_without_scripts_say_so_and_offer_no_key_field(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """With JavaScript off the console and the week view explain themselves and show no key
    field; the start page and the connect pages work as they are."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    async with chromium() as browser:
        context = await browser.new_context(java_script_enabled=False, viewport=VIEWPORT)
        page = await context.new_page()
        for path in ("/console", "/view"):
            await page.goto(at(proxy, path))
            await expect(page.get_by_role("alert")).to_contain_text("needs JavaScript")
            await expect(page.locator("input[type=password]")).to_be_hidden()
        await page.goto(at(proxy, "/"))
        await page.get_by_role("link", name="Connect a calendar").click()
        await expect(page.get_by_role("link", name="Start Individual Connect")).to_be_visible()
        await context.close()


async def test_week_view_says_why_the_proxy_refused(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A key outside its allowlist, or no valid key: the page says so and draws nothing."""
    proxy = await make_proxy(mock_graph)
    other = f"alex.wilber@{MOCK_DOMAIN}"
    async with chromium() as browser:
        page = await browser.new_page(viewport=VIEWPORT)
        fragment = {"key": KEY_ONE, "schedules": f"{ADELE},{other}", "week": "2026-03-16"}
        await page.goto(at(proxy, "/view") + "#" + urlencode(fragment))
        alert = page.locator("#view-error")
        await expect(alert).to_have_text(f"The proxy refused: this API key may not query: {other}.")
        await expect(page.locator(".week")).to_be_hidden()
        await page.get_by_label("Consumer API key").fill("fbp_nobody")
        await page.get_by_role("button", name="Show").click()
        await expect(alert).to_have_text("This consumer key is not valid.")


async def test_week_view_shows_a_slots_only_key_common_free_time(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A slots-only key may not see anyone's items: the page asks /v1/slots instead and draws
    the group's common free periods as one lane, exactly those the API answers."""
    slots_key, slots_sha = new_key()
    base = proxy_settings(mock_graph)
    slots_only = consumer("booking", slots_sha, (f"*@{MOCK_DOMAIN}",), detail="slots")
    proxy = await make_proxy(
        mock_graph, settings=replace(base, consumers=(*base.consumers, slots_only))
    )
    people = mock_graph.graph.organisation.addresses()[:3]
    monday = date(2026, 3, 16)
    bounds = week_window(monday, "UTC")
    window = {
        "start": bounds[0].isoformat().replace("+00:00", "Z"),
        "end": bounds[7].isoformat().replace("+00:00", "Z"),
    }
    async with proxy.post("/v1/availability", json={"schedules": people, **window},
                          headers=auth(slots_key)) as resp:  # fmt: skip
        assert resp.status == 403
        assert (await resp.json(content_type=None))["code"] == "slots_only"
    question = {
        "participants": [{"schedule": person} for person in people],
        "required": "all",
        "duration_minutes": 30,
        "format": "periods",
        **window,
    }
    async with proxy.post("/v1/slots", json=question, headers=auth(slots_key)) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    periods = json.loads(text)["slots"]
    assert periods, "the mock's week leaves the group some common free time"
    as_items = {"schedules": [{"items": [{"status": "free", **slot} for slot in periods]}]}
    traffic = Traffic()
    async with chromium() as browser:
        page = traffic.watch(await browser.new_page(viewport=VIEWPORT))
        fragment = {"key": slots_key, "schedules": ",".join(people), "week": "2026-03-18"}
        await page.goto(at(proxy, "/view") + "#" + urlencode({**fragment, "zone": "UTC"}))
        status = page.locator("#view-status")
        await expect(status).to_have_text(
            f"Week of {monday.isoformat()} in UTC: {len(periods)} free periods."
        )
        drawn = await drawn_blocks(page)
        assert_same_blocks(drawn, expected_blocks(as_items, monday, "UTC"))
        assert {status for _, _, _, status, _, _ in drawn} == {"free"}
        await traffic.snapshot(page)
        await shot(page, "week-view-slots.png")
        await traffic.settled()
    await scan(traffic, at(proxy, ""), bearer={slots_key: "/v1/"})
