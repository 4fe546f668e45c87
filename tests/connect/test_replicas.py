"""Two proxy processes on one store: what one connects the other serves, refreshes never race.

Real ``freebusy-proxy serve`` processes (their own ports, their own memory) share a
PostgreSQL database, or one SQLite file as ``--workers`` do. The mock's refresh tokens are
single-use, so two processes redeeming one at once would leave one of them with a refused
token and a connection wrongly marked needs_consent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from proxy.config.schema import AUDIT_KEY_ENV, CLIENT_SECRET_ENV, TOKEN_KEY_ENV
from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN, RunningMock
from tests.support.connect import ADMIN_KEY_SHA, TOKEN_KEY, admin, sign_in
from tests.support.leaks import assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.paths import ROOT
from tests.support.proxies import AUDIT_KEY, KEY_ALL, KEY_ALL_SHA
from tests.support.waiting import eventually

ADELE = f"adele.vance@{MOCK_DOMAIN}"
ALEX = f"alex.wilber@{MOCK_DOMAIN}"
MEGAN = f"megan.bowen@{MOCK_DOMAIN}"  # the mock's administrator
# msal refreshes a token with less than five minutes left: these are "expired" on arrival.
EXPIRED_ON_ARRIVAL_S = 200


@dataclass
class Replica:
    """One proxy process, spoken to like the test client ``sign_in`` expects."""

    session: aiohttp.ClientSession
    base: str
    log: list[str]

    def get(self, path: str, **kwargs: Any) -> Any:
        """GET a path of this replica."""
        return self.session.get(self.base + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        """POST to a path of this replica."""
        return self.session.post(self.base + path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        """DELETE a path of this replica."""
        return self.session.delete(self.base + path, **kwargs)


def config_text(mock: RunningMock, storage: dict[str, Any]) -> str:
    """A proxy config on ``storage``: delegated connections only, no response cache."""
    where = (
        f'storage_url = "{storage["storage_url"]}"'
        if "storage_url" in storage
        else f'storage_path = "{storage["storage_path"]}"'
    )
    return f"""
{mock.graph_config()}[connect]
kinds = ["individual", "enterprise"]
application_permissions = false
admin_key_sha256 = "{ADMIN_KEY_SHA}"
changes_poll_seconds = 0.2
{where}
[cache]
ttl_seconds = 0
[[consumers]]
name = "all"
key_sha256 = "{KEY_ALL_SHA}"
allow = ["*@{MOCK_DOMAIN}"]
# The test's fixed dates are in the past of the real clock these processes read.
max_lookback_days = 3660
"""


@contextlib.asynccontextmanager
async def replicas(config: Path, count: int) -> AsyncIterator[list[Replica]]:
    """Start ``count`` serve processes on free ports; stop them (and check their logs) after."""
    env = {
        **os.environ,
        CLIENT_SECRET_ENV: MOCK_CLIENT_SECRET,
        AUDIT_KEY_ENV: AUDIT_KEY,
        TOKEN_KEY_ENV: TOKEN_KEY,
        "PYTHONPATH": str(ROOT),
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "proxy", "serve", "--config", str(config), "--port", "0"),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    logs: list[list[str]] = [[] for _ in processes]
    drains: list[asyncio.Task[None]] = []
    # unsafe: keep cookies from an IP-address host, as a browser does (the sign-in state cookie).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        try:
            started = []
            for process, log in zip(processes, logs, strict=True):
                assert process.stderr is not None
                async with asyncio.timeout(60):
                    while not (
                        found := re.search(
                            r"serving on (http://[\d.]+:\d+)", log[-1] if log else ""
                        )
                    ):
                        line = (await process.stderr.readline()).decode()
                        assert line, "a replica exited early:\n" + "".join(log)
                        log.append(line)
                started.append(Replica(session=session, base=found.group(1), log=log))
                drains.append(asyncio.create_task(_drain(process, log)))
            yield started
        finally:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
            async with asyncio.timeout(30):
                for process in processes:
                    await process.wait()
                await asyncio.gather(*drains)
    for log in logs:
        assert_no_leak("".join(log))


async def _drain(process: asyncio.subprocess.Process, log: list[str]) -> None:
    """Keep reading a replica's log, so its pipe never fills."""
    assert process.stderr is not None
    while line := await process.stderr.readline():
        log.append(line.decode())


async def ask(replica: Replica, address: str, day: int) -> dict[str, Any]:
    """One availability request for ``address`` on 2026-03-``day``; its one schedule entry."""
    body = {
        "schedules": [address],
        "start": f"2026-03-{day:02d}T00:00:00Z",
        "end": f"2026-03-{day:02d}T12:00:00Z",
    }
    headers = {"Authorization": f"Bearer {KEY_ALL}"}
    async with replica.post("/v1/availability", json=body, headers=headers) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    assert_no_leak(text)
    (entry,) = (await resp.json())["schedules"]
    return dict(entry)


async def listing(replica: Replica) -> list[dict[str, Any]]:
    """The replica's GET /admin/connections."""
    async with replica.get("/admin/connections", headers=admin()) as resp:
        assert resp.status == 200
        connections: list[dict[str, Any]] = (await resp.json())["connections"]
    return connections


async def test_two_processes_share_connections_and_refresh_once(
    make_mock: MockFactory, tmp_path: Path, storage: dict[str, Any]
) -> None:
    """Connect on A, query on B; 50 requests over both: one refresh per expiry, no consent lost."""
    mock = await make_mock(
        single_use_refresh_tokens=True, token_lifetime_s=EXPIRED_ON_ARRIVAL_S, org_size=40
    )
    config = tmp_path / "proxy.toml"
    config.write_text(config_text(mock, storage))
    async with replicas(config, 2) as (first, second):
        for kind, user in (("individual", ADELE), ("enterprise", MEGAN)):
            status, page = await sign_in(first, mock, kind, user=user)  # type: ignore[arg-type]
            assert status == 200, page

        async def both_listed() -> bool:
            return len(await listing(second)) == 2

        await eventually(both_listed)
        assert await listing(second) == await listing(first)
        # Both connections' access tokens are due; whoever refreshes gets a long-lived one.
        mock.graph.set_token_lifetime(3599)
        assert mock.graph.consent.refreshes == 0
        replicas_ = (first, second)
        answers = await asyncio.gather(
            *(ask(replicas_[n % 2], (ADELE, ALEX)[(n // 2) % 2], 1 + n % 28) for n in range(50))
        )
        assert [a["error"] for a in answers] == [None] * 50
        # One expiry per connection, one refresh each; no refresh token was presented twice.
        assert (mock.graph.consent.refreshes, mock.graph.consent.reused) == (2, 0)
        for replica in replicas_:
            assert {c["status"] for c in await listing(replica)} == {"connected"}
        # Both processes use the refreshed tokens now, without refreshing again.
        again = await asyncio.gather(
            *(ask(replicas_[n % 2], (ADELE, ALEX)[n % 2], 1 + n) for n in range(10))
        )
        assert [a["error"] for a in again] == [None] * 10
        assert mock.graph.consent.refreshes == 2
        # Revoked on B (the admin deletes Megan's enterprise connection): A stops using it.
        (enterprise,) = [c for c in await listing(second) if c["kind"] == "enterprise"]
        path = f"/admin/connections/{enterprise['id']}"
        async with second.delete(path, headers=admin()) as resp:
            assert resp.status == 204

        async def gone_on_first() -> bool:
            return [c["kind"] for c in await listing(first)] == ["individual"]

        await eventually(gone_on_first)
        calls = mock.graph.stats()["calls"]["getSchedule"]
        assert (await ask(first, ALEX, 3))["error"] == {"code": "not_connected"}
        assert mock.graph.stats()["calls"]["getSchedule"] == calls
        assert (await ask(first, ADELE, 3))["error"] is None
