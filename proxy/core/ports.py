"""The ports: what the availability service and the source chain need from their collaborators.

Adapters live elsewhere (``proxy.sources``, ``proxy.connect``); tests swap in fakes through
these same protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from proxy.core.connections import Connection
from proxy.core.model import ScheduleResult, Window


class ScheduleSource(Protocol):
    """Where minimized schedules come from (Graph, a cache in front of it, a router…)."""

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Return a result for every address (case-folded key), or raise UpstreamFailure."""
        ...


class TokenProvider(Protocol):
    """Gives a bearer token for Graph calls."""

    async def token(self) -> str:
        """Return a currently valid access token or raise TokenError."""
        ...


class CallGate(Protocol):
    """What a Graph call holds while in flight; entering yields False: do not call."""

    def hold(self, mailbox: str) -> AbstractAsyncContextManager[bool]:
        """Wait for permission to call Graph for ``mailbox`` (case-folded)."""
        ...

    def hold_off(self, mailbox: str, seconds: float) -> None:
        """Graph asked to wait ``seconds`` before calling for ``mailbox`` again (Retry-After)."""
        ...


class RateLimiter(Protocol):
    """Consumers' request rates, counted in one process or across replicas."""

    async def charge(self, key: str, rate_per_minute: int, *, cost: float = 1.0) -> None:
        """Spend ``cost`` of ``key``'s rate (0: no limit) or raise RateLimited."""
        ...


class ConnectionDirectory(Protocol):
    """The delegated connections a router sends addresses to."""

    def route(self, address: str) -> Connection | None:
        """The connection covering ``address`` (case-folded), usable ones first."""
        ...

    def get(self, connection_id: str) -> Connection | None:
        """The connection with this id as it stands now."""
        ...

    def tokens(self, connection: Connection) -> TokenProvider:
        """The token provider that acts as this connection."""
        ...
