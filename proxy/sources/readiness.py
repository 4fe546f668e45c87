"""Readiness: can we get a token, and does Graph's host answer over TLS?"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from proxy.core.clock import Clock
from proxy.core.errors import TokenError
from proxy.core.ports import TokenProvider

# Probes are cached so a tight readiness poll never turns into load on Graph.
_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Outcome of the last probe; ``checks`` maps a check name to "ok" or a failure code."""

    ready: bool
    checks: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)
    """Informational sections (such as delegated connections) that do not decide readiness."""


class Readiness:
    """Runs and caches the token and Graph-reachability probes."""

    def __init__(
        self,
        *,
        tokens: TokenProvider | None,
        session: aiohttp.ClientSession,
        base_url: str,
        clock: Clock,
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._clock = clock
        # tokens None: no application credentials in use (delegated connections only).
        self._tokens = tokens
        self._details = details
        self._session = session
        self._base_url = base_url.rstrip("/") + "/"
        self._last: tuple[float, ReadinessReport] | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> ReadinessReport:
        """Return a fresh-enough report; concurrent callers share one probe."""
        async with self._lock:
            details = self._details() if self._details is not None else {}
            if self._last is not None and self._clock() - self._last[0] < _CACHE_S:
                return ReadinessReport(
                    ready=self._last[1].ready, checks=self._last[1].checks, details=details
                )
            checks = {} if self._tokens is None else {"token": await self._check_token()}
            checks["graph"] = await self._check_graph()
            report = ReadinessReport(
                ready=all(v == "ok" for v in checks.values()), checks=checks, details=details
            )
            self._last = (self._clock(), report)
            return report

    async def _check_token(self) -> str:
        assert self._tokens is not None
        try:
            await self._tokens.token()
        except TokenError as exc:
            return exc.error
        return "ok"

    async def _check_graph(self) -> str:
        # Any HTTP answer proves DNS, TCP and TLS (with our trust anchors) work end to end.
        try:
            async with self._session.get(self._base_url) as resp:
                await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return "unreachable"
        return "ok"
