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

Storage: each segment is a cachetools LRUCache of mailboxes, each holding its days (a dict of
day -> CachedDay) and sized by how many it holds, so ``max_entries`` bounds mailbox-days and
a request looks each mailbox up once, not each of its days. A day is a msgspec struct of a
tuple of BusyItem structs: none of it is tracked by the garbage collector. Each day also
says whether a piece of it starts or ends at a midnight, or appears twice, so assembling
days that need no joining is concatenation with the first and last day clipped. Days too
old to be served even stale are purged in slices of bounded work (a task of its own, once
per max-age).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from itertools import islice
from operator import attrgetter, is_, lt
from typing import TypeVar

import msgspec
from cachetools import Cache, LRUCache

from proxy.core.clock import Clock
from proxy.core.errors import UpstreamFailure
from proxy.core.model import BusyItem, ErrorCode, ScheduleResult, Status, Window
from proxy.core.pacing import Pacer, paced
from proxy.core.ports import ScheduleSource
from proxy.observability.metrics import Metrics
from proxy.sources.graph import MAX_SPAN_PER_CALL

DAY = timedelta(days=1)
# A fetch of more mailbox-days than this is a sweep; the days it fetched are on probation
# (half of max_entries) until asked for again.
SWEEP_DAYS = 1_000
PROBATION_SHARE = 2
_TICK = timedelta(microseconds=1)
MAX_DAYS_PER_CALL = MAX_SPAN_PER_CALL.days
_MIDNIGHT_UTC = time(tzinfo=UTC)
# Spans of whole days assembled (per mailbox, first day and length), with the days they were
# assembled from: a sliding window asks the same days again and again, with new edges. They
# hold at most a quarter of max_entries in days (the days they keep past their eviction).
SPAN_SHARE = 4
SPAN_MAX_DAYS = 31
# Label values of freebusy_cache_lookups.
_HIT, _MISS, _COALESCED, _STALE = ("hit",), ("miss",), ("coalesced",), ("stale",)
# CachedDay.edges: a piece starts at the day's first instant, one ends at its end (the next
# midnight), two pieces are equal (each continues its own item across a midnight).
OPENS, CLOSES, TWINS = 1, 2, 4
_END = attrgetter("end")
_FETCHED_AT = attrgetter("fetched_at")
_ERROR = attrgetter("error")

V = TypeVar("V")
CacheKey = tuple[str, int]
"""(case-folded mailbox, proleptic ordinal of the UTC day)."""

Days = dict[int, "CachedDay"]
"""One mailbox's days in a segment: ordinal of the UTC day -> its entry."""


class CachedDay(msgspec.Struct, frozen=True, gc=False):
    """One mailbox's minimized availability over one UTC day, and when it was fetched.

    ``items`` are clipped to the day and sorted; ``edges`` (OPENS, CLOSES, TWINS) says what
    assembling it with its neighbours must take care of.
    """

    items: tuple[BusyItem, ...] = ()
    error: ErrorCode | None = None
    fetched_at: float = 0.0
    edges: int = 0


class _Span(msgspec.Struct, frozen=True, gc=False):
    """Consecutive days of one mailbox, and their items assembled over the whole days."""

    days: tuple[CachedDay, ...]
    items: tuple[BusyItem, ...]


class _Fetched(msgspec.Struct, frozen=True):
    """One upstream fetch: per mailbox its days or a transient code, or a whole failure."""

    days: dict[str, Days]
    codes: dict[str, ErrorCode]
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
        # Mailboxes, least recently used first, sized in days; ages are checked on every
        # read against fetched_at, and days too old to be served even stale are purged at
        # least once per max-age.
        probation = max(1, max_entries // PROBATION_SHARE)
        self._entries: LRUCache[str, Days] = LRUCache(
            maxsize=max(1, max_entries - probation), getsizeof=len
        )
        self._probation: LRUCache[str, Days] = LRUCache(maxsize=probation, getsizeof=len)
        # Mailboxes Graph does not know -> when it said so; whether any may be held.
        self._unknown: LRUCache[str, float] = LRUCache(maxsize=max_unknown)
        self._unknown_held = False
        self._max_age_s = ttl_s + stale_max_age_s
        self._purge_every = max(self._max_age_s, 1.0)
        self._purged_at = clock()
        self._purging: asyncio.Task[None] | None = None
        self._in_flight: dict[CacheKey, asyncio.Task[_Fetched]] = {}
        self._tasks: set[asyncio.Task[_Fetched]] = set()
        self._generation = 0
        # Told the case-folded addresses of every forget(), e.g. to reach other replicas.
        self.forget_hooks: list[Callable[[frozenset[str]], None]] = []
        self._metrics.cache_entries.set_function(
            lambda: self._entries.currsize + self._probation.currsize + len(self._unknown)
        )
        self._lookups = self._metrics.cache_lookups
        self._spans: LRUCache[tuple[str, int, int], _Span] = LRUCache(
            maxsize=max(SPAN_MAX_DAYS, max_entries // SPAN_SHARE), getsizeof=_span_days
        )

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Results for every address (case-folded key), from memory where fresh."""
        first, last = _day(window.start), _day_of_end(window.end)
        count = last - first + 1
        mailboxes = list(dict.fromkeys(map(str.casefold, addresses)))
        now = self._clock()
        if now - self._purged_at >= self._purge_every:
            self._purge_if_due(now)
        # Per mailbox, its days in order: an entry where one is fresh, None where not (and
        # None for the whole mailbox when Graph does not know it).
        found: dict[str, list[CachedDay | None] | None] = {}
        waits: dict[CacheKey, asyncio.Task[_Fetched]] = {}
        missing: dict[str, list[int]] = {}
        hits = 0
        long = paced(count * len(mailboxes))
        pacer = Pacer()
        for mailbox in mailboxes:
            if long and pacer.due(count):
                # A long question: others get a turn (what is found so far stays valid).
                await asyncio.sleep(0)
                now = self._clock()
            if self._unknown_held:
                said = _peek(self._unknown, mailbox)
                if said is not None and now - said <= self._ttl_s:
                    found[mailbox] = None
                    hits += count
                    continue
            days = found[mailbox] = self._fresh_days(mailbox, first, last, now)
            if None not in days:
                hits += count
                continue
            for offset, entry in enumerate(days):
                if entry is not None:
                    hits += 1
                    continue
                key = (mailbox, first + offset)
                task = self._in_flight.get(key)
                if task is not None:
                    waits[key] = task
                else:
                    missing.setdefault(mailbox, []).append(first + offset)
        if hits:
            self._lookups.inc(_HIT, hits)
        if not waits and not missing:
            if long:
                return await self._answer_paced(found, first, window, {}, {})
            return self._answer(found, first, window, {}, {})
        if waits:
            self._lookups.inc(_COALESCED, len(waits))
        outcomes: dict[asyncio.Task[_Fetched], _Fetched] = {}
        if missing:
            self._lookups.inc(_MISS, sum(len(d) for d in missing.values()))
            waits |= self._start_fetches(missing)
        for task in set(waits.values()):
            # Shielded: this request giving up must not cancel a fetch others wait for.
            outcomes[task] = await asyncio.shield(task)
        return await self._answer_paced(found, first, window, waits, outcomes)

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
            held = _peek(self._entries, mailbox) or _NONE
            entries = [held.get(day) for day in days]
            if None in entries:
                # Not asked for since a sweep fetched it.
                trial = _peek(self._probation, mailbox) or _NONE
                entries = [e or trial.get(day) for e, day in zip(entries, days, strict=True)]
                if None in entries:
                    return None
            # Every code is a non-empty string: any() finds an error.
            if any(map(_ERROR, entries)):
                return None
            earliest = min(map(_FETCHED_AT, entries))
            if oldest is None or earliest < oldest:
                oldest = earliest
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
        self._spans.clear()
        for hook in self.forget_hooks:
            hook(folded)
        doomed = 0
        for segment in (self._entries, self._probation):
            for mailbox in folded:
                held = segment.pop(mailbox, None)
                if held is not None:
                    doomed += len(held)
        for mailbox in folded:
            self._unknown.pop(mailbox, None)
        return doomed

    def entries(self) -> list[tuple[CacheKey, CachedDay]]:
        """A snapshot of the days held (for tests, benchmarks and audits)."""
        return [
            ((mailbox, day), entry)
            for segment in (self._entries, self._probation)
            for mailbox, held in list(segment.items())
            for day, entry in held.items()
        ]

    def unknown(self) -> list[str]:
        """A snapshot of the mailboxes remembered as unknown to Graph."""
        return list(self._unknown.keys())

    def mailboxes(self) -> set[str]:
        """Every mailbox anything is held for: days, assembled spans, or "unknown" (audits)."""
        held = {mailbox for segment in (self._entries, self._probation) for mailbox in segment}
        return held | {mailbox for mailbox, _, _ in self._spans} | set(self._unknown)

    def _fresh_days(
        self, mailbox: str, first: int, last: int, now: float
    ) -> list[CachedDay | None]:
        """The mailbox's days first..last: each entry that is fresh, None for the others.

        Days found on probation move to the main segment: they were asked for again.
        """
        try:
            held = self._entries[mailbox]
        except KeyError:
            days: list[CachedDay | None] = [None] * (last - first + 1)
        else:
            days = [held.get(day) for day in range(first, last + 1)]
            if None not in days and min(map(_FETCHED_AT, days)) >= now - self._ttl_s:
                return days
        fresh_after = now - self._ttl_s
        trial = _peek(self._probation, mailbox)
        if trial is not None:
            promoted: Days = {}
            for offset, entry in enumerate(days):
                if entry is None:
                    entry = days[offset] = trial.get(first + offset)
                    if entry is not None:
                        promoted[first + offset] = entry
            if promoted:
                self._promote(mailbox, promoted)
        return [
            entry if entry is not None and entry.fetched_at >= fresh_after else None
            for entry in days
        ]

    def _promote(self, mailbox: str, promoted: Days) -> None:
        """Move days from probation to the main segment."""
        trial = self._probation.pop(mailbox)
        kept = {day: entry for day, entry in trial.items() if day not in promoted}
        if kept:
            self._probation[mailbox] = kept
        self._keep(self._entries, mailbox, promoted)

    def _keep(self, segment: LRUCache[str, Days], mailbox: str, days: Days) -> None:
        """Add days to a mailbox in a segment, dropping its days too old to be served."""
        held = segment.pop(mailbox, None)
        if held is not None:
            oldest = self._clock() - self._max_age_s
            days = {
                **{d: e for d, e in held.items() if e.fetched_at >= oldest and d not in days},
                **days,
            }
        if len(days) > segment.maxsize:
            # More days than the segment holds: the latest fetched (then the first days).
            ranked = sorted(days.items(), key=lambda kv: (-kv[1].fetched_at, kv[0]))
            days = dict(sorted(ranked[: int(segment.maxsize)]))
        segment[mailbox] = days

    def _start_fetches(
        self, missing: dict[str, list[int]]
    ) -> dict[CacheKey, asyncio.Task[_Fetched]]:
        """One upstream fetch per distinct missing day range, for all mailboxes missing it."""
        groups: dict[tuple[int, int], list[str]] = {}
        for mailbox, days in missing.items():
            groups.setdefault(self._fetch_range(days[0], days[-1]), []).append(mailbox)
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

    def _fetch_range(self, first: int, last: int) -> tuple[int, int]:
        """The days fetched for missing days ``first`` to ``last``: the whole blocks of
        min_fetch_days days, on a grid fixed by the calendar, that hold them.

        On a fixed grid, requests over different days inside a block, and every replica,
        fetch the same windows: later questions are hits, concurrent misses share a batch,
        and a day one replica fetched is never half of another's window. Unless rounding out
        would take more getSchedule calls than the days themselves need (long windows).
        """
        size = self._min_fetch_days
        start, end = first - first % size, last - last % size + size - 1
        if _calls(end - start + 1) > _calls(max(last - first + 1, size)):
            return first, max(last, first + size - 1)
        return start, end

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
            return _Fetched(days={}, codes={}, failure=exc)
        fetched_at = self._clock()
        days: dict[str, Days] = {}
        codes: dict[str, ErrorCode] = {}
        unknown: list[str] = []
        pacer, long = Pacer(), paced(len(mailboxes) * (last - first + 1))
        for mailbox in mailboxes:
            if long and pacer.due(last - first + 1):
                await asyncio.sleep(0)
            result = results.get(mailbox) or ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
            if result.error is None:
                # A shared tier's days may be older than this fetch: they expire as fetched.
                at = fetched_at - result.age_s
                days[mailbox] = _split_by_day(result.items, first, last, at)
            elif result.error is ErrorCode.NOT_FOUND:
                unknown.append(mailbox)
            else:
                codes[mailbox] = result.error
        # A forget() while this fetch was in flight means the data may no longer be held.
        if generation == self._generation and self._ttl_s > 0:
            for mailbox in unknown:
                self._unknown[mailbox] = fetched_at
                self._unknown_held = True
            sweep = len(days) * (last - first + 1) > SWEEP_DAYS
            for mailbox, fetched in days.items():
                if long and pacer.due(last - first + 1):
                    await asyncio.sleep(0)
                    if generation != self._generation:
                        break  # forgotten meanwhile: keep nothing more of this fetch
                self._store(mailbox, fetched, sweep=sweep)
        for mailbox in unknown:
            codes[mailbox] = ErrorCode.NOT_FOUND
        return _Fetched(days=days, codes=codes)

    def _store(self, mailbox: str, fetched: Days, *, sweep: bool) -> None:
        """Keep a fetched mailbox's days: on probation if a sweep fetched them and they are
        not held already."""
        if not sweep:
            self._keep(self._entries, mailbox, fetched)
            return
        held = _peek(self._entries, mailbox) or {}
        again = {day: entry for day, entry in fetched.items() if day in held}
        if again:
            self._keep(self._entries, mailbox, again)
        trial = {day: entry for day, entry in fetched.items() if day not in held}
        if trial:
            self._keep(self._probation, mailbox, trial)

    def _purge_if_due(self, now: float) -> None:
        if now - self._purged_at >= self._purge_every and self._purging is None:
            # Nothing is kept longer than it may be served, even when nothing new arrives.
            # In a task of its own, paced: a full cache is a long loop.
            self._purged_at = now
            # Nothing assembled outlives a purge of the days it was assembled from.
            self._spans.clear()
            self._purging = asyncio.get_running_loop().create_task(self._purge(now))
            self._purging.add_done_callback(self._purged)

    def _purged(self, task: asyncio.Task[None]) -> None:
        self._purging = None

    async def _purge(self, now: float) -> None:
        """Drop every entry too old to be served even stale."""
        oldest = now - self._max_age_s
        pacer = Pacer()
        for segment in (self._entries, self._probation):
            for mailbox in list(segment):
                held = _peek(segment, mailbox)
                if held is None:
                    continue
                if pacer.due(len(held)):
                    await asyncio.sleep(0)
                    held = _peek(segment, mailbox)
                    if held is None:
                        continue
                kept = {day: entry for day, entry in held.items() if entry.fetched_at >= oldest}
                if len(kept) == len(held):
                    continue
                del segment[mailbox]
                if kept:
                    segment[mailbox] = kept
        for mailbox in list(self._unknown):
            said = _peek(self._unknown, mailbox)
            if said is not None and now - said > self._ttl_s:
                del self._unknown[mailbox]
        self._unknown_held = len(self._unknown) > 0

    def _answer(
        self,
        found: dict[str, list[CachedDay | None] | None],
        first: int,
        window: Window,
        waits: dict[CacheKey, asyncio.Task[_Fetched]],
        outcomes: dict[asyncio.Task[_Fetched], _Fetched],
    ) -> dict[str, ScheduleResult]:
        """Each mailbox's answer; raise if Graph failed as a whole for all of them."""
        now = self._clock()
        results: dict[str, ScheduleResult] = {}
        failures: list[UpstreamFailure] = []
        for mailbox, days in found.items():
            results[mailbox] = self._result(
                mailbox, days, first, window, waits, outcomes, failures, now
            )
        if failures and len(failures) == len(found):
            # Nothing to answer with at all: the whole request fails as it would uncached.
            raise failures[0]
        return results

    async def _answer_paced(
        self,
        found: dict[str, list[CachedDay | None] | None],
        first: int,
        window: Window,
        waits: dict[CacheKey, asyncio.Task[_Fetched]],
        outcomes: dict[asyncio.Task[_Fetched], _Fetched],
    ) -> dict[str, ScheduleResult]:
        """_answer for a long question: the event loop gets a turn every slice."""
        now = self._clock()
        results: dict[str, ScheduleResult] = {}
        failures: list[UpstreamFailure] = []
        count = _day_of_end(window.end) - first + 1
        pacer = Pacer()
        for mailbox, days in found.items():
            if pacer.due(count):
                await asyncio.sleep(0)
            results[mailbox] = self._result(
                mailbox, days, first, window, waits, outcomes, failures, now
            )
        if failures and len(failures) == len(found):
            raise failures[0]
        return results

    def _result(
        self,
        mailbox: str,
        days: list[CachedDay | None] | None,
        first: int,
        window: Window,
        waits: dict[CacheKey, asyncio.Task[_Fetched]],
        outcomes: dict[asyncio.Task[_Fetched], _Fetched],
        failures: list[UpstreamFailure],
        now: float,
    ) -> ScheduleResult:
        """One mailbox's answer from its days, fetched ones filled in; the whole-call failure
        it ends with, if any, is added to ``failures``."""
        if days is None:
            return _NOT_FOUND
        stale = False
        if None in days:
            entries: list[CachedDay] = []
            for offset, entry in enumerate(days):
                if entry is None:
                    key = (mailbox, first + offset)
                    fetched = outcomes[waits[key]]
                    entry = fetched.days.get(mailbox, _NONE).get(key[1])
                    if entry is None:
                        code = fetched.codes.get(mailbox)
                        if code is ErrorCode.NOT_FOUND:
                            return _NOT_FOUND
                        # Transient: what was held before, if serve-stale allows it.
                        entry = self._stale(key, now)
                        if entry is None:
                            if fetched.failure is not None:
                                failures.append(fetched.failure)
                            return ScheduleResult.failed(code or _code(fetched.failure))
                        self._lookups.inc(_STALE)
                        stale = True
                entries.append(entry)
        else:
            entries = days  # type: ignore[assignment]  # no None among them
        return ScheduleResult(items=self._assembled(mailbox, entries, first, window), stale=stale)

    def _assembled(
        self, mailbox: str, days: list[CachedDay], first: int, window: Window
    ) -> tuple[BusyItem, ...]:
        """_assemble(), from the same days' whole span assembled before when there is one:
        the span's items clipped to the window are the window's items."""
        if not 1 < len(days) <= SPAN_MAX_DAYS:
            return _assemble(days, first, window)
        key = (mailbox, first, len(days))
        span = self._spans.get(key)
        if span is not None and all(map(is_, span.days, days)):
            return _clipped(span.items, window.start, window.end)
        whole = Window(_day_start(first), _day_start(first + len(days)))
        items = _assemble(days, first, whole)
        held = _peek(self._entries, mailbox)
        if held is not None and all(
            held.get(day) is entry for day, entry in enumerate(days, first)
        ):
            # Only days the cache itself holds: a fetch a forget() voided keeps nothing here.
            self._spans[key] = _Span(tuple(days), items)
        return _clipped(items, window.start, window.end)

    def _stale(self, key: CacheKey, now: float) -> CachedDay | None:
        """A data entry past its freshness but within stale_max_age, if serve-stale is on."""
        if self._stale_s <= 0:
            return None
        mailbox, day = key
        entry = None
        for segment in (self._entries, self._probation):
            held = _peek(segment, mailbox)
            if held is not None and (entry := held.get(day)) is not None:
                break
        if entry is None or entry.error is not None:
            return None
        return entry if now - entry.fetched_at <= self._max_age_s else None


_NOT_FOUND = ScheduleResult.failed(ErrorCode.NOT_FOUND)
_NONE: Days = {}


def _peek(segment: LRUCache[str, V], key: str) -> V | None:
    """The value held for ``key``, leaving the LRU order as it was."""
    # Cache.__getitem__: a look that does not count as a use.
    return Cache.__getitem__(segment, key) if key in segment else None


def _code(failure: UpstreamFailure | None) -> ErrorCode:
    """The per-schedule code for a whole-call failure (auth failures read as upstream_error)."""
    if failure is not None and failure.code.value in _SCHEDULE_CODES:
        return ErrorCode(failure.code.value)
    return ErrorCode.UPSTREAM_ERROR


_SCHEDULE_CODES = frozenset(code.value for code in ErrorCode)


def _day(instant: datetime) -> int:
    """Ordinal of the UTC day containing ``instant`` (which is UTC)."""
    return instant.toordinal()


def _calls(days: int) -> int:
    """getSchedule calls that many days take per chunk of addresses."""
    return -(-days // MAX_DAYS_PER_CALL)


def _day_of_end(end: datetime) -> int:
    """Ordinal of the last UTC day a half-open interval ending at ``end`` touches."""
    return (end - _TICK).toordinal()


def _day_start(day: int) -> datetime:
    """UTC midnight starting the day with this ordinal."""
    # combine() with an aware midnight: datetime.replace(tzinfo=...) costs three times as much.
    return datetime.combine(date.fromordinal(day), _MIDNIGHT_UTC)


def _split_by_day(items: Sequence[BusyItem], first: int, last: int, fetched_at: float) -> Days:
    """Each day of [first, last]: the items clipped to it, sorted, and what its edges hold."""
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
    # Equal pieces stay: each continues its own item across midnight (see _assemble_joined).
    empty = CachedDay(fetched_at=fetched_at)
    days: Days = {}
    for day in range(first, last + 1):
        pieces = per_day.get(day)
        if pieces is None:
            days[day] = empty
            continue
        pieces.sort()
        start, end = midnights[day - first], midnights[day - first + 1]
        edges = OPENS if pieces[0].start == start else 0
        if max(map(_END, pieces)) == end:
            edges |= CLOSES
        if len(set(pieces)) != len(pieces):
            edges |= TWINS
        days[day] = CachedDay(items=tuple(pieces), fetched_at=fetched_at, edges=edges)
    return days


def _span_days(span: _Span) -> int:
    """A span's size in the spans' LRU: its days."""
    return len(span.days)


def _assemble(days: list[CachedDay], first: int, window: Window) -> tuple[BusyItem, ...]:
    """The items of consecutive days (the first is ``first``) inside ``window``, sorted and
    distinct; pieces that meet at a midnight with the same status are joined."""
    careful = False
    previous = 0
    for day in days:
        edges = day.edges
        if edges & TWINS or (previous & CLOSES and edges & OPENS):
            careful = True
            break
        previous = edges
    if careful:
        return _assemble_joined(days, first, window)
    low, high = window.start, window.end
    if len(days) == 1:
        return _clipped(days[0].items, low, high)
    head, *middle, tail = days
    out = list(_clipped(head.items, low, high))
    for day in middle:
        out.extend(day.items)
    out.extend(_clipped(tail.items, low, high))
    return tuple(out)


def _clipped(items: tuple[BusyItem, ...], low: datetime, high: datetime) -> tuple[BusyItem, ...]:
    """One day's sorted, distinct items inside [low, high): as they are when none reaches
    out of it, else clipped, sorted and distinct again."""
    if not items or (low <= items[0].start and max(map(_END, items)) <= high):
        return items
    clipped = []
    for item in items:
        start, end = item.start, item.end
        if low <= start and end <= high:
            clipped.append(item)
            continue
        start, end = max(start, low), min(end, high)
        if start < end:
            clipped.append(BusyItem(start, end, item.status))
    return _sorted_distinct(clipped)


def _assemble_joined(days: list[CachedDay], first: int, window: Window) -> tuple[BusyItem, ...]:
    """_assemble for days whose pieces meet at a midnight, or repeat.

    A piece ending at a midnight is joined to a piece of the same status starting there, in
    the order of each day's pieces (equal pieces each continue their own item); only the
    days at a join are walked item by item.
    """
    low, high = window.start, window.end
    last = len(days) - 1
    out: list[BusyItem] = []
    # Per status, indexes into ``out`` of items ending at the current midnight.
    waiting: dict[Status, list[int]] = {}
    for offset, day in enumerate(days):
        items: Sequence[BusyItem] = day.items
        if offset == 0 or offset == last:
            # Clipped first: a piece at a midnight inside the window keeps its place in the
            # order, and one cut at the window's edge keeps its midnight end.
            items = _clipped_each(items, low, high)
        edges = day.edges
        if not (waiting and edges & OPENS) and not edges & CLOSES:
            out.extend(items)
            waiting = {}
            continue
        start, end = _day_start(first + offset), _day_start(first + offset + 1)
        still: dict[Status, list[int]] = {}
        # Per status: the start of the item joined last here, and how far joins reached.
        joined: dict[Status, datetime] = {}
        reach: dict[Status, datetime] = {}
        for item in items:
            status = item.status
            if item.start == start and status in waiting:
                queue = waiting[status]
                if queue:
                    # The latest-starting piece takes the earliest-ending continuation: a
                    # piece clipped at the window's start then meets its own continuation.
                    index = queue.pop()
                    joined[status] = out[index].start
                    item = out[index] = BusyItem(out[index].start, item.end, status)
                else:
                    # More pieces continue than ended here (one fetch's edge made two equal
                    # pieces one): this one continues the item joined last, not a fragment.
                    index = len(out)
                    item = BusyItem(joined[status], item.end, status)
                    out.append(item)
                reach[status] = max(reach.get(status, item.end), item.end)
            else:
                index = len(out)
                out.append(item)
            if item.end == end:
                still.setdefault(status, []).append(index)
        for status, queue in waiting.items():
            # Fewer pieces continue than ended here: the rest end where the joins reach (the
            # same time stays covered), rather than as fragments at the midnight.
            if queue and status in reach:
                for index in queue:
                    out[index] = BusyItem(out[index].start, reach[status], status)
                    if reach[status] == end:
                        still.setdefault(status, []).append(index)
        for queue in still.values():
            queue.sort(key=lambda index: out[index].start)  # pop() takes the latest start
        waiting = still
    return _sorted_distinct(out)


def _sorted_distinct(items: list[BusyItem]) -> tuple[BusyItem, ...]:
    """The items sorted, each once: items that differ only beyond the window are one item
    inside it. Usually they are in strictly ascending order already, which one pass of
    comparisons shows (cheaper than hashing and sorting them)."""
    if all(map(lt, items, islice(items, 1, None))):
        return tuple(items)
    return tuple(sorted(set(items)))


def _clipped_each(items: Sequence[BusyItem], low: datetime, high: datetime) -> list[BusyItem]:
    """Each item clipped to [low, high), in order; those outside it dropped, equal ones kept."""
    clipped = []
    for item in items:
        start, end = item.start, item.end
        if low <= start and end <= high:
            clipped.append(item)
            continue
        start, end = max(start, low), min(end, high)
        if start < end:
            clipped.append(BusyItem(start, end, item.status))
    return clipped
