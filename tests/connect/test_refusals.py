"""Connect sign-ins the proxy refuses: each ends on our own page, stores nothing, leaks nothing.

Real msal and the real proxy against the mock identity platform over real sockets; the mock's
switches (outside accounts, withheld scopes, faults) produce each refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.mock import MOCK_DOMAIN, PERSONAL_ACCOUNTS_TENANT_ID, Fault, RunningMock
from proxy.mock.faults import FaultKind
from tests.support.connect import admin, connect_settings, sign_in
from tests.support.leaks import assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.proxies import ProxyFactory

ADELE = f"adele.vance@{MOCK_DOMAIN}"
MEGAN = f"megan.bowen@{MOCK_DOMAIN}"  # the mock's administrator
PERSONAL = "pat.doe@outlook.example"
FOREIGN = "kim.akers@fabrikam.example"
FABRIKAM_TENANT_ID = "2b8f4c61-7e3d-4a95-b0c2-5d9e1f6a3b74"
OUTSIDE = ((PERSONAL, PERSONAL_ACCOUNTS_TENANT_ID), (FOREIGN, FABRIKAM_TENANT_ID))
# Upstream words that must never reach a refusal page: error codes, messages, claims.
UPSTREAM_TEXT = (
    "AADSTS",
    "Injected",
    "temporarily_unavailable",
    "invalid_grant",
    "InvalidAuthenticationToken",
    "ServiceUnavailable",
    "innerError",
    "Trace ID",
    "access_token",
    "refresh_token",
    "id_token",
)


async def listing(proxy: Any) -> list[dict[str, Any]]:
    """GET /admin/connections with the admin key."""
    async with proxy.get("/admin/connections", headers=admin()) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    connections: list[dict[str, Any]] = json.loads(text)["connections"]
    return connections


async def assert_refused(
    proxy: Any, outcome: tuple[int, str], *, status: int, title: str, says: str
) -> None:
    """The page is ours: status, heading, an alert with the reason; nothing upstream; no row."""
    got, page = outcome
    assert got == status, page
    assert f'<h1 id="outcome">{title}</h1>' in page
    assert '<p role="alert">' in page
    assert says in page
    assert '<html lang="en">' in page
    assert 'href="/connect">Start again</a>' in page
    assert_no_leak(page)
    for word in UPSTREAM_TEXT:
        assert word not in page, word
    assert await listing(proxy) == []


async def refusing_proxy(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, **mock: Any
) -> tuple[Any, RunningMock]:
    """A mock with ``mock`` settings and a connect-enabled proxy in front of it."""
    running = await make_mock(**mock)
    proxy = await make_proxy(running, settings=connect_settings(running, tmp_path / "c.db"))
    return proxy, running


@pytest.mark.parametrize("kind", ["individual", "enterprise"])
async def test_personal_microsoft_account_is_refused(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, kind: str
) -> None:
    """A personal Microsoft account (consumer tenant) ends on 'Wrong account type', 403."""
    proxy, mock = await refusing_proxy(make_proxy, make_mock, tmp_path, outside_accounts=OUTSIDE)
    outcome = await sign_in(proxy, mock, kind, user=PERSONAL)
    await assert_refused(
        proxy,
        outcome,
        status=403,
        title="Wrong account type",
        says="personal Microsoft accounts cannot be connected",
    )
    # The identity platform did sign the account in: the refusal is the proxy's own.
    assert [g.user for g in mock.graph.consent.grants.values()] == [PERSONAL]


@pytest.mark.parametrize("kind", ["individual", "enterprise"])
async def test_account_of_another_organisation_is_refused(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, kind: str
) -> None:
    """A work account whose token names another tenant ends on 'another organisation', 403."""
    proxy, mock = await refusing_proxy(make_proxy, make_mock, tmp_path, outside_accounts=OUTSIDE)
    outcome = await sign_in(proxy, mock, kind, user=FOREIGN)
    await assert_refused(
        proxy,
        outcome,
        status=403,
        title="Wrong account type: another organisation",
        says="an organisation this proxy does not serve",
    )


@pytest.mark.parametrize("withheld", ["Calendars.ReadBasic", "User.Read"])
async def test_grant_missing_a_free_busy_permission_is_refused(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, withheld: str
) -> None:
    """A consent without Calendars.ReadBasic or User.Read ends on 'Permissions missing', 403."""
    proxy, mock = await refusing_proxy(
        make_proxy, make_mock, tmp_path, withheld_delegated_scopes=(withheld,)
    )
    outcome = await sign_in(proxy, mock, "individual", user=ADELE)
    await assert_refused(
        proxy,
        outcome,
        status=403,
        title="Permissions missing",
        says="did not grant Calendars.ReadBasic and User.Read",
    )
    # Refused before the organisation was read with a token that cannot read it.
    assert mock.graph.stats()["calls"].get("organization", 0) == 0


@pytest.mark.parametrize("kind", ["individual", "enterprise"])
async def test_grant_without_offline_access_is_refused(
    make_proxy: ProxyFactory, make_mock: MockFactory, tmp_path: Path, kind: str
) -> None:
    """Without offline_access there is no refresh token: 'Offline access missing', 403."""
    proxy, mock = await refusing_proxy(
        make_proxy, make_mock, tmp_path, withheld_delegated_scopes=("offline_access",)
    )
    outcome = await sign_in(proxy, mock, kind, user=MEGAN)
    await assert_refused(
        proxy,
        outcome,
        status=403,
        title="Offline access missing",
        says="did not grant offline_access",
    )
    assert mock.graph.consent.refresh_tokens == {}


@pytest.mark.parametrize(
    "fault",
    [
        Fault(endpoint="organization", kind="status", status=503, count=None),
        Fault(endpoint="organization", kind="status", status=403, count=None),
        Fault(endpoint="organization", kind="malformed", count=None),
        # aiohttp retries a GET once on a dropped keep-alive connection: drop every time.
        Fault(endpoint="organization", kind="drop", count=None),
        Fault(endpoint="organization", kind="body", body={"value": []}, count=None),
    ],
    ids=["503", "403", "malformed", "drop", "no-organisation"],
)
async def test_unreadable_organization_is_refused(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path, fault: Fault
) -> None:
    """GET /organization failing ends on 'Organisation not readable', 502; a retry connects."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    mock_graph.graph.add_fault(fault)
    outcome = await sign_in(proxy, mock_graph, "enterprise", user=MEGAN)
    await assert_refused(
        proxy,
        outcome,
        status=502,
        title="Organisation not readable",
        says="could not be read. Nothing was connected.",
    )
    assert mock_graph.graph.stats()["calls"]["organization"] >= 1
    mock_graph.graph.clear_faults()
    status, page = await sign_in(proxy, mock_graph, "enterprise", user=MEGAN)
    assert status == 200, page
    assert [c["account"] for c in await listing(proxy)] == [MEGAN]


# Not "drop" here: a discovery connection dropped before msal's app exists leaves a socket
# unclosed somewhere under requests, and its ResourceWarning fails a later test at random.
@pytest.mark.parametrize("kind", ["status", "malformed"])
async def test_start_while_identity_platform_is_unavailable(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path, kind: FaultKind
) -> None:
    """Discovery failing at /connect/{kind}: 'Sign-in failed', 502, no redirect; later it works."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    mock_graph.graph.add_fault(Fault(endpoint="openid-configuration", kind=kind, count=None))
    async with proxy.get("/connect/individual", allow_redirects=False) as resp:
        outcome = resp.status, await resp.text()
        assert "Location" not in resp.headers
    await assert_refused(
        proxy,
        outcome,
        status=502,
        title="Sign-in failed",
        says="identity platform did not complete the sign-in",
    )
    mock_graph.graph.clear_faults()
    assert (await sign_in(proxy, mock_graph, "individual", user=ADELE))[0] == 200


def fault_before_callback(mock: RunningMock, fault: Fault) -> Callable[[dict[str, str]], Any]:
    """A ``tamper`` that scripts ``fault`` once the browser is on its way back to the proxy."""

    def inject(answer: dict[str, str]) -> dict[str, str]:
        mock.graph.add_fault(fault)
        return answer

    return inject


@pytest.mark.parametrize(
    "fault",
    [
        Fault(endpoint="token", kind="status", status=503, count=None),
        Fault(endpoint="token", kind="malformed", count=None),
        Fault(endpoint="token", kind="drop", count=None),
        Fault(endpoint="openid-configuration", kind="status", status=503, count=None),
        Fault(endpoint="openid-configuration", kind="drop", count=None),
    ],
    ids=["token-503", "token-malformed", "token-drop", "discovery-503", "discovery-drop"],
)
async def test_callback_while_identity_platform_is_unavailable(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path, fault: Fault
) -> None:
    """The platform failing between consent and code redemption: 'Sign-in failed', 502."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    outcome = await sign_in(
        proxy, mock_graph, "individual", user=ADELE, tamper=fault_before_callback(mock_graph, fault)
    )
    await assert_refused(
        proxy,
        outcome,
        status=502,
        title="Sign-in failed",
        says="identity platform did not complete the sign-in",
    )
    mock_graph.graph.clear_faults()
    assert (await sign_in(proxy, mock_graph, "individual", user=ADELE))[0] == 200
