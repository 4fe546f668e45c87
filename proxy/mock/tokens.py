"""Access tokens the way Microsoft Graph sees them: signed JWTs with roles or scp.

Real tokens are RS256 from the tenant's keys; the mock signs HS256 with a random per-instance
key, because only the mock itself ever validates them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from proxy.mock.canary import stable_object_id

GRAPH_AUDIENCE = "https://graph.microsoft.com"


class TokenRejected(Exception):
    """The bearer token is missing, malformed, forged or expired; the message says which."""


class TokenIssuer:
    """Mints and checks the access tokens of one tenant."""

    def __init__(self, *, tenant_id: str, lifetime_s: int) -> None:
        self.tenant_id = tenant_id
        self.lifetime_s = lifetime_s
        self.issued = 0
        self._key = secrets.token_bytes(32)

    @property
    def issuer(self) -> str:
        """Return the ``iss`` claim of this tenant's v1 access tokens (what Graph receives)."""
        return f"https://sts.windows.net/{self.tenant_id}/"

    def issue_app_token(self, *, client_id: str, roles: tuple[str, ...]) -> str:
        """Return an app-only token (client credentials) carrying ``roles``."""
        principal = stable_object_id(self.tenant_id, "service-principal", client_id)
        return self._mint(
            {
                "appid": client_id,
                "appidacr": "1",
                "idtyp": "app",
                "oid": principal,
                "sub": principal,
                "roles": list(roles),
            }
        )

    def issue_user_token(
        self,
        *,
        client_id: str,
        user_oid: str,
        upn: str,
        scopes: tuple[str, ...],
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Return a delegated token for ``upn`` carrying ``scopes`` as a space-separated scp."""
        return self._mint(
            {
                **(extra or {}),
                "appid": client_id,
                "appidacr": "0",
                "idtyp": "user",
                "oid": user_oid,
                "sub": stable_object_id(self.tenant_id, "pairwise", client_id, user_oid),
                "upn": upn,
                "unique_name": upn,
                "scp": " ".join(scopes),
            }
        )

    def issue_id_token(self, claims: dict[str, Any]) -> str:
        """Return an OpenID Connect id_token with ``claims`` (iss, aud, nonce… from the caller)."""
        now = int(time.time())
        payload = {"iat": now, "nbf": now, "exp": now + self.lifetime_s, "ver": "2.0", **claims}
        return jwt.encode(payload, self._key, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a token this issuer minted and that is still valid."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=GRAPH_AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "nbf", "tid"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenRejected("Lifetime validation failed, the token is expired.") from error
        except jwt.DecodeError as error:
            raise TokenRejected("IDX14100: JWT is not well formed.") from error
        except jwt.InvalidTokenError as error:
            raise TokenRejected("Access token validation failure. Invalid audience.") from error
        if claims["tid"] != self.tenant_id:
            raise TokenRejected("Access token validation failure. Invalid tenant.")
        return claims

    def rotate_key(self) -> None:
        """Invalidate every token issued so far (as if the signing key had been rolled)."""
        self._key = secrets.token_bytes(32)

    def _mint(self, claims: dict[str, Any]) -> str:
        now = int(time.time())
        self.issued += 1
        payload = {
            "aud": GRAPH_AUDIENCE,
            "iss": self.issuer,
            "idp": self.issuer,
            "tid": self.tenant_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_s,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm="HS256")
