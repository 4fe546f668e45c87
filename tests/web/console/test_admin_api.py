"""The console's JSON under /admin/: the admin key guards it; it shows counts, never people."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.access.consumers import new_key
from proxy.config.schema import ConnectSettings, Settings
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from proxy.web.keys import CONNECT
from tests.support.connect import ADMIN_KEY, ADMIN_KEY_SHA, admin, connect_settings, sign_in
from tests.support.leaks import assert_no_leak
from tests.support.proxies import (
    DAY,
    KEY_ALL,
    KEY_ONE,
    ONE_ADDRESS,
    ProxyFactory,
    ask,
    auth,
    consumer,
    graph_calls,
    proxy_settings,
    sample,
)

ADELE = f"adele.vance@{MOCK_DOMAIN}"
ALEX = f"alex.wilber@{MOCK_DOMAIN}"
ADMIN_ROUTES = ("/admin/readiness", "/admin/consumers", "/admin/economy")
KEY_SLOW, KEY_SLOW_SHA = new_key()


def with_admin(settings: Settings) -> Settings:
    """The settings with an admin key and no connect flows."""
    return replace(settings, connect=ConnectSettings(admin_key_sha256=ADMIN_KEY_SHA))


async def get_json(client: TestClient[Any, Any], path: str) -> Any:
    """GET an admin route with the admin key; the body is checked for leaks and addresses."""
    async with client.get(path, headers=admin()) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Cache-Control"] == "no-store"
    assert_no_leak(text)
    return json.loads(text)


@pytest.mark.parametrize("path", ADMIN_ROUTES)
async def test_admin_routes_refuse_without_the_admin_key(
    make_proxy: ProxyFactory, mock_graph: RunningMock, path: str
) -> None:
    """No key, a consumer's key, or no admin key configured at all: 401 problem+json."""
    guarded = await make_proxy(mock_graph, settings=with_admin(proxy_settings(mock_graph)))
    unguarded = await make_proxy(mock_graph)
    for client, headers in (
        (guarded, {}),
        (guarded, auth(KEY_ALL)),
        (guarded, {"Authorization": f"Basic {ADMIN_KEY}"}),
        (unguarded, admin()),
    ):
        async with client.get(path, headers=headers) as resp:
            body = await resp.json(content_type="application/problem+json")
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert body["code"] == "unauthorized"


async def test_readiness_is_one_record_per_check(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Token, Graph and the breaker, each {name, ok, state, gates_readiness}; an open breaker
    shows as not ok while /readyz (token and Graph) still decides ready."""
    settings = replace(
        with_admin(proxy_settings(mock_graph, max_retries=0)),
        throttle=replace(proxy_settings(mock_graph).throttle, breaker_failures=1),
    )
    client = await make_proxy(mock_graph, settings=settings)
    doc = await get_json(client, "/admin/readiness")
    assert doc == {
        "ready": True,
        "checks": [
            {"name": "token", "ok": True, "state": "ok", "gates_readiness": True},
            {"name": "graph", "ok": True, "state": "ok", "gates_readiness": True},
            {"name": "breaker", "ok": True, "state": "closed", "gates_readiness": False},
        ],
    }
    mock_graph.graph.add_fault(Fault(kind="status", status=500, count=None))
    assert (await ask(client, [ADELE]))[0] == 502
    breaker = (await get_json(client, "/admin/readiness"))["checks"][2]
    assert breaker == {"name": "breaker", "ok": False, "state": "open", "gates_readiness": False}


async def test_readiness_counts_connections_by_status(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """With connect on, a connections record counts them; no token check without app rights."""
    client = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    assert (await sign_in(client, mock_graph, "individual", user=ADELE))[0] == 200
    checks = {c["name"]: c for c in (await get_json(client, "/admin/readiness"))["checks"]}
    assert set(checks) == {"graph", "breaker", "connections"}
    assert checks["connections"] == {
        "name": "connections",
        "ok": True,
        "state": "ok",
        "gates_readiness": False,
        "counts": {"connected": 1, "needs_consent": 0, "over_privileged": 0, "revoked": 0},
    }


async def test_readiness_flags_what_readyz_flags(
    make_proxy: ProxyFactory, make_mock: Any, tmp_path: Path
) -> None:
    """A connection holding more than the Free/Busy permissions, kept under strict_scopes =
    false: /readyz lists it for attention, and so does the console's connections record."""
    mock = await make_mock(extra_delegated_scopes=("Calendars.Read",))
    settings = connect_settings(mock, tmp_path / "c.db", strict_scopes=False)
    client = await make_proxy(mock, settings=settings)
    assert (await sign_in(client, mock, "individual", user=ADELE))[0] == 200
    async with client.get("/readyz", headers=admin()) as resp:
        assert len((await resp.json())["attention"]["over_privileged"]) == 1
    checks = {c["name"]: c for c in (await get_json(client, "/admin/readiness"))["checks"]}
    assert (checks["connections"]["ok"], checks["connections"]["state"]) == (False, "attention")


async def test_consumers_show_sizes_policies_and_the_metrics_counters(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Requests, rate-limited and refused counts per consumer name, the same as /metrics;
    allowlists as sizes only, so no address appears."""
    base = with_admin(proxy_settings(mock_graph))
    policy = {"rate_per_minute": 1, "detail": "busy", "granularity_minutes": 15}
    slow = consumer("slow", KEY_SLOW_SHA, (ADELE, ALEX), **policy)
    client = await make_proxy(mock_graph, settings=replace(base, consumers=(*base.consumers, slow)))
    body = {"schedules": [ADELE], **DAY}
    for key in (KEY_ALL, KEY_SLOW, KEY_SLOW):
        async with client.post("/v1/availability", json=body, headers=auth(key)) as resp:
            assert resp.status in (200, 429)
    refused = {"schedules": [ALEX], **DAY}
    async with client.post("/v1/availability", json=refused, headers=auth(KEY_ONE)) as resp:
        assert resp.status == 403
    async with client.get("/admin/consumers", headers=admin()) as resp:
        text = await resp.text()
    for address in (ADELE, ALEX, ONE_ADDRESS, MOCK_DOMAIN):
        assert address not in text
    rows = {row["name"]: row for row in json.loads(text)["consumers"]}
    assert {name: (r["requests"], r["rate_limited"], r["refused"]) for name, r in rows.items()} == {
        "all": (1, 0, 0),
        "one": (1, 0, 1),
        "slow": (2, 1, 0),
    }
    for name, outcome, expected in (
        ("all", "admitted", 1),
        ("one", "refused", 1),
        ("slow", "admitted", 1),
        ("slow", "rate_limited", 1),
    ):
        labels = {"consumer": name, "outcome": outcome}
        assert sample(client, "freebusy_consumer_requests_total", **labels) == expected
    assert rows["all"]["allowlist"] == {"addresses": 0, "domains": 1}
    assert rows["slow"]["allowlist"] == {"addresses": 2, "domains": 0}
    assert rows["slow"]["policy"] == {
        "detail": "busy",
        "granularity_minutes": 15,
        "busy_statuses": ["busy", "oof", "tentative", "unknown"],
        "max_lookback_days": 0,
        "max_lookahead_days": 365,
        "max_window_days": None,
        "max_schedules": None,
        "rate_per_minute": 1,
    }


async def test_economy_reads_the_counters_metrics_exports(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Graph calls, cache lookups and hit rate equal what /metrics says, and follow traffic."""
    client = await make_proxy(mock_graph, settings=with_admin(proxy_settings(mock_graph)))
    empty = await get_json(client, "/admin/economy")
    assert empty["get_schedule_calls"] == {}
    assert empty["cache_hit_rate"] is None
    assert (await ask(client, [ADELE, ALEX]))[0] == 200
    # Another window of the same days: answered from the cache, not Graph.
    later = {"start": "2026-03-16T08:00:00Z", "end": "2026-03-16T18:00:00Z"}
    assert (await ask(client, [ADELE], later))[0] == 200
    doc = await get_json(client, "/admin/economy")
    assert doc["get_schedule_calls"] == {"200": graph_calls(mock_graph)}
    assert doc["get_schedule_calls"]["200"] == sample(
        client, "freebusy_upstream_calls_total", endpoint="getSchedule", outcome="200"
    )
    lookups = {
        result: sample(client, "freebusy_cache_lookups_total", result=result)
        for result in doc["cache_lookups"]
    }
    assert doc["cache_lookups"] == lookups
    assert lookups["hit"] > 0
    assert doc["cache_hit_rate"] == lookups["hit"] / sum(lookups.values())
    assert doc["cache_entries"] == sample(client, "freebusy_cache_entries")
    assert doc["breaker_state"] == "closed"
    assert doc["batches"] == 1
    assert doc["schedules_per_batch"] == 2


async def test_revoke_keeps_the_record_stops_use_and_erases_tokens(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """A revoked connection answers needs_consent at once (nothing cached is served), its
    token cache is emptied, nothing revives it; delete then removes the record."""
    client = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    assert (await sign_in(client, mock_graph, "individual", user=ADELE))[0] == 200
    status, answer = await ask(client, [ADELE])
    assert status == 200
    assert answer["schedules"][0]["items"]
    (row,) = (await get_json(client, "/admin/connections"))["connections"]
    assert row["status"] == "connected"
    assert row["last_refresh"] is None  # no refresh yet: the sign-in's token still holds
    async with client.post(f"/admin/connections/{row['id']}/revoke") as resp:
        assert resp.status == 401
    async with client.post(f"/admin/connections/{row['id']}/revoke", headers=admin()) as resp:
        assert resp.status == 204
    (revoked,) = (await get_json(client, "/admin/connections"))["connections"]
    assert revoked == {**row, "status": "revoked"}
    calls = graph_calls(mock_graph)
    status, answer = await ask(client, [ADELE])
    assert (status, answer["schedules"][0]["error"]) == (200, {"code": "needs_consent"})
    assert graph_calls(mock_graph) == calls
    connections = client.app[CONNECT].connections
    store = connections.store
    async with store.lease(row["id"]) as lease:
        assert lease.token_cache is None
        # A refresh that was in flight cannot store tokens for it,
        assert not await lease.write('{"RefreshToken": {}}', refreshed="2026-01-01T00:00:00Z")
    # nor revive it, in this process or through the store.
    current = connections.get(row["id"])
    assert current is not None
    await connections.set_status(current, "connected")
    assert await store.set_status(row["id"], "connected", current.scopes) is None
    assert connections.get(row["id"]) == current
    async with store.lease(row["id"]) as lease:
        assert lease.token_cache is None
    assert [s.connection.status for s in (await store.snapshot()).connections] == ["revoked"]
    async with client.post("/admin/connections/nope/revoke", headers=admin()) as resp:
        assert (resp.status, (await resp.json(content_type=None))["code"]) == (404, "not_found")
    async with client.delete(f"/admin/connections/{row['id']}", headers=admin()) as resp:
        assert resp.status == 204
    assert (await get_json(client, "/admin/connections"))["connections"] == []


async def test_admin_calls_are_audited_pages_are_not_and_no_key_is_written(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """The audit trail records what the console asked, not the pages it loaded; no key."""
    trail = tmp_path / "audit.jsonl"
    settings = with_admin(proxy_settings(mock_graph))
    settings = replace(settings, audit=replace(settings.audit, file=trail))
    client = await make_proxy(mock_graph, settings=settings)
    for path in ("/", "/console", "/view", "/static/site.css", "/static/console.js"):
        async with client.get(path) as resp:
            assert resp.status == 200
    for path in ADMIN_ROUTES:
        await get_json(client, path)
    text = trail.read_text()
    assert [json.loads(line)["route"] for line in text.splitlines()] == [
        f"GET {path}" for path in ADMIN_ROUTES
    ]
    assert_no_leak(text)
