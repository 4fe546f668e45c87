"""Delegated grants of the mock tenant: consents, authorization codes, refresh and device codes.

Pure state, no HTTP: the authorize page, the token endpoint's delegated grants and the
``/_mock/`` switches all act on one ``ConsentBook``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Literal

# Scopes the identity platform answers itself; they never appear in an access token's scp
# except the three OpenID ones Graph tokens carry.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
CODE_LIFETIME_S = 600.0
_USER_CODE_ALPHABET = string.ascii_uppercase + string.digits

DeviceState = Literal["pending", "approved", "declined"]


def pkce_s256(verifier: str) -> str:
    """Return the S256 code challenge of a PKCE verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def graph_scope(scope: str) -> str:
    """Return a scope without Graph's resource prefix (``https://graph.microsoft.com/X`` → X)."""
    prefix = "https://graph.microsoft.com/"
    return scope[len(prefix) :] if scope.lower().startswith(prefix) else scope


@dataclass(kw_only=True)
class Grant:
    """One user's consent to the client: what was granted, and whether it was revoked."""

    user: str
    client_id: str
    scopes: set[str]
    """Graph permissions (short names), plus offline_access when a refresh token is allowed."""
    revoked: bool = False


@dataclass(frozen=True, kw_only=True)
class AuthCode:
    """An authorization code, bound to client, redirect URI, PKCE challenge and nonce."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    user: str
    requested: tuple[str, ...]
    expires_at: float


@dataclass(kw_only=True)
class DeviceCode:
    """A pending device-code sign-in, approved or declined out of band."""

    device_code: str
    user_code: str
    client_id: str
    requested: tuple[str, ...]
    expires_at: float
    interval_s: int
    state: DeviceState = "pending"
    user: str | None = None
    last_poll: float | None = None


@dataclass(kw_only=True)
class ConsentBook:
    """Every delegated grant the mock tenant knows, and the scripted switches over them."""

    extra_scopes: tuple[str, ...] = ()
    """Scopes added to every new consent, as if an admin had granted more (over-privilege)."""
    withheld_scopes: tuple[str, ...] = ()
    """Scopes left out of every new consent though asked for (a consent granting less)."""
    grants: dict[tuple[str, str], Grant] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    redeemed: set[str] = field(default_factory=set)
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    public_refresh_tokens: set[str] = field(default_factory=set)
    """Refresh tokens issued to a public-client flow (device code): redeemed without a secret."""
    devices: dict[str, DeviceCode] = field(default_factory=dict)
    single_use: bool = False
    """Refresh tokens are spent by their first redemption (see MockSettings)."""
    spent: set[str] = field(default_factory=set)
    refreshes: int = 0
    """Refresh-token redemptions that issued new tokens."""
    reused: int = 0
    """Redemptions refused because the token was already spent (single_use)."""
    authorize_scopes: list[tuple[str, ...]] = field(default_factory=list)
    """The ``scope`` parameter of every authorize request, split, in arrival order."""

    def consent(self, *, user: str, client_id: str, requested: tuple[str, ...]) -> Grant:
        """Record (or widen) ``user``'s consent to the requested scopes and return it."""
        wanted = {graph_scope(s) for s in requested} - (OIDC_SCOPES - {"offline_access"})
        key = (client_id, user.lower())
        grant = self.grants.get(key)
        if grant is None or grant.revoked:
            grant = Grant(user=user.lower(), client_id=client_id, scopes=set())
            self.grants[key] = grant
        grant.scopes |= (wanted | set(self.extra_scopes)) - set(self.withheld_scopes)
        return grant

    def issue_code(
        self,
        *,
        grant: Grant,
        redirect_uri: str,
        code_challenge: str,
        nonce: str | None,
        requested: tuple[str, ...],
    ) -> str:
        """Return a fresh single-use authorization code for ``grant``."""
        code = "M." + secrets.token_urlsafe(32)
        self.codes[code] = AuthCode(
            client_id=grant.client_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            nonce=nonce,
            user=grant.user,
            requested=requested,
            expires_at=time.monotonic() + CODE_LIFETIME_S,
        )
        return code

    def issue_refresh_token(self, grant: Grant, *, public: bool = False) -> str:
        """Return a new opaque refresh token for ``grant`` (earlier ones stay valid, as in AAD)."""
        token = "0.M." + secrets.token_urlsafe(48)
        self.refresh_tokens[token] = (grant.client_id, grant.user)
        if public:
            self.public_refresh_tokens.add(token)
        return token

    def redeem(self, token: str) -> bool:
        """Spend ``token`` for one refresh; False when single-use and spent already."""
        if token in self.spent:
            self.reused += 1
            return False
        if self.single_use and token in self.refresh_tokens:
            self.spent.add(token)
            del self.refresh_tokens[token]
        return True

    def is_public(self, token: str) -> bool:
        """Return True when ``token`` came from a public-client flow."""
        return token in self.public_refresh_tokens

    def grant_for_refresh_token(self, token: str) -> Grant | None:
        """Return the grant a refresh token belongs to, or None if it was never issued."""
        key = self.refresh_tokens.get(token)
        return None if key is None else self.grants.get(key)

    def revoke(self, user: str) -> int:
        """Revoke every grant of ``user``; return how many were revoked."""
        count = 0
        for grant in self.grants.values():
            if grant.user == user.lower() and not grant.revoked:
                grant.revoked = True
                count += 1
        return count

    def add_scopes(self, user: str, scopes: tuple[str, ...]) -> int:
        """Widen every live grant of ``user`` by ``scopes``; return how many grants changed."""
        count = 0
        for grant in self.grants.values():
            if grant.user == user.lower() and not grant.revoked:
                grant.scopes |= set(scopes)
                count += 1
        return count

    def start_device(
        self, *, client_id: str, requested: tuple[str, ...], lifetime_s: int, interval_s: int
    ) -> DeviceCode:
        """Return a new pending device-code sign-in."""
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        device = DeviceCode(
            device_code="DAQ." + secrets.token_urlsafe(32),
            user_code=user_code,
            client_id=client_id,
            requested=requested,
            expires_at=time.monotonic() + lifetime_s,
            interval_s=interval_s,
        )
        self.devices[device.device_code] = device
        return device

    def pending_device(self, user_code: str) -> DeviceCode | None:
        """Return the unexpired, undecided device sign-in with this user code, or None."""
        wanted = user_code.strip().upper()
        now = time.monotonic()
        for device in self.devices.values():
            if device.user_code == wanted and device.state == "pending" and device.expires_at > now:
                return device
        return None

    def decide_device(self, user_code: str, *, user: str | None) -> bool:
        """Approve the device sign-in ``user_code`` as ``user``, or decline it (user None)."""
        for device in self.devices.values():
            if device.user_code == user_code.strip().upper() and device.state == "pending":
                device.state = "declined" if user is None else "approved"
                device.user = None if user is None else user.lower()
                return True
        return False

    def clear(self) -> None:
        """Forget every grant, code and device sign-in."""
        self.grants.clear()
        self.codes.clear()
        self.redeemed.clear()
        self.refresh_tokens.clear()
        self.public_refresh_tokens.clear()
        self.spent.clear()
        self.devices.clear()
        self.authorize_scopes.clear()
