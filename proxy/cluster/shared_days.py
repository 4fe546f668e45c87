"""The cache's second tier: minimized days in Redis, shared by every replica, fetched once.

A link of the chain between the in-process cache and batching. The cache asks it for whole
UTC days; each (mailbox pseudonym, day) is one key holding only the day's items as status,
start and end (msgpack: offsets from midnight in microseconds and a status number), for the
cache's TTL. Graph's ``not_found`` is one key per mailbox, for the same TTL. Transient
failures are never stored.

One script reads every day asked for and, for each day missing, takes its fetch lock
(``SET NX``). A mailbox with a day locked by this replica is fetched from below over the
whole window asked for (the window the cache aligned, so batching folds it with others); its
locked days are stored, unlocked and announced on the channel. A mailbox whose missing days
another replica is fetching is awaited (the announcement, or the lock's lifetime at most)
and read again. So concurrent identical misses on any number of replicas make one Graph call.

A day read from Redis carries its age (``ScheduleResult.age_s``), so the in-process cache
expires it when it would have expired had this replica fetched it. ``forget()`` on one
replica deletes the mailboxes' days here and makes every other replica forget them too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import msgspec

from proxy.cluster.link import REDIS_ERRORS, ClusterLink
from proxy.cluster.packing import pack_items, unpack_items
from proxy.core.errors import UpstreamFailure
from proxy.core.model import BusyItem, ErrorCode, ScheduleResult, Window
from proxy.core.pacing import Pacer
from proxy.core.ports import ScheduleSource

log = logging.getLogger(__name__)

# Format version of the day values, in their keys: a change of encoding starts afresh.
DAY_KIND = "d1"
_TICK = timedelta(microseconds=1)
_MIDNIGHT = time(tzinfo=UTC)
_DAY = timedelta(days=1)
# Most keys one read script touches (a big request is read in several).
_KEYS_PER_READ = 3_000
_SCHEDULE_CODES = frozenset(code.value for code in ErrorCode)

# KEYS: per mailbox, its not_found key, then its n day keys, then their n lock keys.
# ARGV: lock ms, this replica, then each mailbox's n. Per mailbox: the not_found key's ms to
# live (or -1, -2), then per day either the value and its ms to live, or 1 (now locked for
# us) / 0 (locked by another) and -1.
_READ = """
local out = {}
local i = 1
for m = 3, #ARGV do
  local n = tonumber(ARGV[m])
  local unknown = redis.call('PTTL', KEYS[i])
  out[#out + 1] = unknown
  for d = 1, n do
    if unknown > 0 then
      out[#out + 1] = 0
      out[#out + 1] = -1
    else
      local day = KEYS[i + d]
      local value = redis.call('GET', day)
      if value then
        out[#out + 1] = value
        out[#out + 1] = redis.call('PTTL', day)
      elseif redis.call('SET', KEYS[i + n + d], ARGV[2], 'NX', 'PX', ARGV[1]) then
        out[#out + 1] = 1
        out[#out + 1] = -1
      else
        out[#out + 1] = 0
        out[#out + 1] = -1
      end
    end
  end
  i = i + 1 + 2 * n
end
return out
"""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[int]).decode


class LocalDays(Protocol):
    """What the tier needs of the in-process cache in front of it, for peers' forgets."""

    def forget(self, addresses: Iterable[str]) -> int:
        """Drop everything held for these addresses."""
        ...

    def entries(self) -> Sequence[tuple[tuple[str, int], Any]]:
        """The (mailbox, day) keys held, with their entries."""
        ...

    def unknown(self) -> list[str]:
        """The mailboxes remembered as unknown."""
        ...


def encode_day(items: Iterable[BusyItem], midnight: datetime) -> bytes:
    """A day's pieces as stored: msgpack of pack_items() from midnight."""
    return _encode(pack_items(items, midnight))


def decode_day(value: bytes, midnight: datetime) -> tuple[BusyItem, ...]:
    """The pieces encode_day() stored; ValueError when the value is not one."""
    try:
        return unpack_items(_decode(value), midnight, _DAY)
    except msgspec.DecodeError as exc:
        raise ValueError("not a stored day") from exc


def day_start(day: int) -> datetime:
    """UTC midnight starting the day with this ordinal."""
    return datetime.combine(date.fromordinal(day), _MIDNIGHT)


def split_by_day(items: Iterable[BusyItem], first: int, last: int) -> dict[int, list[BusyItem]]:
    """Each item clipped to every UTC day in [first, last] it overlaps."""
    per_day: dict[int, list[BusyItem]] = {}
    for item in items:
        last_day = min((item.end - _TICK).toordinal(), last)
        for day in range(max(item.start.toordinal(), first), last_day + 1):
            start, end = day_start(day), day_start(day + 1)
            per_day.setdefault(day, []).append(
                BusyItem(max(item.start, start), min(item.end, end), item.status)
            )
    return per_day


class _Asked:
    """One request's bookkeeping: what was found, what failed, which days are still open."""

    def __init__(self, mailboxes: list[str], days: range) -> None:
        self.days = days
        self.pieces: dict[tuple[str, int], tuple[BusyItem, ...]] = {}
        self.age: dict[str, float] = dict.fromkeys(mailboxes, 0.0)
        self.errors: dict[str, ErrorCode] = {}
        self.failures: dict[str, UpstreamFailure] = {}


class SharedDays:
    """A ScheduleSource keeping whole days in Redis for every replica, fetching each once."""

    def __init__(self, source: ScheduleSource, link: ClusterLink, *, ttl_s: float) -> None:
        self._source = source
        self._link = link
        self._ttl_ms = int(ttl_s * 1000)
        # A fetch lock outlives the longest fetch (every call is cut off at lease_seconds).
        self._lock_ms = int((link.settings.lease_seconds * 2 + 1) * 1000)
        self._read = link.redis.register_script(_READ)
        self._generation = 0
        self._local: LocalDays | None = None
        self._applying = False
        self._lookups = link.tier_lookups
        link.subscribe("forget", self._peer_forgot)

    def attach(self, local: LocalDays) -> None:
        """The in-process cache in front: peers' forgets reach it."""
        self._local = local

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Results for whole UTC days, from Redis where another replica fetched them."""
        first, last = window.start.toordinal(), (window.end - _TICK).toordinal()
        whole = window.start == day_start(first) and window.end == day_start(last + 1)
        if not whole or self._ttl_ms <= 0 or not self._link.sharing:
            return await self._source.get_schedules(addresses, window)
        mailboxes = list(dict.fromkeys(address.casefold() for address in addresses))
        asked = _Asked(mailboxes, range(first, last + 1))
        open_days = {mailbox: list(asked.days) for mailbox in mailboxes}
        for final in (False, True):
            mine, theirs = await self._read_days(asked, open_days, claim=not final)
            if mine is None:
                # Redis failed: what is still open comes from below, unshared.
                await self._fetch(asked, open_days, store=False)
                break
            if final:
                # Still being fetched elsewhere after a lock's lifetime: fetch it here too.
                await self._fetch(asked, mine, store=True)
                break
            # A mailbox fetched here comes whole, the days others are fetching included.
            theirs = {m: days for m, days in theirs.items() if m not in mine}
            waiting = [self._key_day(m, d) for m, days in theirs.items() for d in days]
            await asyncio.gather(self._fetch(asked, mine, store=True), self._await(waiting))
            open_days = {m: days for m, days in theirs.items() if m not in asked.errors}
            if not open_days:
                break
        return await self._answer(mailboxes, asked)

    # --- reading ----------------------------------------------------------------------

    async def _read_days(
        self, asked: _Asked, open_days: dict[str, list[int]], *, claim: bool
    ) -> tuple[dict[str, list[int]] | None, dict[str, list[int]]]:
        """Fill in the days Redis holds; return the days locked for us and by others (None:
        Redis failed). Without ``claim``, every missing day is ours."""
        link = self._link
        mine: dict[str, list[int]] = {}
        theirs: dict[str, list[int]] = {}
        hits = 0
        for chunk in _chunks(open_days):
            keys: list[str] = []
            for mailbox in chunk:
                days = open_days[mailbox]
                keys.append(self._key_unknown(mailbox))
                keys += (self._key_day(mailbox, day).decode() for day in days)
                keys += (self._key_lock(mailbox, day) for day in days)
            counts = [len(open_days[mailbox]) for mailbox in chunk]
            try:
                link.count("read")
                rows = await self._read(
                    keys=keys, args=[self._lock_ms if claim else 1, link.replica, *counts]
                )
            except REDIS_ERRORS as exc:
                link.failed(exc)
                return None, {}
            at = 0
            # Up to thousands of days decoded: the event loop gets turns between slices.
            pacer = Pacer()
            for mailbox in chunk:
                days = open_days[mailbox]
                if pacer.due(len(days)):
                    await asyncio.sleep(0)
                unknown_ms = int(rows[at])
                at += 1
                if unknown_ms > 0:
                    asked.errors[mailbox] = ErrorCode.NOT_FOUND
                    asked.age[mailbox] = max(0.0, (self._ttl_ms - unknown_ms) / 1000)
                    at += 2 * len(days)
                    hits += len(days)
                    continue
                for day in days:
                    value, ttl = rows[at], int(rows[at + 1])
                    at += 2
                    if isinstance(value, bytes):
                        try:
                            asked.pieces[(mailbox, day)] = decode_day(value, day_start(day))
                        except ValueError:
                            mine.setdefault(mailbox, []).append(day)
                            continue
                        age = max(0.0, (self._ttl_ms - ttl) / 1000)
                        asked.age[mailbox] = max(asked.age[mailbox], age)
                        hits += 1
                    elif int(value) == 1 or not claim:
                        mine.setdefault(mailbox, []).append(day)
                    else:
                        theirs.setdefault(mailbox, []).append(day)
        if hits:
            self._lookups.labels("hit").inc(hits)
        return mine, theirs

    async def _await(self, keys: list[bytes]) -> None:
        """Until every key is announced as landed, or a fetch lock's lifetime has passed."""
        if not keys:
            return
        self._lookups.labels("awaited").inc(len(keys))
        events = self._link.watch(keys)
        try:
            async with asyncio.timeout(self._lock_ms / 1000):
                for event in events:
                    await event.wait()
        except TimeoutError:
            pass
        finally:
            self._link.unwatch(keys)

    # --- fetching ---------------------------------------------------------------------

    async def _fetch(self, asked: _Asked, days: dict[str, list[int]], *, store: bool) -> None:
        """Fetch every day asked for of the mailboxes missing some, in one fetch from below;
        store the missing ones for the other replicas and announce them."""
        mailboxes = [m for m, wanted in days.items() if wanted and m not in asked.errors]
        if not mailboxes:
            return
        # The whole window the cache asked for, not just the days Redis lacks: the cache
        # aligned it (whole blocks on the grid) with other requests' windows, so batching folds
        # their mailboxes into one call; windows cut to what each mailbox lacks would each
        # need a call of their own.
        self._lookups.labels("fetched").inc(sum(len(days[m]) for m in mailboxes))
        first, last = asked.days[0], asked.days[-1]
        await self._fetch_range(asked, mailboxes, first, last, days, store, self._generation)

    async def _fetch_range(
        self,
        asked: _Asked,
        mailboxes: list[str],
        first: int,
        last: int,
        days: dict[str, list[int]],
        store: bool,
        generation: int,
    ) -> None:
        window = Window(start=day_start(first), end=day_start(last + 1))
        try:
            results = await self._source.get_schedules(mailboxes, window)
        except UpstreamFailure as exc:
            for mailbox in mailboxes:
                asked.failures[mailbox] = exc
            results = {}
        writes: list[tuple[str, bytes]] = []
        pacer = Pacer()
        for mailbox in mailboxes:
            if pacer.due(last - first + 1):
                await asyncio.sleep(0)
            if mailbox in asked.failures:
                continue
            result = results.get(mailbox) or ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
            if result.error is not None:
                asked.errors[mailbox] = result.error
                if result.error is ErrorCode.NOT_FOUND:
                    writes.append((self._key_unknown(mailbox), b"1"))
                continue
            per_day = split_by_day(result.items, first, last)
            # Every day of this mailbox's answer now comes from this fetch.
            asked.age[mailbox] = 0.0
            for day in range(first, last + 1):
                pieces = tuple(sorted(per_day.get(day, ())))
                asked.pieces[(mailbox, day)] = pieces
                if day in days[mailbox]:
                    writes.append(
                        (self._key_day(mailbox, day).decode(), encode_day(pieces, day_start(day)))
                    )
        if store:
            # A forget() while this fetch was in flight: the data may no longer be kept.
            kept = writes if generation == self._generation else []
            await self._store(kept, [(m, d) for m in mailboxes for d in days[m]])

    async def _store(self, writes: list[tuple[str, bytes]], locked: list[tuple[str, int]]) -> None:
        """Write the fetched days, drop the fetch locks, and announce the days as landed."""
        link = self._link
        try:
            link.count("write")
            async with link.redis.pipeline(transaction=False) as pipe:
                for key, value in writes:
                    pipe.set(key, value, px=self._ttl_ms)
                if locked:
                    pipe.delete(*(self._key_lock(m, d) for m, d in locked))
                await pipe.execute()
        except REDIS_ERRORS as exc:
            link.failed(exc)
            return
        link.publish("landed", [self._key_day(m, d) for m, d in locked])

    # --- answering --------------------------------------------------------------------

    async def _answer(self, mailboxes: list[str], asked: _Asked) -> dict[str, ScheduleResult]:
        """Each mailbox's pieces in day order (or its error); raise if all failed as a whole."""
        results: dict[str, ScheduleResult] = {}
        pacer = Pacer()
        for mailbox in mailboxes:
            if pacer.due(len(asked.days)):
                await asyncio.sleep(0)
            failure = asked.failures.get(mailbox)
            error = asked.errors.get(mailbox)
            if failure is not None:
                error = _code(failure)
            if error is None and any((mailbox, day) not in asked.pieces for day in asked.days):
                error = ErrorCode.UPSTREAM_ERROR
            if error is not None:
                results[mailbox] = ScheduleResult(error=error, age_s=asked.age[mailbox])
                continue
            items = [item for day in asked.days for item in asked.pieces[(mailbox, day)]]
            results[mailbox] = ScheduleResult(items=tuple(items), age_s=asked.age[mailbox])
        failures = [asked.failures[m] for m in mailboxes if m in asked.failures]
        if failures and len(failures) == len(mailboxes):
            # Nothing to answer with at all: as the fetch would have failed unshared.
            raise failures[0]
        return results

    # --- forgetting -------------------------------------------------------------------

    def forgotten(self, addresses: frozenset[str]) -> None:
        """The cache forgot these addresses: so do Redis and every other replica."""
        self._generation += 1
        if self._applying or not self._link.sharing:
            return
        pseudonyms = [self._link.pseudonym(address) for address in addresses]
        self._link.publish("forget", [p.encode() for p in pseudonyms])
        self._link.spawn(self._delete(pseudonyms))

    async def _delete(self, pseudonyms: list[str]) -> None:
        link = self._link
        try:
            for pseudonym in pseudonyms:
                link.count("scan")
                doomed = [
                    key
                    async for key in link.redis.scan_iter(
                        match=link.key(DAY_KIND, pseudonym, "*"), count=1000
                    )
                ]
                doomed.append(link.key("unknown", pseudonym).encode())
                link.count("write")
                await link.redis.delete(*doomed)
        except REDIS_ERRORS as exc:
            link.failed(exc)

    def _peer_forgot(self, event: Any) -> None:
        """Another replica forgot some addresses (by pseudonym): forget what is held here."""
        self._generation += 1
        if self._local is None:
            return
        doomed = {item.decode() for item in event.items}
        held = {key[0] for key, _ in self._local.entries()} | set(self._local.unknown())
        matched = [m for m in held if self._link.pseudonym(m) in doomed]
        if matched:
            self._applying = True
            try:
                self._local.forget(matched)
            finally:
                self._applying = False

    # --- keys -------------------------------------------------------------------------

    def _key_day(self, mailbox: str, day: int) -> bytes:
        return self._link.key(DAY_KIND, self._link.pseudonym(mailbox), day).encode()

    def _key_lock(self, mailbox: str, day: int) -> str:
        return self._link.key("fetching", self._link.pseudonym(mailbox), day)

    def _key_unknown(self, mailbox: str) -> str:
        return self._link.key("unknown", self._link.pseudonym(mailbox))


def _chunks(open_days: dict[str, list[int]]) -> list[list[str]]:
    """Mailboxes in groups whose keys one read script may touch."""
    chunks: list[list[str]] = [[]]
    keys = 0
    for mailbox, days in open_days.items():
        size = 1 + 2 * len(days)
        if chunks[-1] and keys + size > _KEYS_PER_READ:
            chunks.append([])
            keys = 0
        chunks[-1].append(mailbox)
        keys += size
    return [chunk for chunk in chunks if chunk]


def _code(failure: UpstreamFailure) -> ErrorCode:
    """The per-schedule code for a whole-call failure (auth failures read as upstream_error)."""
    value = failure.code.value
    return ErrorCode(value) if value in _SCHEDULE_CODES else ErrorCode.UPSTREAM_ERROR
