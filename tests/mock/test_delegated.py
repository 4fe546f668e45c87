"""The mock's delegated flows work with the real msal: auth code + PKCE, refresh, device code."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import jwt
import msal

from proxy.mock import MOCK_CLIENT_ID, MOCK_CLIENT_SECRET, MOCK_DOMAIN, MOCK_TENANT_ID, RunningMock
from proxy.sources.tls import requests_session
from tests.support.mock_graph import open_session

SCOPES = ["Calendars.ReadBasic", "User.Read"]
REDIRECT = "http://127.0.0.1:9/connect/callback"
ADELE = f"adele.vance@{MOCK_DOMAIN}"


def _app(mock: RunningMock, http: Any) -> Any:
    return msal.ConfidentialClientApplication(
        MOCK_CLIENT_ID,
        client_credential=MOCK_CLIENT_SECRET,
        authority=f"{mock.authority}/{MOCK_TENANT_ID}",
        instance_discovery=False,
        http_client=http,
    )


async def _consent(
    session: aiohttp.ClientSession, auth_uri: str, *, user: str, decision: str = "accept"
) -> dict[str, str]:
    """Load the consent page, submit it as ``user``; return the redirect's query parameters."""
    async with session.get(auth_uri) as page:
        assert page.status == 200
        text = await page.text()
    fields = dict(re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', text))
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    form = {**fields, "user": user, "decision": decision}
    async with session.post(auth_uri.split("?")[0], data=form, allow_redirects=False) as answer:
        assert answer.status == 200
        posted = await answer.text()
    # response_mode=form_post: the page posts code (or error) and state to the redirect URI.
    assert f'action="{REDIRECT}"' in posted
    return {
        k: v.replace("&amp;", "&")
        for k, v in re.findall(r'type="hidden" name="([a-z_]+)" value="([^"]*)"', posted)
    }


async def test_auth_code_flow_with_pkce_refresh_and_revocation(mock: RunningMock) -> None:
    """msal's auth-code flow gets a delegated token for the chosen user; revoke breaks refresh."""
    with requests_session(mock.ca_file) as http:
        app = await asyncio.to_thread(_app, mock, http)
        flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, response_mode="form_post")
        async with open_session(mock) as session:
            answer = await _consent(session, flow["auth_uri"], user=ADELE)
        assert mock.graph.consent.authorize_scopes[-1]
        assert set(mock.graph.consent.authorize_scopes[-1]) == {
            "Calendars.ReadBasic",
            "User.Read",
            "openid",
            "profile",
            "offline_access",
        }
        result = await asyncio.to_thread(app.acquire_token_by_auth_code_flow, flow, answer)
        assert "access_token" in result, result.get("error")
        claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        assert claims["upn"] == ADELE
        assert set(claims["scp"].split()) == {
            "Calendars.ReadBasic",
            "User.Read",
            "openid",
            "profile",
        }
        assert result["id_token_claims"]["preferred_username"] == ADELE
        assert "refresh_token" in result
        (account,) = app.get_accounts()
        refreshed = await asyncio.to_thread(
            app.acquire_token_silent_with_error, SCOPES, account, force_refresh=True
        )
        assert "access_token" in refreshed
        mock.graph.revoke_grant(ADELE)
        failed = await asyncio.to_thread(
            app.acquire_token_silent_with_error, SCOPES, account, force_refresh=True
        )
        assert failed["error"] == "invalid_grant"


async def test_declined_consent_redirects_with_access_denied(mock: RunningMock) -> None:
    """Decline sends the browser back with error=access_denied and the state, no code."""
    with requests_session(mock.ca_file) as http:
        app = await asyncio.to_thread(_app, mock, http)
        flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, response_mode="form_post")
    async with open_session(mock) as session:
        answer = await _consent(session, flow["auth_uri"], user=ADELE, decision="decline")
    assert answer["error"] == "access_denied"
    assert answer["state"] == flow["state"]
    assert "code" not in answer


async def test_code_is_bound_to_pkce_verifier(mock: RunningMock) -> None:
    """A code redeemed with another verifier fails with invalid_grant, and cannot be reused."""
    with requests_session(mock.ca_file) as http:
        app = await asyncio.to_thread(_app, mock, http)
        flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, response_mode="form_post")
        async with open_session(mock) as session:
            answer = await _consent(session, flow["auth_uri"], user=ADELE)
        tampered = {**flow, "code_verifier": "x" * 43}
        result = await asyncio.to_thread(app.acquire_token_by_auth_code_flow, tampered, answer)
        assert result["error"] == "invalid_grant"
        again = await asyncio.to_thread(app.acquire_token_by_auth_code_flow, flow, answer)
        assert again["error"] == "invalid_grant"


async def test_device_code_states(mock_factory: Any) -> None:
    """Device code polling: pending, slow_down when too fast, declined, and expired."""
    mock = await mock_factory(device_poll_interval_s=5)
    url = f"{mock.authority}/{MOCK_TENANT_ID}/oauth2/v2.0"
    async with open_session(mock) as session:

        async def start() -> dict[str, Any]:
            data = {"client_id": MOCK_CLIENT_ID, "scope": "Calendars.ReadBasic offline_access"}
            async with session.post(f"{url}/devicecode", data=data) as resp:
                body: dict[str, Any] = await resp.json()
                return body

        async def poll(device: dict[str, Any]) -> dict[str, Any]:
            data = {
                "client_id": MOCK_CLIENT_ID,
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": device["device_code"],
            }
            async with session.post(f"{url}/token", data=data) as resp:
                body: dict[str, Any] = await resp.json()
                return body

        device = await start()
        assert device["user_code"] in device["message"]
        assert (await poll(device))["error"] == "authorization_pending"
        assert (await poll(device))["error"] == "slow_down"
        assert mock.graph.decline_device_code(device["user_code"])
        assert (await poll(device))["error"] == "authorization_declined"
        approved = await start()
        assert mock.graph.approve_device_code(approved["user_code"], ADELE)
        tokens = await poll(approved)
        assert "refresh_token" in tokens
        assert "access_token" in tokens
    expired_mock = await mock_factory(device_code_lifetime_s=0)
    async with open_session(expired_mock) as session:
        url = f"{expired_mock.authority}/{MOCK_TENANT_ID}/oauth2/v2.0"
        device = await start()
        assert (await poll(device))["error"] == "expired_token"


async def test_organization_needs_a_user_read_token(mock: RunningMock) -> None:
    """GET /v1.0/organization answers tenant id and verified domains to a User.Read token."""
    token = mock.graph.tokens.issue_user_token(
        client_id=MOCK_CLIENT_ID, user_oid="x", upn=ADELE, scopes=("User.Read",)
    )
    bare = mock.graph.tokens.issue_user_token(
        client_id=MOCK_CLIENT_ID, user_oid="x", upn=ADELE, scopes=("Calendars.ReadBasic",)
    )
    async with open_session(mock) as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{mock.graph_base_url}/organization", headers=headers) as resp:
            body = await resp.json()
        async with session.get(
            f"{mock.graph_base_url}/organization", headers={"Authorization": f"Bearer {bare}"}
        ) as refused:
            assert refused.status == 403
    (org,) = body["value"]
    assert org["id"] == MOCK_TENANT_ID
    assert MOCK_DOMAIN in {d["name"] for d in org["verifiedDomains"]}


async def test_scenario_switches_over_http(mock: RunningMock) -> None:
    """/_mock/grants revokes or widens a grant; /_mock/devicecode approves a user code."""
    grant = mock.graph.consent.consent(
        user=ADELE, client_id=MOCK_CLIENT_ID, requested=("Calendars.ReadBasic",)
    )
    device = mock.graph.consent.start_device(
        client_id=MOCK_CLIENT_ID, requested=("User.Read",), lifetime_s=60, interval_s=1
    )
    async with open_session(mock) as session:
        url = f"{mock.url}/_mock"
        async with session.post(f"{url}/grants", json={"user": ADELE, "add_scopes": ["Mail.Read"]}):
            pass
        assert "Mail.Read" in grant.scopes
        async with session.post(f"{url}/grants", json={"user": ADELE, "revoke": True}) as resp:
            assert (await resp.json())["changed"] == 1
        assert grant.revoked
        async with session.get(f"{url}/grants") as resp:
            assert (await resp.json())[0]["revoked"] is True
        body = {"user_code": device.user_code, "user": ADELE}
        async with session.post(f"{url}/devicecode", json=body) as resp:
            assert resp.status == 200
        assert device.state == "approved"
        async with session.post(f"{url}/devicecode", json=body) as resp:
            assert resp.status == 404


def _cached_app(mock: RunningMock, http: Any, cache: Any) -> Any:
    """A confidential msal app over ``cache`` (blocking: discovery; call it in a thread)."""
    return msal.ConfidentialClientApplication(
        MOCK_CLIENT_ID,
        client_credential=MOCK_CLIENT_SECRET,
        authority=f"{mock.authority}/{MOCK_TENANT_ID}",
        instance_discovery=False,
        http_client=http,
        token_cache=cache,
    )


async def _signed_in_cache(mock: RunningMock, http: Any) -> str:
    """Sign Adele in through msal's auth-code flow; return the serialized token cache."""
    cache = msal.SerializableTokenCache()
    app = await asyncio.to_thread(_cached_app, mock, http, cache)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, response_mode="form_post")
    async with open_session(mock) as session:
        answer = await _consent(session, flow["auth_uri"], user=ADELE)
    result = await asyncio.to_thread(app.acquire_token_by_auth_code_flow, flow, answer)
    assert "access_token" in result
    serialized: str = cache.serialize()
    return serialized


async def _refresh(mock: RunningMock, http: Any, serialized: str) -> dict[str, Any]:
    """Refresh from a copy of a token cache, as a second process holding it would."""
    cache = msal.SerializableTokenCache()
    cache.deserialize(serialized)
    app = await asyncio.to_thread(_cached_app, mock, http, cache)
    (account,) = app.get_accounts()
    result: dict[str, Any] = await asyncio.to_thread(
        app.acquire_token_silent_with_error, SCOPES, account, force_refresh=True
    )
    return result


async def test_single_use_refresh_tokens_refuse_a_stale_copy(mock_factory: Any) -> None:
    """With single-use refresh tokens, two holders of one cache: the second refresh fails."""
    for single_use, second_ok in ((False, True), (True, False)):
        mock = await mock_factory(single_use_refresh_tokens=single_use)
        with requests_session(mock.ca_file) as http:
            serialized = await _signed_in_cache(mock, http)
            first = await _refresh(mock, http, serialized)
            assert "access_token" in first
            second = await _refresh(mock, http, serialized)
        assert ("access_token" in second) is second_ok
        if not second_ok:
            assert second["error"] == "invalid_grant"
        assert (mock.graph.consent.refreshes, mock.graph.consent.reused) == (
            (2, 0) if second_ok else (1, 1)
        )


async def test_token_lifetime_can_change_while_running(mock: RunningMock) -> None:
    """set_token_lifetime changes expires_in and exp of tokens issued after it."""
    mock.graph.set_token_lifetime(200)
    with requests_session(mock.ca_file) as http:
        serialized = await _signed_in_cache(mock, http)
        mock.graph.set_token_lifetime(3599)
        refreshed = await _refresh(mock, http, serialized)
    (entry,) = json.loads(serialized)["AccessToken"].values()
    first = jwt.decode(entry["secret"], options={"verify_signature": False})
    assert first["exp"] - first["iat"] == 200
    assert refreshed["expires_in"] == 3599
