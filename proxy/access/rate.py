"""Token buckets per consumer: a steady rate with a burst of one minute's allowance."""

from __future__ import annotations

from proxy.core.clock import Clock
from proxy.core.errors import RateLimited


class TokenBuckets:
    """One bucket per consumer name, on the monotonic clock; memory is bounded by the number
    of configured consumers."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, name: str, rate_per_minute: int) -> None:
        """Spend one token of ``name``'s bucket or raise RateLimited; a rate of 0 means no limit."""
        if rate_per_minute <= 0:
            return
        now = self._clock()
        capacity = float(rate_per_minute)
        per_second = rate_per_minute / 60.0
        tokens, stamp = self._buckets.get(name, (capacity, now))
        # Defensive: a clock that steps backwards must neither mint tokens nor go negative.
        tokens = min(capacity, tokens + max(0.0, now - stamp) * per_second)
        if tokens < 1.0:
            self._buckets[name] = (tokens, max(now, stamp))
            raise RateLimited(
                f"at most {rate_per_minute} requests per minute for this API key",
                retry_after=(1.0 - tokens) / per_second,
            )
        self._buckets[name] = (tokens - 1.0, max(now, stamp))
