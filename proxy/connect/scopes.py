"""The Free/Busy permission set, and what an access token says was granted."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

# What the proxy asks msal for; msal adds openid, profile and offline_access itself (and
# refuses them in this list).
REQUESTED_SCOPES = ("Calendars.ReadBasic", "User.Read")
# Everything a Free/Busy connection may hold: more than this is over-privilege.
FREE_BUSY_SCOPES = frozenset(
    {"Calendars.ReadBasic", "User.Read", "offline_access", "openid", "profile", "email"}
)
# Directory roles allowed to consent for the whole organisation (role template ids, ``wids``):
# Global Administrator, Privileged Role Administrator, Cloud Application Administrator,
# Application Administrator.
ADMIN_ROLES = frozenset(
    {
        "62e90394-69f5-4237-9190-012177145e10",
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    }
)
_GRAPH_PREFIX = "https://graph.microsoft.com/"


def token_claims(access_token: str) -> dict[str, Any]:
    """Return the claims of a JWT access token without checking its signature.

    The proxy is not the token's audience (Graph is), so it cannot and need not verify it; it
    only reads what was granted. An opaque or malformed token yields no claims.
    """
    parts = access_token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def granted_scopes(claims: dict[str, Any]) -> frozenset[str]:
    """Return the delegated ``scp`` and application ``roles`` of a token, Graph prefix removed."""
    scp = claims.get("scp")
    roles = claims.get("roles")
    names = (scp.split() if isinstance(scp, str) else []) + (
        [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
    )
    return frozenset(n[len(_GRAPH_PREFIX) :] if n.startswith(_GRAPH_PREFIX) else n for n in names)


def listed_permissions(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """A connection's permissions as the consent asked for them, offline_access included.

    Access tokens never list offline_access; the refresh token is its evidence, and no
    connection is stored without one (onboarding refuses ``no_refresh_token``).
    """
    return tuple(sorted({*scopes, "offline_access"}, key=str.casefold))


def excess_scopes(granted: frozenset[str]) -> frozenset[str]:
    """Return what was granted beyond the Free/Busy set (case-insensitive, as Entra ID is)."""
    allowed = {s.casefold() for s in FREE_BUSY_SCOPES}
    return frozenset(s for s in granted if s.casefold() not in allowed)


def is_admin(claims: dict[str, Any]) -> bool:
    """Return True when the token's ``wids`` name a role that may consent for the organisation."""
    wids = claims.get("wids")
    return isinstance(wids, list) and bool(ADMIN_ROLES & {w for w in wids if isinstance(w, str)})
