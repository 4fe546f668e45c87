"""Proxies sharing one store (SQLite file or PostgreSQL) see each other's connections.

Two real proxy apps in one test, each with its own registry, on one store of each backend:
what one connects, changes or deletes, the other follows within seconds; tokens of a
connection that lost its grant are gone from the store at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from proxy.config.schema import CacheSettings
from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN
from proxy.web.keys import CONNECT
from tests.support.connect import TOKEN_KEY, admin, connect_settings, sign_in
from tests.support.leaks import assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.paths import ROOT
from tests.support.proxies import AUDIT_KEY, ProxyFactory, auth
from tests.support.waiting import until

ADELE = f"adele.vance@{MOCK_DOMAIN}"
ALEX = f"alex.wilber@{MOCK_DOMAIN}"
MEGAN = f"megan.bowen@{MOCK_DOMAIN}"
DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}


async def availability(proxy: Any, *addresses: str) -> dict[str, Any]:
    """POST /v1/availability; {address: entry}, checked for leaks."""
    body = {"schedules": list(addresses), **DAY}
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    assert_no_leak(text)
    return {entry["schedule"]: entry for entry in json.loads(text)["schedules"]}


async def listing(proxy: Any) -> list[dict[str, Any]]:
    """GET /admin/connections."""
    async with proxy.get("/admin/connections", headers=admin()) as resp:
        assert resp.status == 200
        connections: list[dict[str, Any]] = (await resp.json())["connections"]
    return connections


def registry(proxy: Any) -> Any:
    """The proxy's connections registry (to watch what it has loaded)."""
    return proxy.server.app[CONNECT].connections


async def test_a_connection_made_on_one_proxy_serves_on_the_other(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, storage: dict[str, Any]
) -> None:
    """Connect on A, query on B; the admin lists agree; delete on A and B stops using it."""
    mock = await make_mock()
    settings = connect_settings(mock, tmp_path / "c.db", **storage)
    first = await make_proxy(mock, settings=settings)
    second = await make_proxy(mock, settings=settings)
    assert (await sign_in(first, mock, "individual", user=ADELE))[0] == 200
    await until(lambda: len(registry(second).all()) == 1)
    assert await listing(second) == await listing(first)
    assert (await availability(second, ADELE))[ADELE]["error"] is None
    (connection,) = await listing(first)
    assert mock.graph.stats()["calls"]["getSchedule"] == 1
    async with first.delete(f"/admin/connections/{connection['id']}", headers=admin()) as resp:
        assert resp.status == 204
    await until(lambda: registry(second).all() == [])
    assert await listing(second) == []
    answer = await availability(second, ADELE)
    assert answer[ADELE]["error"] == {"code": "not_connected"}
    assert answer[ADELE]["items"] == []  # what B had cached for it was forgotten too
    assert mock.graph.stats()["calls"]["getSchedule"] == 1


async def test_a_revocation_on_one_proxy_empties_the_others_cache(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, storage: dict[str, Any]
) -> None:
    """Revoked on A (the console's button): B, which had cached the person's day, stops
    serving it as soon as it sees the revocation, as it does for a deletion."""
    mock = await make_mock()
    settings = connect_settings(mock, tmp_path / "c.db", **storage)
    first = await make_proxy(mock, settings=settings)
    second = await make_proxy(mock, settings=settings)
    assert (await sign_in(first, mock, "individual", user=ADELE))[0] == 200
    await until(lambda: len(registry(second).all()) == 1)
    assert (await availability(second, ADELE))[ADELE]["items"]
    (connection,) = await listing(first)
    revoke = f"/admin/connections/{connection['id']}/revoke"
    async with first.post(revoke, headers=admin()) as resp:
        assert resp.status == 204
    await until(lambda: registry(second).all()[0].status == "revoked")
    answer = await availability(second, ADELE)
    assert answer[ADELE]["items"] == []
    assert answer[ADELE]["error"] is not None
    assert mock.graph.stats()["calls"]["getSchedule"] == 1


async def test_a_revoked_grant_is_dropped_everywhere_with_its_tokens(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, storage: dict[str, Any]
) -> None:
    """needs_consent found by B: the store keeps the row, not its tokens; A stops too."""
    mock = await make_mock(token_lifetime_s=60)
    settings = replace(
        connect_settings(mock, tmp_path / "c.db", **storage), cache=CacheSettings(ttl_seconds=0)
    )
    first = await make_proxy(mock, settings=settings)
    second = await make_proxy(mock, settings=settings)
    assert (await sign_in(first, mock, "individual", user=ADELE))[0] == 200
    await until(lambda: len(registry(second).all()) == 1)
    mock.graph.revoke_grant(ADELE)
    assert (await availability(second, ADELE))[ADELE]["error"] == {"code": "needs_consent"}
    (connection,) = await listing(second)
    assert connection["status"] == "needs_consent"
    async with registry(first).store.lease(connection["id"]) as lease:
        assert lease.token_cache is None
    await until(lambda: registry(first).all()[0].status == "needs_consent")
    refreshes = mock.graph.consent.refreshes
    assert (await availability(first, ADELE))[ADELE]["error"] == {"code": "needs_consent"}
    assert mock.graph.consent.refreshes == refreshes  # A did not even try


async def test_an_over_privileged_connection_keeps_no_tokens(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, storage: dict[str, Any]
) -> None:
    """A grant widened after connecting: refused at refresh, and its tokens deleted at once."""
    mock = await make_mock(token_lifetime_s=60)
    proxy = await make_proxy(mock, settings=connect_settings(mock, tmp_path / "c.db", **storage))
    assert (await sign_in(proxy, mock, "individual", user=ADELE))[0] == 200
    mock.graph.grant_extra_scopes(ADELE, "Calendars.ReadWrite")
    assert (await availability(proxy, ADELE))[ADELE]["error"] == {"code": "needs_consent"}
    (connection,) = await listing(proxy)
    assert connection["status"] == "over_privileged"
    async with registry(proxy).store.lease(connection["id"]) as lease:
        assert lease.token_cache is None


async def test_a_repeated_sign_in_replaces_the_connection(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, storage: dict[str, Any]
) -> None:
    """Ids are random (uuid4); the same person connecting again keeps one connection, one id."""
    mock = await make_mock()
    settings = connect_settings(mock, tmp_path / "c.db", **storage)
    first = await make_proxy(mock, settings=settings)
    second = await make_proxy(mock, settings=settings)
    assert (await sign_in(first, mock, "enterprise", user=MEGAN))[0] == 200
    (made,) = await listing(first)
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", made["id"]
    )
    assert (await sign_in(second, mock, "enterprise", user=MEGAN))[0] == 200
    assert [c["id"] for c in await listing(second)] == [made["id"]]
    await until(lambda: [c.id for c in registry(first).all()] == [made["id"]])
    assert (await availability(first, ALEX))[ALEX]["error"] is None
    # Another proxy's tenant-and-account-derived guess names nothing.
    other = await make_proxy(mock, settings=connect_settings(mock, tmp_path / "d.db"))
    assert (await sign_in(other, mock, "enterprise", user=MEGAN))[0] == 200
    assert [c["id"] for c in await listing(other)] != [made["id"]]


async def test_the_cli_device_code_connection_reaches_a_running_proxy(
    make_mock: MockFactory, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    """`connect enterprise --device-code` while the proxy serves: no restart needed."""
    mock = await make_mock(device_poll_interval_s=1)
    db = tmp_path / "c.db"
    proxy = await make_proxy(mock, settings=connect_settings(mock, db))
    assert (await availability(proxy, ALEX))[ALEX]["error"] == {"code": "not_connected"}
    config = tmp_path / "proxy.toml"
    config.write_text(
        mock.graph_config() + f'[connect]\nkinds = ["enterprise"]\nstorage_path = "{db}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "connect",
        "enterprise",
        "--device-code",
        "--config",
        str(config),
        env={
            **env,
            "PYTHONPATH": str(ROOT),
            "FREEBUSY_PROXY_CLIENT_SECRET": MOCK_CLIENT_SECRET,
            "FREEBUSY_PROXY_TOKEN_KEY": TOKEN_KEY,
            "FREEBUSY_PROXY_AUDIT_KEY": AUDIT_KEY,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        message = (await process.stdout.readline()).decode()
        match = re.search(r"enter the code (\w+)", message)
        assert match, message
        assert mock.graph.approve_device_code(match.group(1), MEGAN)
        _, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    await until(lambda: len(registry(proxy).all()) == 1)
    assert (await availability(proxy, ALEX))[ALEX]["error"] is None
