"""Readiness: can we get a token, and does Graph's host answer over TLS?"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp

from proxy.core.clock import Clock
from proxy.core.errors import TokenError
from proxy.core.ports import TokenProvider
from proxy.sources.credentials import OAUTH_ERRORS

# Probes are cached so a tight readiness poll never turns into load on Graph.
_CACHE_S = 5.0
# Why a token could not be had, as the admin may read it: an OAuth code or one of ours.
TOKEN_PROBLEMS = OAUTH_ERRORS | {
    "token_error",
    "network_error",
    "identity_platform_error",
    "authority_unavailable",
    "needs_consent",
    "over_privileged",
    "no_token",
}


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Outcome of the last probe.

    ``checks`` maps a check name to "ok" or a fixed failure word ("failed", "unreachable"):
    what anyone may read. ``problems`` says why a check failed, as a code from a fixed list
    (an OAuth error code, say): for the admin only.
    """

    ready: bool
    checks: dict[str, str]
    problems: dict[str, str] = field(default_factory=dict)


class Readiness:
    """Runs and caches the token and Graph-reachability probes."""

    def __init__(
        self,
        *,
        tokens: TokenProvider | None,
        session: aiohttp.ClientSession,
        base_url: str,
        clock: Clock,
    ) -> None:
        self._clock = clock
        # tokens None: no application credentials in use (delegated connections only).
        self._tokens = tokens
        self._session = session
        self._base_url = base_url.rstrip("/") + "/"
        self._last: tuple[float, ReadinessReport] | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> ReadinessReport:
        """Return a fresh-enough report; concurrent callers share one probe."""
        async with self._lock:
            if self._last is not None and self._clock() - self._last[0] < _CACHE_S:
                return self._last[1]
            checks: dict[str, str] = {}
            problems: dict[str, str] = {}
            if self._tokens is not None:
                problem = await self._check_token()
                checks["token"] = "ok" if problem is None else "failed"
                if problem is not None:
                    problems["token"] = problem
            checks["graph"] = await self._check_graph()
            report = ReadinessReport(
                ready=all(v == "ok" for v in checks.values()), checks=checks, problems=problems
            )
            self._last = (self._clock(), report)
            return report

    async def _check_token(self) -> str | None:
        """None when a token can be had; else why not, from TOKEN_PROBLEMS."""
        assert self._tokens is not None
        try:
            await self._tokens.token()
        except TokenError as exc:
            return exc.error if exc.error in TOKEN_PROBLEMS else "token_error"
        return None

    async def _check_graph(self) -> str:
        # Any HTTP answer proves DNS, TCP and TLS (with our trust anchors) work end to end.
        try:
            async with self._session.get(self._base_url) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return "unreachable"
        return "ok"
