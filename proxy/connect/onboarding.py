"""Turning a fresh sign-in into a stored connection, or a refusal with a reason of ours."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import aiohttp

from proxy.connect.registry import Connections
from proxy.connect.scopes import excess_scopes, granted_scopes, is_admin, token_claims
from proxy.core.connections import Connection, Kind
from proxy.core.errors import Refusal
from proxy.core.timefmt import format_utc

log = logging.getLogger(__name__)

# The tenant "GUID" of personal Microsoft accounts: they have no organisation to connect.
PERSONAL_ACCOUNTS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
_MULTI_TENANT = frozenset({"common", "organizations"})


async def _organization(
    session: aiohttp.ClientSession, base_url: str, access_token: str
) -> tuple[str, tuple[str, ...]]:
    """Return the tenant's display name and verified domains (GET /organization, User.Read)."""
    url = f"{base_url.rstrip('/')}/organization"
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    try:
        async with session.get(url, headers=headers) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError):
        raise Refusal("organization_unavailable") from None
    try:
        body = json.loads(raw) if status == 200 else None
        org: Any
        (org,) = body["value"] if isinstance(body, dict) else [None]
        name = org["displayName"]
        domains = tuple(
            sorted(
                {d["name"].casefold() for d in org["verifiedDomains"] if isinstance(d["name"], str)}
            )
        )
    except (ValueError, KeyError, TypeError):
        raise Refusal("organization_unavailable") from None
    if not isinstance(name, str) or not domains:
        raise Refusal("organization_unavailable")
    return name, domains


async def complete(
    connections: Connections,
    session: aiohttp.ClientSession,
    *,
    kind: Kind,
    result: dict[str, Any],
    token_cache: str,
    public_client: bool,
) -> Connection:
    """Check a msal token result and store the connection it makes; raise Refusal otherwise."""
    settings = connections.settings
    access_token = str(result["access_token"])
    claims = token_claims(access_token)
    id_claims = result.get("id_token_claims") or {}
    tenant_id = str(id_claims.get("tid") or claims.get("tid") or "")
    account = str(
        id_claims.get("preferred_username") or claims.get("upn") or claims.get("unique_name") or ""
    ).casefold()
    if not tenant_id or "@" not in account or tenant_id == PERSONAL_ACCOUNTS_TENANT:
        raise Refusal("wrong_account")
    configured = settings.graph.tenant_id.casefold()
    if configured not in _MULTI_TENANT and tenant_id.casefold() != configured:
        raise Refusal("wrong_tenant")
    # Roles come from the ID token, which our registration shapes (manifest
    # groupMembershipClaims "DirectoryRole" adds ``wids``); the Graph token is not ours to shape.
    if kind == "enterprise" and not is_admin(id_claims):
        raise Refusal("not_admin")
    granted = granted_scopes(claims)
    excess = excess_scopes(granted)
    if excess:
        log.warning(
            "a %s sign-in was granted more than the Free/Busy permissions: %s",
            kind,
            " ".join(sorted(excess)),
        )
        if settings.connect.strict_scopes:
            raise Refusal("over_privileged", tuple(sorted(excess)))
    if not {"Calendars.ReadBasic", "User.Read"} <= granted:
        raise Refusal("missing_scopes")
    if not result.get("refresh_token"):
        # Without offline_access the connection would die with its first access token.
        raise Refusal("no_refresh_token")
    tenant_name, domains = await _organization(session, settings.graph.base_url, access_token)
    connection = Connection(
        # Random: an id derived from tenant and account would tell a staff list who connected.
        # A repeated sign-in of the same kind and account keeps the first one's id (the store).
        id=str(uuid.uuid4()),
        kind=kind,
        account=account,
        tenant_id=tenant_id,
        tenant_name=tenant_name,
        domains=domains,
        scopes=tuple(sorted(granted)),
        status="connected",
        public_client=public_client,
        created=format_utc(connections.wall_clock.now().replace(microsecond=0)),
    )
    connection = await connections.add(connection, token_cache)
    log.info("connection %s (%s) stored", connection.id, kind)
    return connection
