"""Exceptions, and how each becomes an RFC 9457 problem.

Hierarchy::

    ProxyError
    ├── ProblemError               -> answered to the consumer as application/problem+json
    │   ├── BadRequest             (400)
    │   ├── Unauthorized           (401)
    │   ├── Forbidden              (403)
    │   ├── RateLimited            (429, proxy/ratelimit.py; with Retry-After)
    │   └── UpstreamFailure        (502 / 504: Graph failed as a whole)
    ├── TokenError                 (the identity platform refused or failed; code only)
    └── ConfigError                (the configuration is invalid; names the key)

Every message is written by us. Upstream text (Graph or identity platform error messages)
is never put into an exception, so it cannot reach a response or a log line.
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every exception the proxy raises on purpose."""


class ProblemError(ProxyError):
    """An error answered to the consumer as a problem document."""

    status = 500
    code = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def extra_headers(self) -> dict[str, str]:
        """Headers the problem response must carry besides the defaults (e.g. Retry-After)."""
        return {}


class BadRequest(ProblemError):
    """The request is malformed or asks for more than allowed."""

    status = 400
    code = "invalid_request"


class Unauthorized(ProblemError):
    """No valid consumer key was presented."""

    status = 401
    code = "unauthorized"


class Forbidden(ProblemError):
    """The consumer may not see what it asked for."""

    status = 403
    code = "forbidden"


class UpstreamFailure(ProblemError):
    """Graph (or the identity platform) failed for the whole request."""

    status = 502
    code = "upstream_error"


class TokenError(ProxyError):
    """No access token could be had; carries the OAuth error code only, never its description."""

    def __init__(self, error: str) -> None:
        super().__init__(f"token request failed: {error}")
        self.error = error


class ConfigError(ProxyError):
    """The configuration is invalid or incomplete; the message names the offending key."""
