"""The cache: minimized availability per mailbox per UTC day, shared by overlapping windows.

Entries hold only what the minimizer produced: items of status/start/end clipped to their
day, or the ``not_found`` code. A request is answered from the days its window touches;
days missing from memory are fetched as one contiguous range per mailbox, mailboxes with the
same missing range in one upstream fetch, and concurrent requests needing the same
mailbox-day share one fetch (singleflight).

Items that meet at a UTC midnight with the same status are joined when a window spans
both days, so an event cut into per-day pieces comes back whole. The answer depends only on
the calendar, never on which requests happened to fill the cache.

Errors: ``not_found`` is remembered per mailbox for a TTL (a client repeating a typo must not
cost a Graph call each time), apart from the days and bounded on its own, so unknown
addresses never push anyone's data out; transient failures (throttled, upstream_*) are never
cached, so the next request asks again (the breaker behind the cache keeps that from hammering
a failing Graph).

Days fetched by a sweep (more than SWEEP_DAYS mailbox-days at once: many mailboxes, many
months) are admitted to a probation segment (half of ``max_entries``) and move to the main
one when asked for again: a one-off sweep displaces only other one-off days, never the days
people keep asking about. Other fetches' days go to the main segment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial

from cachetools import Cache, LRUCache

from proxy.core.clock import Clock
from proxy.core.errors import UpstreamFailure
from proxy.core.model import BusyItem, ErrorCode, ScheduleResult, Status, Window
from proxy.core.pacing import Pacer
from proxy.core.ports import ScheduleSource
from proxy.observability.metrics import Metrics

DAY = timedelta(days=1)
# A fetch of more mailbox-days than this is a sweep; the days it fetched are on probation
# (half of max_entries) until asked for again.
SWEEP_DAYS = 1_000
PROBATION_SHARE = 2
_TICK = timedelta(microseconds=1)
_MIDNIGHT_UTC = time(tzinfo=UTC)
# Label values of freebusy_cache_lookups.
_HIT, _MISS, _COALESCED, _STALE = ("hit",), ("miss",), ("coalesced",), ("stale",)

CacheKey = tuple[str, int]
"""(case-folded mailbox, proleptic ordinal of the UTC day)."""


@dataclass(frozen=True, slots=True)
class CachedDay:
    """One mailbox's minimized availability over one UTC day, and when it was fetched."""

    items: tuple[BusyItem, ...] = ()
    error: ErrorCode | None = None
    fetched_at: float = 0.0


@dataclass(frozen=True, slots=True)
class _Fetched:
    """One upstream fetch: per mailbox-day an entry or a transient code, or a whole failure."""

    days: dict[CacheKey, CachedDay | ErrorCode]
    failure: UpstreamFailure | None = None


class CachedScheduleSource:
    """A ScheduleSource answering from memory, fetching whole UTC days from any upstream."""

    def __init__(
        self,
        source: ScheduleSource,
        *,
        ttl_s: float,
        max_entries: int,
        max_unknown: int = 10_000,
        stale_max_age_s: float = 0.0,
        min_fetch_days: int = 1,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._stale_s = stale_max_age_s
        self._min_fetch_days = min_fetch_days
        self._clock = clock
        self._metrics = metrics
        # Size-bounded LRU; ages are checked on every read against fetched_at (TTLCache's
        # bookkeeping cost more than the rest of a cached request), and entries too old to
        # be served even stale are purged at least once per max-age.
        probation = max(1, max_entries // PROBATION_SHARE)
        self._entries: LRUCache[CacheKey, CachedDay] = LRUCache(
            maxsize=max(1, max_entries - probation)
        )
        self._probation: LRUCache[CacheKey, CachedDay] = LRUCache(maxsize=probation)
        # Mailboxes Graph does not know -> when it said so.
        self._unknown: LRUCache[str, float] = LRUCache(maxsize=max_unknown)
        self._max_age_s = ttl_s + stale_max_age_s
        self._purged_at = clock()
        self._purging: asyncio.Task[None] | None = None
        self._in_flight: dict[CacheKey, asyncio.Task[_Fetched]] = {}
        self._tasks: set[asyncio.Task[_Fetched]] = set()
        self._generation = 0
        # Told the case-folded addresses of every forget(), e.g. to reach other replicas.
        self.forget_hooks: list[Callable[[frozenset[str]], None]] = []
        self._metrics.cache_entries.set_function(
            lambda: len(self._entries) + len(self._probation) + len(self._unknown)
        )
        self._lookups = self._metrics.cache_lookups

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Results for every address (case-folded key), from memory where fresh."""
        days = range(_day(window.start), _day_of_end(window.end) + 1)
        mailboxes = list(dict.fromkeys(address.casefold() for address in addresses))
        now = self._clock()
        self._purge_if_due(now)
        hits: dict[CacheKey, CachedDay] = {}
        waits: dict[CacheKey, asyncio.Task[_Fetched]] = {}
        missing: dict[str, list[int]] = {}
        ttl = self._ttl_s
        pacer = Pacer()
        for mailbox in mailboxes:
            if pacer.due(len(days)):
                # A long question: others get a turn (what is found so far stays valid).
                await asyncio.sleep(0)
                now = self._clock()
            said = self._unknown.get(mailbox)
            if said is not None and now - said <= ttl:
                for day in days:
                    hits[(mailbox, day)] = _UNKNOWN
                continue
            for day in days:
                key = (mailbox, day)
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._promoted(key)
                if entry is not None and now - entry.fetched_at <= ttl:
                    hits[key] = entry
                elif (task := self._in_flight.get(key)) is not None:
                    waits[key] = task
                else:
                    missing.setdefault(mailbox, []).append(day)
        if hits:
            self._lookups.inc(_HIT, len(hits))
        if waits:
            self._lookups.inc(_COALESCED, len(waits))
        if missing:
            self._lookups.inc(_MISS, sum(len(d) for d in missing.values()))
            waits |= self._start_fetches(missing)
        outcomes: dict[asyncio.Task[_Fetched], _Fetched] = {}
        for task in set(waits.values()):
            # Shielded: this request giving up must not cancel a fetch others wait for.
            outcomes[task] = await asyncio.shield(task)
        return await self._answer(mailboxes, days, window, hits, waits, outcomes)

    @property
    def generation(self) -> int:
        """Bumped by every forget(): anything derived from earlier entries is void."""
        return self._generation

    @property
    def ttl_s(self) -> float:
        """How long a fetched day is fresh."""
        return self._ttl_s

    def fresh_until(self, addresses: Iterable[str], window: Window) -> float | None:
        """When the first of the days these addresses' answers over ``window`` use turns
        stale (clock reading), or None when one is missing, stale or an error."""
        if self._ttl_s <= 0:
            return None
        days = range(_day(window.start), _day_of_end(window.end) + 1)
        oldest: float | None = None
        for mailbox in dict.fromkeys(address.casefold() for address in addresses):
            for day in days:
                entry = self._entries.get((mailbox, day)) or self._probation.get((mailbox, day))
                if entry is None or entry.error is not None:
                    return None
                if oldest is None or entry.fetched_at < oldest:
                    oldest = entry.fetched_at
        if oldest is None or self._clock() - oldest > self._ttl_s:
            return None
        return oldest + self._ttl_s

    def count_hits(self, days: int, *, now: float) -> None:
        """Count mailbox-days the response memo answered (``now``: its reading of our clock)."""
        self._lookups.inc(_HIT, days)
        self._purge_if_due(now)

    def forget(self, addresses: Iterable[str]) -> int:
        """Drop everything cached for these addresses; fetches in flight will not store."""
        folded = frozenset(address.casefold() for address in addresses)
        self._generation += 1
        for hook in self.forget_hooks:
            hook(folded)
        doomed = 0
        for segment in (self._entries, self._probation):
            for key in [key for key in list(segment.keys()) if key[0] in folded]:
                segment.pop(key, None)
                doomed += 1
        for mailbox in folded:
            self._unknown.pop(mailbox, None)
        return doomed

    def entries(self) -> list[tuple[CacheKey, CachedDay]]:
        """A snapshot of the days held (for tests, benchmarks and audits)."""
        return [*self._entries.items(), *self._probation.items()]

    def unknown(self) -> list[str]:
        """A snapshot of the mailboxes remembered as unknown to Graph."""
        return list(self._unknown.keys())

    def _promoted(self, key: CacheKey) -> CachedDay | None:
        """A day from probation, moved to the main segment: it was asked for again."""
        entry = self._probation.pop(key, None)
        if entry is not None:
            self._entries[key] = entry
        return entry

    def _store(self, key: CacheKey, entry: CachedDay, *, sweep: bool) -> None:
        """Keep a fetched day: on probation if a sweep fetched it and it is not held already."""
        if sweep and key not in self._entries:
            self._probation[key] = entry
        else:
            self._entries[key] = entry

    def _start_fetches(
        self, missing: dict[str, list[int]]
    ) -> dict[CacheKey, asyncio.Task[_Fetched]]:
        """One upstream fetch per distinct missing day range, for all mailboxes missing it."""
        groups: dict[tuple[int, int], list[str]] = {}
        for mailbox, days in missing.items():
            # Reaching ahead makes later, overlapping questions hits and aligns the ranges
            # of different requests, so their mailboxes can share a batch.
            last = max(days[-1], days[0] + self._min_fetch_days - 1)
            groups.setdefault((days[0], last), []).append(mailbox)
        started: dict[CacheKey, asyncio.Task[_Fetched]] = {}
        for (first, last), mailboxes in groups.items():
            task = asyncio.get_running_loop().create_task(self._fetch(mailboxes, first, last))
            keys = [(mailbox, day) for mailbox in mailboxes for day in range(first, last + 1)]
            for key in keys:
                # Days in the range already being fetched by someone else stay theirs.
                self._in_flight.setdefault(key, task)
            for mailbox in mailboxes:
                for day in missing[mailbox]:
                    started[(mailbox, day)] = task
            self._tasks.add(task)
            task.add_done_callback(partial(self._landed, keys))
        return started

    def _landed(self, keys: list[CacheKey], task: asyncio.Task[_Fetched]) -> None:
        self._tasks.discard(task)
        for key in keys:
            if self._in_flight.get(key) is task:
                del self._in_flight[key]

    async def _fetch(self, mailboxes: list[str], first: int, last: int) -> _Fetched:
        """Fetch whole days [first, last] for the mailboxes; store what may be cached."""
        generation = self._generation
        window = Window(start=_day_start(first), end=_day_start(last + 1))
        try:
            results = await self._source.get_schedules(mailboxes, window)
        except UpstreamFailure as exc:
            return _Fetched(days={}, failure=exc)
        fetched_at = self._clock()
        days: dict[CacheKey, CachedDay | ErrorCode] = {}
        unknown: list[str] = []
        pacer = Pacer()
        for mailbox in mailboxes:
            if pacer.due(last - first + 1):
                await asyncio.sleep(0)
            result = results.get(mailbox) or ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
            if result.error is None:
                per_day = _split_by_day(result.items, first, last)
                # A shared tier's days may be older than this fetch: they expire as fetched.
                at = fetched_at - result.age_s
                for day in range(first, last + 1):
                    days[(mailbox, day)] = CachedDay(items=per_day.get(day, ()), fetched_at=at)
            elif result.error is ErrorCode.NOT_FOUND:
                unknown.append(mailbox)
                for day in range(first, last + 1):
                    days[(mailbox, day)] = _UNKNOWN
            else:
                for day in range(first, last + 1):
                    days[(mailbox, day)] = result.error
        # A forget() while this fetch was in flight means the data may no longer be held.
        if generation == self._generation and self._ttl_s > 0:
            for mailbox in unknown:
                self._unknown[mailbox] = fetched_at
            sweep = len(days) > SWEEP_DAYS
            for key, value in days.items():
                if isinstance(value, CachedDay) and value is not _UNKNOWN:
                    self._store(key, value, sweep=sweep)
        return _Fetched(days=days)

    def _purge_if_due(self, now: float) -> None:
        if now - self._purged_at >= max(self._max_age_s, 1.0) and self._purging is None:
            # Nothing is kept longer than it may be served, even when nothing new arrives.
            # In a task of its own, paced: a full cache is a long loop.
            self._purged_at = now
            self._purging = asyncio.get_running_loop().create_task(self._purge(now))
            self._purging.add_done_callback(self._purged)

    def _purged(self, task: asyncio.Task[None]) -> None:
        self._purging = None

    async def _purge(self, now: float) -> None:
        """Drop every entry too old to be served even stale."""
        pacer = Pacer()
        for segment in (self._entries, self._probation):
            for key in list(segment):
                if pacer.due(1):
                    await asyncio.sleep(0)
                # Cache.__getitem__: a look that leaves the LRU order as it was.
                entry = Cache.__getitem__(segment, key) if key in segment else None
                if entry is not None and now - entry.fetched_at > self._max_age_s:
                    del segment[key]
        for mailbox in list(self._unknown):
            said = Cache.__getitem__(self._unknown, mailbox) if mailbox in self._unknown else None
            if said is not None and now - said > self._ttl_s:
                del self._unknown[mailbox]

    async def _answer(
        self,
        mailboxes: list[str],
        days: range,
        window: Window,
        hits: dict[CacheKey, CachedDay],
        waits: dict[CacheKey, asyncio.Task[_Fetched]],
        outcomes: dict[asyncio.Task[_Fetched], _Fetched],
    ) -> dict[str, ScheduleResult]:
        """Assemble each mailbox's answer; raise if Graph failed as a whole for all of them."""
        now = self._clock()
        results: dict[str, ScheduleResult] = {}
        failures: list[UpstreamFailure] = []
        pacer = Pacer()
        for mailbox in mailboxes:
            if pacer.due(len(days)):
                await asyncio.sleep(0)
            pieces: list[tuple[BusyItem, ...]] = []
            stale = False
            error: ErrorCode | None = None
            failure: UpstreamFailure | None = None
            for day in days:
                key = (mailbox, day)
                entry = hits.get(key)
                if entry is None:
                    fetched = outcomes[waits[key]]
                    got = fetched.days.get(key)
                    if isinstance(got, CachedDay):
                        entry = got
                    else:
                        entry = self._stale(key, now)
                        if entry is None:
                            failure = fetched.failure
                            error = got if isinstance(got, ErrorCode) else _code(failure)
                            break
                        self._lookups.inc(_STALE)
                if entry.error is not None:
                    error = entry.error
                    break
                stale = stale or now - entry.fetched_at > self._ttl_s
                pieces.append(entry.items)
            if error is not None:
                results[mailbox] = ScheduleResult.failed(error)
                if failure is not None:
                    failures.append(failure)
                continue
            results[mailbox] = ScheduleResult(
                items=_assemble(pieces, days.start, window), stale=stale
            )
        if failures and len(failures) == len(mailboxes):
            # Nothing to answer with at all: the whole request fails as it would uncached.
            raise failures[0]
        return results

    def _stale(self, key: CacheKey, now: float) -> CachedDay | None:
        """A data entry past its freshness but within stale_max_age, if serve-stale is on."""
        if self._stale_s <= 0:
            return None
        entry = self._entries.get(key) or self._probation.get(key)
        if entry is None or entry.error is not None:
            return None
        return entry if now - entry.fetched_at <= self._max_age_s else None


# What an unknown mailbox answers for every day (never stored per day).
_UNKNOWN = CachedDay(error=ErrorCode.NOT_FOUND)


def _code(failure: UpstreamFailure | None) -> ErrorCode:
    """The per-schedule code for a whole-call failure (auth failures read as upstream_error)."""
    if failure is not None and failure.code.value in _SCHEDULE_CODES:
        return ErrorCode(failure.code.value)
    return ErrorCode.UPSTREAM_ERROR


_SCHEDULE_CODES = frozenset(code.value for code in ErrorCode)


def _day(instant: datetime) -> int:
    """Ordinal of the UTC day containing ``instant`` (which is UTC)."""
    return instant.toordinal()


def _day_of_end(end: datetime) -> int:
    """Ordinal of the last UTC day a half-open interval ending at ``end`` touches."""
    return (end - _TICK).toordinal()


def _day_start(day: int) -> datetime:
    """UTC midnight starting the day with this ordinal."""
    # combine() with an aware midnight: datetime.replace(tzinfo=...) costs three times as much.
    return datetime.combine(date.fromordinal(day), _MIDNIGHT_UTC)


def _split_by_day(
    items: Sequence[BusyItem], first: int, last: int
) -> dict[int, tuple[BusyItem, ...]]:
    """Each item clipped to every UTC day in [first, last] it overlaps, per day, sorted."""
    # Midnights of the fetched days (and the one after), computed once, not per item.
    midnights = [_day_start(day) for day in range(first, last + 2)]
    per_day: dict[int, list[BusyItem]] = {}
    for item in items:
        for day in range(max(_day(item.start), first), min(_day_of_end(item.end), last) + 1):
            start, end = midnights[day - first], midnights[day - first + 1]
            if start <= item.start and item.end <= end:
                piece = item
            else:
                piece = BusyItem(max(item.start, start), min(item.end, end), item.status)
            per_day.setdefault(day, []).append(piece)
    # Equal pieces stay: each continues its own item across midnight (see _join_at_midnight).
    return {day: tuple(sorted(pieces)) for day, pieces in per_day.items()}


def _assemble(
    pieces: list[tuple[BusyItem, ...]], first: int, window: Window
) -> tuple[BusyItem, ...]:
    """Join per-day pieces that meet at midnight with the same status; clip to the window."""
    if len(pieces) == 1:
        day_items = pieces[0]
        if not day_items or (
            window.start <= day_items[0].start and max(i.end for i in day_items) <= window.end
        ):
            # The common cached case: one day, nothing to clip, already in order (pieces
            # of items that differ only beyond the day are one item here).
            return (
                day_items
                if len(set(day_items)) == len(day_items)
                else tuple(sorted(set(day_items)))
            )
        merged: list[BusyItem] = list(day_items)
    else:
        merged = _join_at_midnight(pieces, first)
    clipped = []
    for item in merged:
        if window.start <= item.start and item.end <= window.end:
            clipped.append(item)
        else:
            start, end = max(item.start, window.start), min(item.end, window.end)
            if start < end:
                clipped.append(BusyItem(start=start, end=end, status=item.status))
    # Items that differ only beyond the window are one item inside it.
    return tuple(sorted(set(clipped)))


def _join_at_midnight(pieces: list[tuple[BusyItem, ...]], first: int) -> list[BusyItem]:
    """Consecutive days' pieces as items, a piece ending at midnight joined to its sequel."""
    merged: list[BusyItem] = []
    # Per status, indexes into ``merged`` of items ending at the current midnight.
    open_at_midnight: dict[Status, list[int]] = {}
    for offset, day_items in enumerate(pieces):
        start, end = _day_start(first + offset), _day_start(first + offset + 1)
        still_open: dict[Status, list[int]] = {}
        for item in day_items:
            waiting = open_at_midnight.get(item.status)
            if item.start == start and waiting:
                index = waiting.pop(0)
                merged[index] = BusyItem(
                    start=merged[index].start, end=item.end, status=item.status
                )
            else:
                index = len(merged)
                merged.append(item)
            if item.end == end:
                still_open.setdefault(item.status, []).append(index)
        open_at_midnight = still_open
    return merged
