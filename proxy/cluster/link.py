"""The link every shared piece goes through: one Redis client, its health, and the news
replicas tell each other.

Modes, as /readyz and ``freebusy_cluster_degraded`` report them:

shared    -> Redis answers: the gate, the cache tier, the breaker and the rates are shared.
fallback  -> Redis failed: every piece works on its own with conservative local limits
             (1/fallback_replicas of each), the cache tier is skipped. For one lease time
             after the failure no new Graph call starts: calls other replicas started under
             Redis leases are all over by then (each is cut off at lease_seconds).
rejoining -> Redis answers again: calls take Redis leases and the local limits both, until
             every replica has had time to notice (two probes) and every call started in
             fallback is over (one lease time); then shared.

Nothing stored or sent here names anyone: keys carry ``pseudonym(address)``, an HMAC with
FREEBUSY_PROXY_CLUSTER_KEY, and values hold only what the cache holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Any

import msgspec
import redis.asyncio as redis
from cachetools import LRUCache
from limits.aio.storage import RedisStorage
from prometheus_client import Counter, Gauge
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.cluster.derived_keys import derive_key
from proxy.config.schema import ClusterSettings
from proxy.core.clock import Clock
from proxy.observability.metrics import Metrics

log = logging.getLogger(__name__)

# What a failing Redis raises through redis-py (its own errors, and socket timeouts).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
CHANNEL = b"fbp:events"
PREFIX = "fbp:"
# While Redis is unreachable, how often it is asked whether it is back.
PROBE_S = 0.5
# A command Redis does not answer in this long counts as Redis failing.
SOCKET_TIMEOUT_S = 1.0
# A lease outlives the longest call that can hold it by this much.
LEASE_MARGIN_S = 1.0
_PSEUDONYMS = 65_536


class Mode(StrEnum):
    """Where the link stands."""

    SHARED = "shared"
    FALLBACK = "fallback"
    REJOINING = "rejoining"


class _Event(msgspec.Struct, array_like=True):
    """One piece of news on the channel: what happened, who says so, about which keys."""

    kind: str
    sender: str
    items: list[bytes] = []
    seconds: float = 0.0


_encode_event = msgspec.msgpack.Encoder().encode
_decode_event = msgspec.msgpack.Decoder(_Event).decode

EventHandler = Callable[[_Event], None]


def open_client(settings: ClusterSettings) -> redis.Redis:
    """A redis-py asyncio client for these settings: no retries (a failure is news at once)."""
    assert settings.redis_url is not None
    options: dict[str, Any] = {
        "password": settings.redis_password,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if settings.redis_url.startswith("rediss://") and settings.ca_file is not None:
        options["ssl_ca_certs"] = str(settings.ca_file)
    return redis.Redis.from_url(settings.redis_url, **options)


class ClusterLink:
    """The Redis client, the mode it puts every shared piece in, and the replicas' news."""

    def __init__(
        self,
        settings: ClusterSettings,
        *,
        metrics: Metrics,
        clock: Clock,
        client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.redis = client or open_client(settings)
        self.replica = secrets.token_hex(6)
        self.lease_s = settings.lease_seconds + LEASE_MARGIN_S
        self.fallback_replicas = settings.fallback_replicas
        self._clock = clock
        self._key = (settings.cluster_key or "").encode()
        self._pseudonyms: LRUCache[str, str] = LRUCache(maxsize=_PSEUDONYMS)
        self._mode = Mode.FALLBACK
        self._quiet_until = clock() + self.lease_s
        self._rejoined_at = 0.0
        self._handlers: dict[str, list[EventHandler]] = {}
        self.on_join: list[Callable[[], Awaitable[None]]] = []
        # Run before the client closes, each for at most a second.
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        self._landing: dict[bytes, list[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._closed = False
        self._limits: RedisStorage | None = None
        registry = metrics.registry
        self.round_trips = Counter(
            "freebusy_cluster_round_trips",
            "Commands (or pipelines, or scripts) sent to Redis, by what they were for.",
            ["purpose"],
            registry=registry,
        )
        self.tier_lookups = Counter(
            "freebusy_cluster_tier_lookups",
            "Mailbox-days the cache asked the shared tier for: hit (in Redis), fetched (by "
            "this replica), awaited (fetched by another replica).",
            ["outcome"],
            registry=registry,
        )
        Gauge(
            "freebusy_cluster_degraded",
            "1 while Redis is unreachable or being rejoined (local limits), 0 when shared.",
            registry=registry,
        ).set_function(lambda: 0 if self.mode is Mode.SHARED else 1)

    # --- mode ---------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """The current mode (rejoining turns shared once everyone has had time to rejoin)."""
        if self._mode is Mode.REJOINING and self._clock() >= self._rejoined_at:
            self._mode = Mode.SHARED
            log.info("cluster: sharing through Redis again")
        return self._mode

    @property
    def sharing(self) -> bool:
        """Whether Redis is to be used now (shared or rejoining)."""
        return self.mode is not Mode.FALLBACK

    def state(self) -> str:
        """What /readyz says: "ok" when shared, "degraded" otherwise."""
        return "ok" if self.mode is Mode.SHARED else "degraded"

    def failed(self, exc: BaseException) -> None:
        """Redis failed a command: fall back to local limits and ask again until it answers."""
        if self._mode is Mode.FALLBACK or self._closed:
            return
        self._mode = Mode.FALLBACK
        self._quiet_until = self._clock() + self.lease_s
        # The exception's type only: its text may hold a host name or a command.
        log.warning(
            "cluster: Redis unreachable (%s); serving from this replica's cache with local "
            "limits (1/%d of each) until it answers",
            type(exc).__name__,
            self.fallback_replicas,
        )
        if self._listener is not None:
            if self._listener is not asyncio.current_task():
                self._listener.cancel()
            self._listener = None
        self._start_probe()

    async def quiet(self) -> None:
        """In fallback, wait until calls others started under Redis leases are surely over."""
        left = self._quiet_until - self._clock()
        if left > 0:
            await asyncio.sleep(left)

    async def start(self) -> None:
        """Connect: shared if Redis answers now, else fallback (and keep asking)."""
        try:
            self.count("probe")
            await self.redis.ping()
        except REDIS_ERRORS as exc:
            log.warning("cluster: Redis unreachable at start (%s)", type(exc).__name__)
            self._start_probe()
            return
        await self._joined(first=True)

    async def close(self) -> None:
        """Say goodbye (the on_close hooks), stop listening and probing, close the client."""
        for hook in self.on_close:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SOCKET_TIMEOUT_S):
                    await hook()
        self._closed = True
        for task in [self._listener, self._prober, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._listener, self._prober, *self._tasks] if t is not None),
            return_exceptions=True,
        )
        await self.redis.aclose()

    def _start_probe(self) -> None:
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        while not self._closed:
            await asyncio.sleep(PROBE_S)
            try:
                self.count("probe")
                await self.redis.ping()
            except REDIS_ERRORS:
                continue
            await self._joined(first=False)
            return

    async def _joined(self, *, first: bool) -> None:
        """Redis answers: listen to the channel, catch up, and share (after the rejoin grace)."""
        if first:
            # Nobody's fallback calls to wait for: a replica starting with Redis up shares.
            self._mode = Mode.SHARED
        else:
            self._mode = Mode.REJOINING
            self._rejoined_at = self._clock() + 2 * PROBE_S + self.lease_s
            log.warning("cluster: Redis answers again; rejoining")
        self._listener = asyncio.get_running_loop().create_task(self._listen())
        for hook in self.on_join:
            try:
                await hook()
            except REDIS_ERRORS as exc:
                self.failed(exc)
                return

    # --- naming -------------------------------------------------------------------------

    def pseudonym(self, address: str) -> str:
        """The HMAC of a case-folded address that stands for it in every key."""
        found = self._pseudonyms.get(address)
        if found is None:
            digest = hmac.new(self._key, address.encode(), hashlib.sha256).digest()
            found = self._pseudonyms[address] = digest[:16].hex()
        return found

    def derived_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from the cluster key (never the pseudonyms' own)."""
        return derive_key(self.settings.cluster_key or "", purpose)

    def limits_storage(self) -> RedisStorage:
        """The ``limits`` library's storage over this link's own connections."""
        if self._limits is None:
            self._limits = RedisStorage(
                "async+" + (self.settings.redis_url or ""),
                implementation="redispy",
                key_prefix=self.key("limits"),
                # Typed as options of scalars; redis-py takes the pool as given.
                connection_pool=self.redis.connection_pool,  # type: ignore[arg-type]
            )
        return self._limits

    def key(self, *parts: object) -> str:
        """A key of ours: ``fbp:`` and the parts joined by colons."""
        return PREFIX + ":".join(str(part) for part in parts)

    def count(self, purpose: str, n: int = 1) -> None:
        """Count round trips to Redis (for /metrics and the benchmark)."""
        self.round_trips.labels(purpose).inc(n)

    # --- news between replicas ----------------------------------------------------------

    def subscribe(self, kind: str, handler: EventHandler) -> None:
        """Call ``handler`` with every event of ``kind`` another replica publishes."""
        self._handlers.setdefault(kind, []).append(handler)

    def publish(self, kind: str, items: Iterable[bytes] = (), *, seconds: float = 0.0) -> None:
        """Tell every replica (this one included, for "landed") something, in the background."""
        if not self.sharing:
            return
        payload = _encode_event(_Event(kind, self.replica, list(items), seconds))
        self.spawn(self._publish(payload))

    async def _publish(self, payload: bytes) -> None:
        try:
            self.count("publish")
            await self.redis.publish(CHANNEL, payload)
        except REDIS_ERRORS as exc:
            self.failed(exc)

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run ``work`` in the background, kept referenced until done."""

        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def watch(self, keys: Iterable[bytes]) -> list[asyncio.Event]:
        """Events set when another fetch says these keys landed; unwatch() them after."""
        events = []
        for key in keys:
            entry = self._landing.get(key)
            if entry is None:
                entry = self._landing[key] = [asyncio.Event(), 0]
            entry[1] += 1
            events.append(entry[0])
        return events

    def unwatch(self, keys: Iterable[bytes]) -> None:
        """Stop watching keys watch() returned events for."""
        for key in keys:
            entry = self._landing.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._landing[key]

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._dispatch(message["data"])
        except REDIS_ERRORS as exc:
            self.failed(exc)
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, data: bytes) -> None:
        try:
            event = _decode_event(data)
        except msgspec.DecodeError:
            log.warning("cluster: an event on the channel could not be read; ignored")
            return
        if event.kind == "landed":
            for key in event.items:
                entry = self._landing.get(key)
                if entry is not None:
                    entry[0].set()
            return
        if event.sender == self.replica:
            return
        for handler in self._handlers.get(event.kind, ()):
            handler(event)
