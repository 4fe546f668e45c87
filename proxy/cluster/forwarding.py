"""Misses forwarded to the replica that owns their window, so the cluster batches as one.

A link of the chain between the shared days and batching. Batching folds concurrent fetches
for one window into one getSchedule call, but only those of one process: three replicas each
folding a third of the misses make far more calls than one process. So each window has an
owner among the live replicas (``Members.owner``), and a replica sends a fetch for a window
it does not own to that owner's ``POST /cluster/fetch``, where it joins the owner's batch.

The ask carries the addresses and the window; the answer only, per address, an error code or
the items as packed integers (status, start and end), or the code of a whole failure. Both are
msgpack, and the ask is signed with a key derived from FREEBUSY_PROXY_CLUSTER_KEY (time, nonce
and body), so only replicas can ask, a captured ask cannot be replayed, and an old one expires.
An owner that cannot be reached, or answers anything but a well-formed answer, is left out for
a while and the fetch is made here: forwarding can cost a round trip, never an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import aiohttp
import msgspec
from cachetools import TTLCache
from prometheus_client import Counter

from proxy.cluster.derived_keys import derive_key
from proxy.cluster.packing import pack_items, unpack_items
from proxy.core.clock import WallClock
from proxy.core.errors import BadRequest, Code, RateLimited, Unauthorized, UpstreamFailure
from proxy.core.model import ErrorCode, ScheduleResult, Window
from proxy.core.ports import ScheduleSource
from proxy.observability.metrics import Metrics

if TYPE_CHECKING:
    # Only a type here: the web layer imports this module, Redis' client stays unloaded.
    from proxy.cluster.members import Members

log = logging.getLogger(__name__)

PATH = "/cluster/fetch"
SIGNATURE_HEADER = "X-Freebusy-Cluster-Signature"
# msgpack, sent as plain bytes (the type OpenAPI tools know how to send).
CONTENT_TYPE = "application/octet-stream"
# An ask older (or newer) than this by the owner's clock is refused; nonces are kept as long.
FRESH_S = 30.0
# Asks larger than one getSchedule call, or longer than one of its windows, are not forwarded
# (the owner could not fold them into anything anyway).
MAX_SPAN = timedelta(days=62)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MAX_ADDRESS = 320
_NONCES = 200_000
# Seconds, nonce, MAC: ASCII only, so nothing else reaches the comparison.
_SIGNATURE = re.compile(r"([0-9]{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})", re.ASCII)
# A whole failure's text, fixed per code: what the owner's Graph said never travels.
_FAILURE_TEXT = {
    Code.UPSTREAM_TIMEOUT: "Microsoft Graph did not answer in time",
    Code.UPSTREAM_AUTH: "could not get an access token for Microsoft Graph",
    Code.UPSTREAM_UNAVAILABLE: "Microsoft Graph keeps failing; not asking it for a while",
}
_FAILURE_CODES = frozenset(
    {Code.UPSTREAM_ERROR, Code.THROTTLED, Code.NOT_FOUND, Code.NOT_CONNECTED}
    | {Code.NEEDS_CONSENT, *_FAILURE_TEXT}
)


class Ask(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A forwarded fetch: addresses and a window (microseconds since the epoch)."""

    addresses: list[str]
    start_us: int
    end_us: int


class Failure(msgspec.Struct, array_like=True):
    """The whole fetch failed: its code, status, and when to ask again (or -1)."""

    code: str
    status: int
    retry_after: float
    graph_failing: bool


class Answer(msgspec.Struct, array_like=True):
    """Per address asked, in order: an error code ("" for none) and packed items."""

    codes: list[str] = []
    items: list[list[int]] = []
    failure: Failure | None = None


_encode = msgspec.msgpack.Encoder().encode
_decode_ask = msgspec.msgpack.Decoder(Ask).decode
_decode_answer = msgspec.msgpack.Decoder(Answer).decode


class Batcher(ScheduleSource, Protocol):
    """What forwarding needs of batching: fetches, and fetches through a batch kept open as
    long as asked."""

    async def batched(
        self, addresses: Sequence[str], window: Window, *, wait_s: float, idle_sends: bool
    ) -> dict[str, ScheduleResult]:
        """Results for ``addresses``, fetched in a batch shared with others (open ``wait_s``
        if this opens it; ``idle_sends``: at once when nothing is in flight)."""
        ...


def signing_key(cluster_key: str) -> bytes:
    """The key asks are signed with (derived: never the pseudonyms' key)."""
    return derive_key(cluster_key, "freebusy-proxy forwarded fetch")


def sign(key: bytes, body: bytes, now: datetime) -> str:
    """The signature header's value for ``body`` sent at ``now``: time, nonce, MAC."""
    stamp = str(int(now.timestamp()))
    nonce = secrets.token_hex(16)
    mac = hmac.new(key, f"{stamp}.{nonce}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{stamp}.{nonce}.{mac}"


class Verifier:
    """Checks asks' signatures: the MAC, the time, and that no nonce is used twice."""

    def __init__(self, key: bytes, wall_clock: WallClock) -> None:
        self._key = key
        self._wall = wall_clock
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=_NONCES, ttl=2 * FRESH_S)

    def check(self, header: str | None, body: bytes) -> None:
        """Return when ``header`` signs ``body`` freshly and for the first time; raise
        Unauthorized otherwise (RateLimited when too many nonces are held to tell)."""
        found = _SIGNATURE.fullmatch(header or "")
        if found is None:
            raise Unauthorized("a replica's signature is required")
        stamp, nonce, mac = found.groups()
        expected = hmac.new(self._key, f"{stamp}.{nonce}.".encode() + body, hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest().encode(), mac.encode()):
            raise Unauthorized("the replica's signature does not match")
        if abs(self._wall.now().timestamp() - int(stamp)) > FRESH_S:
            raise Unauthorized("the replica's signature has expired")
        if nonce in self._seen:
            raise Unauthorized("the replica's signature was used before")
        if len(self._seen) >= _NONCES:
            self._seen.expire()
            if len(self._seen) >= _NONCES:
                # Forgetting a nonce still fresh would let its ask be replayed: refuse.
                raise RateLimited("too many forwarded fetches at once", retry_after=FRESH_S)
        self._seen[nonce] = True


async def answer(batcher: Batcher, body: bytes, *, wait_s: float, max_schedules: int) -> bytes:
    """The owner's side: the answer to a (verified) ask of at most ``max_schedules``
    addresses, its fetch joined to a batch here (open ``wait_s`` if it opens one)."""
    try:
        ask = _decode_ask(body)
        start = _EPOCH + ask.start_us * _US
        window = Window(start=start, end=_EPOCH + ask.end_us * _US)
    except (msgspec.DecodeError, ValueError, OverflowError) as exc:
        raise BadRequest("not a forwarded fetch") from exc
    if not 1 <= len(ask.addresses) <= max_schedules or window.duration > MAX_SPAN:
        raise BadRequest("a forwarded fetch is one getSchedule call: too many addresses or days")
    if any(not 0 < len(address) <= _MAX_ADDRESS for address in ask.addresses):
        raise BadRequest("not a forwarded fetch")
    try:
        results = await batcher.batched(ask.addresses, window, wait_s=wait_s, idle_sends=False)
    except UpstreamFailure as exc:
        retry = -1.0 if exc.retry_after is None else exc.retry_after
        failure = Failure(exc.code.value, exc.status, retry, exc.graph_failing)
        return _encode(Answer(failure=failure))
    codes: list[str] = []
    items: list[list[int]] = []
    for address in ask.addresses:
        result = results[address.casefold()]
        codes.append("" if result.error is None else result.error.value)
        items.append(pack_items(result.items, start))
    return _encode(Answer(codes=codes, items=items))


class Unanswered(Exception):
    """The owner did not give a well-formed answer (never an error of Graph's)."""


class Forwarder:
    """A ScheduleSource sending fetches for windows another replica owns to that replica."""

    def __init__(
        self,
        source: Batcher,
        members: Members,
        *,
        key: bytes,
        wall_clock: WallClock,
        timeout_s: float,
        wait_s: float,
        max_schedules: int,
        metrics: Metrics,
    ) -> None:
        self._source = source
        self._members = members
        self._key = key
        self._wall = wall_clock
        self._max = max_schedules
        self._wait_s = wait_s
        # Connecting is cut off at a second, waiting for the owner's answer at timeout_s.
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=1.0)
        self._session: aiohttp.ClientSession | None = None
        self._forwards = Counter(
            "freebusy_cluster_forwards",
            "Fetches sent to the replica owning their window (sent), that failed to reach it "
            "and were fetched here (unanswered), or answered for another replica (served).",
            ["outcome"],
            registry=metrics.registry,
        )

    def served(self) -> None:
        """Count one fetch answered for another replica."""
        self._forwards.labels("served").inc()

    async def close(self) -> None:
        """Close the connections to other replicas."""
        if self._session is not None:
            await self._session.close()

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Results for ``addresses``: fetched by the window's owner, or here."""
        owner = self._members.owner(window)
        if owner is None or len(addresses) > self._max or window.duration > MAX_SPAN:
            return await self._source.get_schedules(addresses, window)
        if owner == self._members.me:
            # This replica's own miss for a window it owns waits in the batch like the
            # others' forwarded ones: the batch holds the cluster's misses, not one third.
            return await self._source.batched(
                addresses, window, wait_s=self._wait_s, idle_sends=True
            )
        try:
            results = await self._forward(owner, addresses, window)
        except (Unanswered, aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._forwards.labels("unanswered").inc()
            self._members.down(owner)
            # The exception's type only: its text may hold a host or an address.
            log.warning(
                "cluster: a replica did not answer a forwarded fetch (%s); fetching here, "
                "and leaving it out for a while",
                type(exc).__name__,
            )
            return await self._source.get_schedules(addresses, window)
        self._forwards.labels("sent").inc()
        return results

    async def _forward(
        self, owner: str, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        start_us = (window.start - _EPOCH) // _US
        body = _encode(Ask(list(addresses), start_us, (window.end - _EPOCH) // _US))
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: sign(self._key, body, self._wall.now()),
        }
        if self._session is None:
            # No pool limit: a forward waiting for a free connection here would time out
            # and leave a healthy owner out (how many are in flight is the cache's bound).
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(limit=0)
            )
        async with self._session.post(owner + PATH, data=body, headers=headers) as resp:
            if resp.status != 200 or resp.content_type != CONTENT_TYPE:
                raise Unanswered(f"status {resp.status}")
            raw = await resp.read()
        try:
            return read_answer(raw, addresses, window)
        except ValueError as exc:
            raise Unanswered("not an answer") from exc


def read_answer(raw: bytes, addresses: Sequence[str], window: Window) -> dict[str, ScheduleResult]:
    """The results an owner's answer to an ask for ``addresses`` over ``window`` carries;
    raise its whole failure; ValueError when it is not such an answer."""
    try:
        reply = _decode_answer(raw)
    except msgspec.DecodeError as exc:
        raise ValueError("not an answer") from exc
    if reply.failure is not None:
        raise _failure(reply.failure)
    if len(reply.codes) != len(addresses) or len(reply.items) != len(addresses):
        raise ValueError("not an answer to this ask")
    results: dict[str, ScheduleResult] = {}
    for address, code, packed in zip(addresses, reply.codes, reply.items, strict=True):
        if code:
            # A code of none of ours is a ValueError: not an answer.
            results[address.casefold()] = ScheduleResult.failed(ErrorCode(code))
        else:
            items = unpack_items(packed, window.start, window.duration)
            results[address.casefold()] = ScheduleResult(items=items)
    return results


def _failure(failure: Failure) -> UpstreamFailure:
    """The owner's whole failure, rebuilt from its code alone (and fixed text)."""
    code = Code(failure.code) if failure.code in _FAILURE_CODES else Code.UPSTREAM_ERROR
    status = failure.status if failure.status in (429, 502, 503, 504) else 502
    return UpstreamFailure(
        _FAILURE_TEXT.get(code, "Microsoft Graph failed for the whole request"),
        code=code,
        status=status,
        retry_after=None if failure.retry_after < 0 else min(failure.retry_after, 3600.0),
        graph_failing=failure.graph_failing,
    )
