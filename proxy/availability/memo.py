"""The response memo: rendered answers, reused while the cache days behind them are fresh.

Scheduling apps and booking pages repeat the very same request (same key, same body or
query string) many times a minute. Parsing, policy and rendering the same answer again
costs more than the cache lookup itself, so a successful answer is kept as the bytes it was
sent as, keyed by consumer, route and method, and the request exactly as sent.

An entry holds only what the cache holds, already rendered: the minimized items (status,
start, end), or the free slots computed from them, and the request's own addresses and
window. It is served only while every cache
day it was built from is within the cache's TTL of its fetch and no ``forget()`` happened
since: the memo never outlives the data it was rendered from.

An answer is kept the second time its request comes, not the first: a booking page's
sliding window ("from now") never repeats, and keeping each such answer would cost the
request a walk over its cache days and push out, within seconds, the answers that do repeat.

Stale answers, answers with any per-schedule error and error responses are never kept.
Every per-request duty stays with the availability service, which admits a hit again: what
its first admission settled for the consumer the entry is tied to stands (the consumer may ask
these addresses, over this long a window, at this cost); the rate and what the time allows
are judged anew.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

import msgspec

from proxy.access.consumers import Consumer
from proxy.core.clock import Clock
from proxy.core.model import Query, Window

# Bytes of keys and bodies kept at most; the oldest entries go first.
MAX_BYTES = 16 * 1024 * 1024
# Answers standing for more mailbox-days are not kept: checking that every day behind one is
# fresh would itself be a long loop, and scheduling apps repeat small questions.
MAX_DAYS = 2_000
# Requests seen once, remembered by hash (never the request itself) in two generations of at
# most this many each: an answer is kept only the second time its request comes.
SIGHTINGS = 65_536

MemoKey = tuple[str, str, bytes]
"""(consumer name, what was asked: the HTTP method of /v1/availability or SLOTS, the request
body or raw query string)."""

# The second part of a /v1/slots request's key: its bodies never meet /v1/availability's.
SLOTS = "POST /v1/slots"


class Freshness(Protocol):
    """What the memo asks of the cache it is tied to."""

    @property
    def generation(self) -> int:
        """Bumped by every forget(): anything derived from earlier entries is void."""
        ...

    @property
    def ttl_s(self) -> float:
        """How long a fetched day is fresh."""
        ...

    def fresh_until(self, addresses: Iterable[str], window: Window) -> float | None:
        """When the first of the days behind an answer turns stale, or None if one is not fresh."""
        ...

    def count_hits(self, days: int, *, now: float) -> None:
        """Count mailbox-days answered without a lookup."""
        ...


class Memoized(msgspec.Struct, frozen=True, gc=False):
    """One rendered answer and the conditions under which it may be sent again."""

    body: bytes
    query: Query
    # The very consumer (its allowlist and policy) the answer was admitted and shaped for.
    consumer: Consumer
    fresh_until: float
    generation: int
    # Mailbox-days the answer stands for, counted as cache hits when it is sent again.
    days: int
    size: int
    # What asking it is charged against the consumer's rate, in Graph calls.
    cost: int


class ResponseMemo:
    """Rendered answers per (consumer, method, request), bounded in bytes, tied to the cache."""

    def __init__(self, cache: Freshness, *, clock: Clock, max_bytes: int = MAX_BYTES) -> None:
        self._cache = cache
        self._clock = clock
        # In insertion order, bounded in bytes, oldest entries evicted first: an entry lives
        # at most a TTL anyway. An OrderedDict, not a dict: once full, every new answer evicts
        # the oldest, and a dict finds its first entry only past the slots of those removed
        # before it.
        self._entries: OrderedDict[MemoKey, Memoized] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0
        self._purged_at = clock()
        # Hashes of requests seen once: the current generation, and the one it replaced.
        self._seen: set[int] = set()
        self._seen_earlier: set[int] = set()

    def get(self, key: MemoKey, *, consumer: Consumer) -> Memoized | None:
        """The entry for ``key`` if it may be sent now; drops it when it may not."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (
            entry.generation != self._cache.generation
            or self._clock() > entry.fresh_until
            or entry.consumer is not consumer
        ):
            self._drop(key)
            return None
        return entry

    def served(self, entry: Memoized) -> None:
        """Count an entry sent again as the cache hits it stands for."""
        self._cache.count_hits(entry.days, now=self._clock())

    def put(
        self,
        key: MemoKey,
        *,
        body: bytes,
        query: Query,
        consumer: Consumer,
        fetch_window: Window,
        cost: int,
    ) -> None:
        """Keep an answer just rendered from the cache for ``fetch_window``, if it may be kept
        and its request came before."""
        if not self._repeated(key):
            return
        now = self._clock()
        if now - self._purged_at >= self._cache.ttl_s:
            # Nothing is held longer than the days it was built from.
            self._purge(now)
        days = len(query.unique) * _days(fetch_window)
        if days > MAX_DAYS:
            return
        fresh_until = self._cache.fresh_until(query.schedules, fetch_window)
        if fresh_until is None or fresh_until < now:
            return
        entry = Memoized(
            body=body,
            query=query,
            consumer=consumer,
            fresh_until=fresh_until,
            generation=self._cache.generation,
            days=days,
            size=len(body) + len(key[2]) + 256,
            cost=cost,
        )
        if entry.size > self._max_bytes:
            return
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self._max_bytes:
            self._bytes -= self._entries.popitem(last=False)[1].size

    def _repeated(self, key: MemoKey) -> bool:
        """True when ``key`` was seen before (by hash: a collision only keeps one more answer);
        else remembers it."""
        mark = hash(key)
        if mark in self._seen or mark in self._seen_earlier:
            return True
        self._seen.add(mark)
        if len(self._seen) >= SIGHTINGS:
            self._seen_earlier, self._seen = self._seen, set()
        return False

    def clear(self) -> None:
        """Drop every entry (a connection was removed: its data must go now, not later)."""
        self._entries.clear()
        self._bytes = 0

    def __len__(self) -> int:
        """Entries held."""
        return len(self._entries)

    def _purge(self, now: float) -> None:
        self._purged_at = now
        generation = self._cache.generation
        for key in [
            k for k, e in self._entries.items() if now > e.fresh_until or e.generation != generation
        ]:
            self._drop(key)

    def _drop(self, key: MemoKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size


def _days(window: Window) -> int:
    """UTC days the cache holds for a window (as CachedScheduleSource counts them)."""
    return (window.end - timedelta(microseconds=1)).toordinal() - window.start.toordinal() + 1
