"""Exceptions, and the stable codes every error is answered with.

Hierarchy::

    ProxyError
    ├── ProblemError               -> answered to the consumer (problem+json or a dialect's shape)
    │   ├── BadRequest             (400)
    │   ├── Unauthorized           (401)
    │   ├── Forbidden              (403)
    │   ├── RateLimited            (429, with Retry-After)
    │   └── UpstreamFailure        (502 / 504: Graph failed as a whole)
    ├── TokenError                 (the identity platform refused or failed; code only)
    ├── Refusal                    (a connect sign-in that did not become a connection)
    └── ConfigError                (the configuration is invalid; lists every problem)

Every message is written by us. Upstream text (Graph or identity platform error messages)
is never put into an exception, so it cannot reach a response or a log line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType


class Code(StrEnum):
    """Every stable error code of a whole request: the same on every route and dialect."""

    INVALID_REQUEST = "invalid_request"
    INVALID_JSON = "invalid_json"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_SCHEDULES = "invalid_schedules"
    TOO_MANY_SCHEDULES = "too_many_schedules"
    INVALID_TIME = "invalid_time"
    INVALID_TIME_ZONE = "invalid_time_zone"
    INVALID_WINDOW = "invalid_window"
    WINDOW_TOO_LONG = "window_too_long"
    WINDOW_TOO_EARLY = "window_too_early"
    WINDOW_TOO_LATE = "window_too_late"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    SCHEDULE_NOT_ALLOWED = "schedule_not_allowed"
    SLOTS_ONLY = "slots_only"
    CORS_NOT_ALLOWED = "cors_not_allowed"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TOO_LARGE = "request_too_large"
    URI_TOO_LONG = "uri_too_long"
    HEADERS_TOO_LARGE = "headers_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    REQUEST_TOO_COSTLY = "request_too_costly"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    HTTP_ERROR = "http_error"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_AUTH = "upstream_auth"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    THROTTLED = "throttled"
    NOT_CONNECTED = "not_connected"
    NEEDS_CONSENT = "needs_consent"
    INTERNAL_ERROR = "internal_error"


# aiohttp's own HTTP errors (parser limits, routing), by status.
_CODE_BY_STATUS: Mapping[int, Code] = MappingProxyType(
    {
        400: Code.INVALID_REQUEST,
        404: Code.NOT_FOUND,
        405: Code.METHOD_NOT_ALLOWED,
        408: Code.REQUEST_TIMEOUT,
        413: Code.REQUEST_TOO_LARGE,
        414: Code.URI_TOO_LONG,
        415: Code.UNSUPPORTED_MEDIA_TYPE,
        431: Code.HEADERS_TOO_LARGE,
    }
)


def code_for_status(status: int) -> Code:
    """Our stable code for an HTTP error raised without one of ours (404, 405, 413, …)."""
    return _CODE_BY_STATUS.get(status, Code.HTTP_ERROR)


class ProxyError(Exception):
    """Base of every exception the proxy raises on purpose."""


class ProblemError(ProxyError):
    """An error answered to the consumer, in the route's own error shape."""

    status = 500
    code = Code.INTERNAL_ERROR

    def __init__(
        self,
        detail: str,
        *,
        code: Code | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self._headers = dict(headers or {})

    def extra_headers(self) -> dict[str, str]:
        """Headers the answer must carry whatever its shape (Allow, Retry-After)."""
        return dict(self._headers)


class BadRequest(ProblemError):
    """The request is malformed or asks for more than allowed."""

    status = 400
    code = Code.INVALID_REQUEST


class Unauthorized(ProblemError):
    """No valid consumer key was presented."""

    status = 401
    code = Code.UNAUTHORIZED


class Forbidden(ProblemError):
    """The consumer may not see what it asked for."""

    status = 403
    code = Code.FORBIDDEN


class RateLimited(ProblemError):
    """Too many requests, ours or Graph's: retry after ``retry_after`` seconds."""

    status = 429
    code = Code.RATE_LIMITED

    def __init__(self, detail: str, *, retry_after: float, code: Code | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after

    def extra_headers(self) -> dict[str, str]:
        """Retry-After in whole seconds, rounded up so a client that obeys it succeeds."""
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class UpstreamFailure(ProblemError):
    """Graph (or the identity platform) failed for the whole request.

    ``retry_after``: seconds until asking again may succeed (throttling, an open breaker),
    sent as Retry-After. ``graph_failing``: whether this says Graph itself is failing (5xx,
    timeouts, dropped connections) rather than answering that it will not do this (a 4xx
    about the mailbox asked as): only the former is a circuit breaker's business.
    """

    status = 502
    code = Code.UPSTREAM_ERROR

    def __init__(
        self,
        detail: str,
        *,
        code: Code | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        graph_failing: bool = True,
    ) -> None:
        super().__init__(detail, code=code, status=status)
        self.retry_after = retry_after
        self.graph_failing = graph_failing

    def extra_headers(self) -> dict[str, str]:
        """Retry-After in whole seconds when known, rounded up."""
        headers = super().extra_headers()
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class TokenError(ProxyError):
    """No access token could be had; carries the OAuth error code only, never its description."""

    def __init__(self, error: str) -> None:
        super().__init__(f"token request failed: {error}")
        self.error = error


class Refusal(ProxyError):
    """A sign-in that did not become a connection; ``reason`` selects the page shown.

    Reasons: wrong_account, not_admin, wrong_tenant, over_privileged, missing_scopes,
    no_refresh_token, organization_unavailable.
    """

    def __init__(self, reason: str, excess: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excess = excess


class ConfigError(ProxyError):
    """The configuration is invalid or incomplete; ``problems`` names every offending key."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(self.problems))
