"""The mock identity platform works with the real msal and answers like Microsoft's."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import jwt
import msal
import pytest

from proxy.mock import MOCK_CLIENT_ID, MOCK_CLIENT_SECRET, MOCK_DOMAIN, MOCK_TENANT_ID, RunningMock
from proxy.sources.tls import requests_session
from tests.support.mock_graph import (
    GRAPH_SCOPE,
    SYSTEM_CA_BUNDLE,
    open_session,
    post_schedule,
    schedule_body,
)


def _acquire(
    mock: RunningMock, *, secret: str = MOCK_CLIENT_SECRET, client_id: str = MOCK_CLIENT_ID
) -> dict[str, Any]:
    """Run msal's client-credentials flow against ``mock`` (blocking: call via to_thread)."""
    with requests_session(mock.ca_file) as http:
        app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=f"{mock.authority}/{MOCK_TENANT_ID}",
            instance_discovery=False,
            http_client=http,
        )
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        return result


@pytest.fixture(autouse=True)
def _requests_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point requests at the system bundle, the setting that silently breaks verify=<CA>."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_CA_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", SYSTEM_CA_BUNDLE)


async def test_msal_gets_an_app_token_despite_requests_ca_bundle(mock: RunningMock) -> None:
    """The real msal discovers the tenant and gets a Bearer token with the configured roles."""
    result = await asyncio.to_thread(_acquire, mock)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["iss"] == f"https://sts.windows.net/{MOCK_TENANT_ID}/"
    assert claims["tid"] == MOCK_TENANT_ID
    assert claims["appid"] == MOCK_CLIENT_ID
    assert claims["roles"] == ["Calendars.ReadBasic"]
    assert {"oid", "iat", "nbf", "exp"} <= claims.keys()
    assert mock.graph.stats()["calls"]["token"] == 1
    assert mock.graph.stats()["calls"]["openid-configuration"] == 1


async def test_msal_token_is_accepted_by_get_schedule(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A token msal obtained opens getSchedule."""
    result = await asyncio.to_thread(_acquire, mock)
    address = mock.graph.organisation.addresses()[0]
    status, _, _ = await post_schedule(
        session, mock, schedule_body([address]), token=result["access_token"]
    )
    assert status == 200


async def test_msal_reports_a_wrong_secret_as_invalid_client(mock: RunningMock) -> None:
    """A wrong secret comes back to msal as invalid_client, AADSTS7000215."""
    result = await asyncio.to_thread(_acquire, mock, secret="not-the-secret")
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: ")
    assert "access_token" not in result


async def test_msal_reports_an_unknown_client_id(mock: RunningMock) -> None:
    """An application id the tenant does not know is refused with AADSTS700016."""
    result = await asyncio.to_thread(
        _acquire, mock, client_id="11111111-2222-3333-4444-555555555555"
    )
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]


async def test_discovery_of_an_unknown_tenant_fails_like_microsoft(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """An unknown tenant gets 400 AADSTS90002, and msal refuses to build the application."""
    url = f"{mock.url}/not-a-tenant/v2.0/.well-known/openid-configuration"
    async with session.get(url) as response:
        body = await response.json()
    assert response.status == 400
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: ")
    assert {"error", "timestamp", "trace_id", "correlation_id"} <= body.keys()

    def build() -> None:
        with requests_session(mock.ca_file) as http:
            msal.ConfidentialClientApplication(
                MOCK_CLIENT_ID,
                client_credential=MOCK_CLIENT_SECRET,
                authority=f"{mock.authority}/not-a-tenant",
                instance_discovery=False,
                http_client=http,
            )

    with pytest.raises(ValueError, match="not-a-tenant"):
        await asyncio.to_thread(build)


@pytest.mark.parametrize("tenant", [MOCK_TENANT_ID, MOCK_DOMAIN, "organizations", "common"])
async def test_discovery_serves_known_tenants_with_urls_from_the_host_header(
    mock: RunningMock, session: aiohttp.ClientSession, tenant: str
) -> None:
    """Endpoints are absolute https URLs on whatever host the client used (compose or local)."""
    url = f"{mock.url}/{tenant}/v2.0/.well-known/openid-configuration"
    async with session.get(url, headers={"Host": "mock-graph:8443"}) as response:
        body = await response.json()
    assert response.status == 200
    for key in (
        "token_endpoint",
        "authorization_endpoint",
        "device_authorization_endpoint",
        "jwks_uri",
    ):
        assert body[key].startswith("https://mock-graph:8443/"), key
    expected = tenant if tenant in ("organizations", "common") else MOCK_TENANT_ID
    assert body["token_endpoint"] == f"https://mock-graph:8443/{expected}/oauth2/v2.0/token"
    assert body["issuer"].startswith("https://mock-graph:8443/")


async def _token_request(
    session: aiohttp.ClientSession,
    mock: RunningMock,
    form: dict[str, str],
    tenant: str = MOCK_TENANT_ID,
) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{mock.url}/{tenant}/oauth2/v2.0/token", data=form) as response:
        return response.status, await response.json()


async def test_token_endpoint_accepts_the_secret_in_the_form(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """client_secret_post works without the Basic header msal also sends."""
    status, body = await _token_request(
        session,
        mock,
        {
            "grant_type": "client_credentials",
            "client_id": MOCK_CLIENT_ID,
            "client_secret": MOCK_CLIENT_SECRET,
            "scope": GRAPH_SCOPE,
        },
    )
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["ext_expires_in"] == body["expires_in"] == 3599


@pytest.mark.parametrize("scope", ["User.Read", "https://graph.microsoft.com/Calendars.Read", ""])
async def test_token_endpoint_refuses_other_scopes(
    mock: RunningMock, session: aiohttp.ClientSession, scope: str
) -> None:
    """Client credentials need exactly https://graph.microsoft.com/.default."""
    status, body = await _token_request(
        session,
        mock,
        {
            "grant_type": "client_credentials",
            "client_id": MOCK_CLIENT_ID,
            "client_secret": MOCK_CLIENT_SECRET,
            "scope": scope,
        },
    )
    assert status == 400
    assert body["error"] == "invalid_scope"
    assert body["error_description"].startswith("AADSTS70011: ")


async def test_token_endpoint_refuses_unknown_grants_and_missing_secrets(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """Unsupported grant types and missing credentials are refused in Microsoft's error shape."""
    status, body = await _token_request(
        session, mock, {"grant_type": "password", "client_id": MOCK_CLIENT_ID}
    )
    assert (status, body["error"], body["error_codes"]) == (400, "unsupported_grant_type", [70003])
    status, body = await _token_request(
        session,
        mock,
        {"grant_type": "client_credentials", "client_id": MOCK_CLIENT_ID, "scope": GRAPH_SCOPE},
    )
    assert (status, body["error"], body["error_codes"]) == (401, "invalid_client", [7000218])


async def test_tokens_of_another_mock_are_rejected(
    mock: RunningMock, session: aiohttp.ClientSession, mock_factory: Any
) -> None:
    """Each mock signs with its own key: a token from another instance gets 401."""
    other = await mock_factory()
    foreign = other.graph.issue_app_token()
    address = mock.graph.organisation.addresses()[0]
    status, _, body = await post_schedule(session, mock, schedule_body([address]), token=foreign)
    assert status == 401
    assert body["error"]["code"] == "InvalidAuthenticationToken"


async def test_expired_tokens_are_rejected(mock_factory: Any) -> None:
    """A token past its exp gets 401 InvalidAuthenticationToken."""
    short = await mock_factory(token_lifetime_s=-60)
    async with open_session(short) as session:
        address = short.graph.organisation.addresses()[0]
        status, _, body = await post_schedule(session, short, schedule_body([address]))
    assert status == 401
    assert "expired" in body["error"]["message"]
