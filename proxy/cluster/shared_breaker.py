"""The circuit breaker's state, shared: one replica finding Graph failing opens every
replica's breaker, and one replica's successful probe closes them all.

Each replica still counts its own failures; what is shared is the decision. The open state
is also kept in Redis for its cool-down, so a replica that (re)joins learns it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from proxy.cluster.link import REDIS_ERRORS, ClusterLink


class LocalBreaker(Protocol):
    """What is shared of a replica's own breaker."""

    on_change: Callable[[float], None] | None

    def hold_open(self, seconds: float) -> None:
        """Stay open for ``seconds``: another replica's breaker opened."""
        ...

    def close_quietly(self) -> None:
        """Close: another replica's probe succeeded."""
        ...


class BreakerShare:
    """Tells the other replicas when this breaker opens or closes, and heeds what they say."""

    def __init__(self, link: ClusterLink, breaker: LocalBreaker) -> None:
        self._link = link
        self._breaker = breaker
        self._key = link.key("breaker")
        breaker.on_change = self._changed
        link.subscribe("breaker", self._heard)
        link.on_join.append(self._catch_up)

    def _changed(self, seconds: float) -> None:
        if self._link.sharing:
            self._link.publish("breaker", seconds=seconds)
            self._link.spawn(self._record(seconds))

    async def _record(self, seconds: float) -> None:
        link = self._link
        try:
            link.count("breaker")
            if seconds > 0:
                await link.redis.set(self._key, b"1", px=max(1, int(seconds * 1000)))
            else:
                await link.redis.delete(self._key)
        except REDIS_ERRORS as exc:
            link.failed(exc)

    def _heard(self, event: Any) -> None:
        if event.seconds > 0:
            self._breaker.hold_open(event.seconds)
        else:
            self._breaker.close_quietly()

    async def _catch_up(self) -> None:
        """On (re)joining: open for what is left of another replica's cool-down, if any."""
        self._link.count("breaker")
        left_ms = await self._link.redis.pttl(self._key)
        if left_ms > 0:
            self._breaker.hold_open(left_ms / 1000)
