"""Application (client-credentials) tokens for Graph from msal, and how msal's failures read."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal

from proxy.core.clock import Clock
from proxy.core.errors import TokenError
from proxy.sources.tls import requests_session

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
# Renew this long before expiry so a token never dies in flight.
_RENEW_MARGIN_S = 300.0
MICROSOFT_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.partner.microsoftonline.cn",
)

# What msal raises when the identity platform is unreachable or answers nonsense, in discovery
# or at the token endpoint: requests' errors are OSErrors, a 5xx is MsalServiceError, a body
# that is not JSON a ValueError (json.JSONDecodeError), a failed discovery a ValueError.
PLATFORM_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, msal.exceptions.MsalError)
# The OAuth error codes (RFC 6749, RFC 8628, OpenID Connect, Entra ID's additions) we pass on to
# logs and the admin's readiness view. The identity platform's "error" is free text as far as we
# can tell (any length, any characters); anything else reads as "token_error".
OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "consent_required",
        "account_selection_required",
        "authorization_pending",
        "slow_down",
        "expired_token",
        "authorization_declined",
        "bad_verification_code",
        "invalid_resource",
        "invalid_tenant",
    }
)

log = logging.getLogger(__name__)
# msal logs authorization codes, PKCE verifiers and client_info at DEBUG/INFO, and an
# identity-platform answer it cannot parse (which may hold part of a token) at ERROR. We log
# outcomes ourselves, as codes; whatever the application's log level, none of msal's text
# may reach a log line.
logging.getLogger("msal").setLevel(logging.CRITICAL + 1)


def oauth_error(result: Any) -> str:
    """The OAuth error code of an answer (msal's result dict) if it is one we know, else
    "token_error": never the platform's own text."""
    error = result.get("error") if isinstance(result, dict) else None
    return error if isinstance(error, str) and error in OAUTH_ERRORS else "token_error"


def platform_token_error(exc: Exception) -> TokenError:
    """Our TokenError for one of PLATFORM_ERRORS; none of msal's text is kept."""
    if isinstance(exc, OSError):
        return TokenError("network_error")
    if isinstance(exc, msal.exceptions.MsalError):
        return TokenError("identity_platform_error")
    return TokenError("authority_unavailable")


# After a failed token request the next one waits this long, doubling per failure up to the cap:
# prompt enough that one bad answer is not an outage, spaced enough not to hammer a platform
# that keeps refusing.
_RETRY_BASE_S = 1.0
_RETRY_CAP_S = 16.0


@dataclass(frozen=True, slots=True)
class _Held:
    value: str
    renew_at: float


@dataclass(frozen=True, slots=True)
class _Failed:
    error: str
    failures: int
    retry_at: float


class MsalAppTokens:
    """Client-credentials tokens from one long-lived msal ConfidentialClientApplication.

    msal is synchronous and does network I/O in its constructor, so every call runs in a
    worker thread. A token is held in memory and reused until shortly before it expires;
    refreshes are single-flight.

    A failed request is tried again on the first call after a backoff (1 s, doubling to 16 s);
    until then calls fail at once with the same code. msal remembers a 400 answer for 60 s
    (and a 5xx for 5 s) and would answer from that memory without asking: a failure drops the
    application object, so the retry is a real request.
    """

    def __init__(
        self,
        *,
        authority: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        ca_file: Path | None,
        timeout_seconds: float,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._authority = f"{authority.rstrip('/')}/{tenant_id}"
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = timeout_seconds
        self._app: Any = None
        self._http = requests_session(ca_file)
        self._held: _Held | None = None
        self._failed: _Failed | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Close msal's pooled connections to the identity platform."""
        async with self._lock:
            await asyncio.to_thread(self._http.close)

    async def token(self) -> str:
        """Return a cached token, or acquire one through msal off the event loop."""
        held = self._held
        if held is not None and self._clock() < held.renew_at:
            return held.value
        async with self._lock:
            held = self._held
            if held is not None and self._clock() < held.renew_at:
                return held.value
            failed = self._failed
            if failed is not None and self._clock() < failed.retry_at:
                raise TokenError(failed.error)
            try:
                self._held = await asyncio.to_thread(self._acquire)
            except TokenError as exc:
                failures = 1 if failed is None else failed.failures + 1
                delay = min(_RETRY_CAP_S, _RETRY_BASE_S * 2 ** (failures - 1))
                self._failed = _Failed(exc.error, failures, self._clock() + delay)
                # A new application object next time: msal's memory of this failure goes.
                self._app = None
                raise
            self._failed = None
            return self._held.value

    def _acquire(self) -> _Held:
        """Run in a worker thread: build the msal app once, then ask it for a token."""
        started = self._clock()
        try:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._client_secret,
                    authority=self._authority,
                    http_client=self._http,
                    timeout=self._timeout,
                    instance_discovery=urlsplit(self._authority).hostname in MICROSOFT_HOSTS,
                )
            result = self._app.acquire_token_for_client(scopes=[GRAPH_DEFAULT_SCOPE])
        except PLATFORM_ERRORS as exc:
            raise platform_token_error(exc) from None
        if not isinstance(result, dict) or "access_token" not in result:
            code = oauth_error(result)
            log.warning("token request refused by the identity platform: %s", code)
            raise TokenError(code)
        lifetime = float(result.get("expires_in", 0) or 0)
        renew_at = started + max(lifetime - _RENEW_MARGIN_S, lifetime / 2)
        return _Held(value=str(result["access_token"]), renew_at=renew_at)
