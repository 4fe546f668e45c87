"""Individual and Enterprise Connect end to end: real msal, mock identity platform, real sockets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from proxy.config.schema import CacheSettings
from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.connect import ADMIN_KEY, admin, connect_settings, sign_in
from tests.support.leaks import assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.proxies import ProxyFactory, auth

ADELE = f"adele.vance@{MOCK_DOMAIN}"
ALEX = f"alex.wilber@{MOCK_DOMAIN}"
MEGAN = f"megan.bowen@{MOCK_DOMAIN}"  # the mock's administrator
DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}


async def availability(proxy: Any, *addresses: str) -> dict[str, Any]:
    """POST /v1/availability for ``addresses``; return {address: entry}, checked for leaks."""
    body = {"schedules": list(addresses), **DAY}
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    assert_no_leak(text)
    return {entry["schedule"]: entry for entry in json.loads(text)["schedules"]}


async def listing(proxy: Any) -> list[dict[str, Any]]:
    """GET /admin/connections with the admin key."""
    async with proxy.get("/admin/connections", headers=admin()) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    assert_no_leak(text)
    connections: list[dict[str, Any]] = json.loads(text)["connections"]
    return connections


async def test_individual_connect_serves_only_that_person(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """After Individual Connect, the person's own availability comes back; colleagues do not."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    status, page = await sign_in(proxy, mock_graph, "individual", user=ADELE)
    assert status == 200, page
    assert "Connected" in page
    assert ADELE in page
    assert "Calendars.ReadBasic" in page
    assert_no_leak(page)
    # Exactly the Free/Busy set went to the authorize endpoint, plus msal's OpenID scopes.
    (sent,) = mock_graph.graph.consent.authorize_scopes
    assert sorted(sent) == sorted(
        ["Calendars.ReadBasic", "User.Read", "offline_access", "openid", "profile"]
    )
    answers = await availability(proxy, ADELE, ALEX)
    assert answers[ADELE]["error"] is None
    assert answers[ADELE]["items"]
    assert answers[ALEX]["error"] == {"code": "not_connected"}
    recent = mock_graph.graph.stats()["recent"]
    assert {entry["mailbox"] for entry in recent} == {ADELE}  # /me resolved to Adele


async def test_enterprise_connect_covers_colleagues_not_foreign_domains(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """An administrator's Enterprise Connect answers for colleagues; other domains not_connected."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    status, page = await sign_in(proxy, mock_graph, "enterprise", user=MEGAN)
    assert status == 200, page
    assert MOCK_DOMAIN in page
    answers = await availability(proxy, ALEX, "someone@fabrikam.example")
    assert answers[ALEX]["error"] is None
    assert answers[ALEX]["items"]
    assert answers["someone@fabrikam.example"]["error"] == {"code": "not_connected"}
    (connection,) = await listing(proxy)
    assert connection["kind"] == "enterprise"
    assert connection["account"] == MEGAN
    assert MOCK_DOMAIN in connection["domains"]
    assert connection["status"] == "connected"


async def test_enterprise_connect_needs_an_administrator(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """A non-admin's Enterprise Connect is refused with the wrong-account page; nothing stored."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    status, page = await sign_in(proxy, mock_graph, "enterprise", user=ALEX)
    assert status == 403
    assert "Wrong account type" in page
    assert await listing(proxy) == []


async def test_silent_refresh_after_expiry(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path
) -> None:
    """Tokens shorter-lived than msal's 5-minute margin are refreshed silently on every use."""
    mock = await make_mock(token_lifetime_s=60)
    # No cache, so each query really reaches Graph and needs a token.
    settings = replace(
        connect_settings(mock, tmp_path / "c.db"), cache=CacheSettings(ttl_seconds=0)
    )
    proxy = await make_proxy(mock, settings=settings)
    assert (await sign_in(proxy, mock, "individual", user=ADELE))[0] == 200
    issued = len(mock.graph.consent.refresh_tokens)
    for _ in range(2):
        answers = await availability(proxy, ADELE)
        assert answers[ADELE]["error"] is None
    # Each query redeemed the refresh token (each redemption mints a new one).
    assert len(mock.graph.consent.refresh_tokens) == issued + 2


async def test_revoked_grant_needs_consent(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path
) -> None:
    """A revoked grant: per-schedule needs_consent, shown in /readyz and the admin listing."""
    mock = await make_mock(token_lifetime_s=60)
    proxy = await make_proxy(mock, settings=connect_settings(mock, tmp_path / "c.db"))
    assert (await sign_in(proxy, mock, "individual", user=ADELE))[0] == 200
    mock.graph.revoke_grant(ADELE)
    answers = await availability(proxy, ADELE, ALEX)
    assert answers[ADELE]["error"] == {"code": "needs_consent"}
    assert answers[ALEX]["error"] == {"code": "not_connected"}
    (connection,) = await listing(proxy)
    assert connection["status"] == "needs_consent"
    async with proxy.get("/readyz") as resp:
        ready = await resp.json()
    # Anyone sees counts; only the admin key sees which connection.
    assert ready["connections"]["needs_consent"] == 1
    assert connection["id"] not in json.dumps(ready)
    async with proxy.get("/readyz", headers=admin()) as resp:
        ready = await resp.json()
    assert ready["attention"]["needs_consent"] == [connection["id"]]
    # Still answered without a crash on the next request.
    assert (await availability(proxy, ADELE))[ADELE]["error"] == {"code": "needs_consent"}
    # Connecting again restores the same connection.
    assert (await sign_in(proxy, mock, "individual", user=ADELE))[0] == 200
    assert (await availability(proxy, ADELE))[ADELE]["error"] is None
    (again,) = await listing(proxy)
    assert (again["id"], again["status"]) == (connection["id"], "connected")


async def test_disconnect_leaves_no_token_in_the_database(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Tokens are never in the SQLite file in plain text, and DELETE removes the connection."""
    db = tmp_path / "c.db"
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, db))
    assert (await sign_in(proxy, mock_graph, "individual", user=ADELE))[0] == 200
    assert (await availability(proxy, ADELE))[ADELE]["error"] is None
    refresh_tokens = list(mock_graph.graph.consent.refresh_tokens)
    assert refresh_tokens

    def raw_files() -> bytes:
        return b"".join(
            p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("c.db") and p.is_file()
        )

    def assert_no_token_in(raw: bytes) -> None:
        # JWT headers ({"alg": / {"typ": base64url-encoded). A bare "eyJ" is not scanned for:
        # three base64 characters turn up by chance in kilobytes of Fernet ciphertext.
        assert b"eyJhbGciOi" not in raw
        assert b"eyJ0eXAiOi" not in raw
        for token in refresh_tokens:
            assert token.encode() not in raw

    stored = raw_files()
    assert ADELE.encode() in stored  # the scan reads the real rows
    assert db.stat().st_mode & 0o077 == 0  # owner-only
    assert_no_token_in(stored)
    (connection,) = await listing(proxy)
    async with proxy.delete(f"/admin/connections/{connection['id']}") as refused:
        assert refused.status == 401
    async with proxy.delete(f"/admin/connections/{connection['id']}", headers=admin()) as resp:
        assert resp.status == 204
    async with proxy.delete(f"/admin/connections/{connection['id']}", headers=admin()) as again:
        assert again.status == 404
    assert await listing(proxy) == []
    after = raw_files()
    assert_no_token_in(after)
    assert ADELE.encode() not in after  # secure_delete overwrote the row
    assert (await availability(proxy, ADELE))[ADELE]["error"] == {"code": "not_connected"}


async def test_admin_api_needs_the_admin_key(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """No key, a consumer key or a wrong key: 401 problem documents."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    for headers in ({}, auth(), admin(ADMIN_KEY + "x")):
        async with proxy.get("/admin/connections", headers=headers) as resp:
            assert resp.status == 401
            assert resp.content_type == "application/problem+json"


async def test_state_mismatch_and_expired_flow_are_rejected(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """A callback with a foreign state, or after the flow expired, connects nothing."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    status, page = await sign_in(
        proxy, mock_graph, "individual", user=ADELE, tamper=lambda a: {**a, "state": "forged"}
    )
    assert status == 400
    assert "does not match" in page
    expiring = await make_proxy(
        mock_graph,
        settings=connect_settings(mock_graph, tmp_path / "d.db", flow_timeout_seconds=1e-9),
    )
    status, page = await sign_in(expiring, mock_graph, "individual", user=ADELE)
    assert status == 400
    assert "expired" in page
    assert await listing(proxy) == []


async def test_code_from_another_flow_fails_pkce(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """A code issued to one sign-in, replayed with another's state, fails the PKCE check."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    stolen: dict[str, str] = {}

    def steal(answer: dict[str, str]) -> dict[str, str]:
        stolen.update(answer)
        return {**answer, "state": "not-this-one"}

    await sign_in(proxy, mock_graph, "individual", user=ADELE, tamper=steal)
    status, page = await sign_in(
        proxy, mock_graph, "individual", user=ADELE, tamper=lambda a: {**a, "code": stolen["code"]}
    )
    assert status == 502
    assert "Sign-in failed" in page
    assert await listing(proxy) == []


async def test_declined_consent_page(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Decline on the consent page ends on our 'consent declined' page, without upstream text."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    status, page = await sign_in(proxy, mock_graph, "individual", user=ADELE, decision="decline")
    assert status == 403
    assert "Consent declined" in page
    assert "AADSTS" not in page


async def test_over_privileged_grant_refused_under_strict_scopes(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path
) -> None:
    """A sign-in granting Calendars.Read too is refused; without strict_scopes it is flagged."""
    mock = await make_mock(extra_delegated_scopes=("Calendars.Read", "Mail.Read"))
    proxy = await make_proxy(mock, settings=connect_settings(mock, tmp_path / "c.db"))
    status, page = await sign_in(proxy, mock, "individual", user=ADELE)
    assert status == 403
    assert "Too many permissions" in page
    assert await listing(proxy) == []
    lenient = await make_proxy(
        mock, settings=connect_settings(mock, tmp_path / "d.db", strict_scopes=False)
    )
    assert (await sign_in(lenient, mock, "individual", user=ADELE))[0] == 200
    (connection,) = await listing(lenient)
    assert connection["excess_scopes"] == ["Calendars.Read", "Mail.Read"]
    async with lenient.get("/readyz", headers=admin()) as resp:
        ready = await resp.json()
    assert ready["connections"]["over_privileged"] == 1
    assert ready["attention"]["over_privileged"] == [connection["id"]]


async def test_grant_widened_later_stops_the_connection(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path
) -> None:
    """Extra scopes granted after connecting show up at refresh: the connection is refused."""
    mock = await make_mock(token_lifetime_s=60)
    proxy = await make_proxy(mock, settings=connect_settings(mock, tmp_path / "c.db"))
    assert (await sign_in(proxy, mock, "individual", user=ADELE))[0] == 200
    mock.graph.grant_extra_scopes(ADELE, "Calendars.ReadWrite")
    answers = await availability(proxy, ADELE)
    assert answers[ADELE]["error"] == {"code": "needs_consent"}
    (connection,) = await listing(proxy)
    assert connection["status"] == "over_privileged"
    assert connection["excess_scopes"] == ["Calendars.ReadWrite"]


async def test_start_refused_for_disabled_kind(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Only the configured kinds can be started."""
    settings = connect_settings(mock_graph, tmp_path / "c.db", kinds=("individual",))
    proxy = await make_proxy(mock_graph, settings=settings)
    async with proxy.get("/connect/enterprise", allow_redirects=False) as resp:
        assert resp.status == 404


async def test_disconnect_calls_the_removed_hooks(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """DELETE tells every registered hook which connection went (for caches to forget it)."""
    from proxy.core.connections import Connection
    from proxy.web.keys import CONNECT

    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    removed: list[Connection] = []

    async def hook(connection: Connection) -> None:
        removed.append(connection)

    proxy.server.app[CONNECT].connections.on_removed.append(hook)
    assert (await sign_in(proxy, mock_graph, "individual", user=ADELE))[0] == 200
    (connection,) = await listing(proxy)
    async with proxy.delete(f"/admin/connections/{connection['id']}", headers=admin()) as resp:
        assert resp.status == 204
    assert [(c.id, c.account) for c in removed] == [(connection["id"], ADELE)]


async def test_uncovered_addresses_fall_back_to_application_permissions(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """With application permissions on, Adele goes through her connection, Alex app-only."""
    settings = connect_settings(mock_graph, tmp_path / "c.db", application_permissions=True)
    proxy = await make_proxy(mock_graph, settings=settings)
    assert (await sign_in(proxy, mock_graph, "individual", user=ADELE))[0] == 200
    answers = await availability(proxy, ADELE, ALEX)
    assert answers[ADELE]["error"] is None
    assert answers[ALEX]["error"] is None
    mailboxes = [entry["mailbox"] for entry in mock_graph.graph.stats()["recent"]]
    assert sorted(mailboxes) == sorted([ADELE, ALEX])
    async with proxy.get("/readyz") as resp:
        ready = await resp.json()
    assert ready["checks"] == {"token": "ok", "graph": "ok"}
    assert ready["connections"]["connected"] == 1


async def test_connections_survive_a_restart(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """A second proxy on the same database (and key) serves the stored connection."""
    db = tmp_path / "c.db"
    first = await make_proxy(mock_graph, settings=connect_settings(mock_graph, db))
    assert (await sign_in(first, mock_graph, "enterprise", user=MEGAN))[0] == 200
    second = await make_proxy(mock_graph, settings=connect_settings(mock_graph, db))
    assert (await availability(second, ALEX))[ALEX]["error"] is None


def test_pages_escape_everything() -> None:
    """Names from upstream are HTML-escaped on the connected page."""
    from proxy.core.connections import Connection
    from proxy.web.connect.pages import connected

    page = connected(
        Connection(
            id="x",
            kind="enterprise",
            account="a@b.example",
            tenant_id="t",
            tenant_name="<script>alert(1)</script>",
            domains=("b.example",),
            scopes=("User.Read",),
            status="connected",
            public_client=False,
            created="2026-01-01T00:00:00Z",
        )
    )
    assert page.text is not None
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text


async def test_disconnect_forgets_cached_availability(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path
) -> None:
    """After DELETE, nothing that connection fetched is served from the cache."""
    mock = await make_mock()
    settings = connect_settings(mock, tmp_path / "c.db", application_permissions=False)
    proxy = await make_proxy(mock, settings=settings)
    assert (await sign_in(proxy, mock, "individual", user=ADELE))[0] == 200
    first = await availability(proxy, ADELE)
    assert first[ADELE]["error"] is None
    calls = mock.graph.stats()["calls"]["getSchedule"]
    assert (await availability(proxy, ADELE))[ADELE] == first[ADELE]  # from the cache
    assert mock.graph.stats()["calls"]["getSchedule"] == calls
    (connection,) = await listing(proxy)
    async with proxy.delete(f"/admin/connections/{connection['id']}", headers=admin()) as resp:
        assert resp.status == 204
    after = await availability(proxy, ADELE)
    assert after[ADELE] == {**first[ADELE], "items": [], "error": {"code": "not_connected"}}
