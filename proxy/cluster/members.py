"""Which replicas are alive, and which of them fetches a given window.

Each replica that takes forwarded fetches beats once a second: one script puts its URL in a
sorted set with an expiry (by Redis' clock, so replicas' clocks never disagree), drops the
expired and reads who is left. A replica that dies drops out within ``TTL_S``; one that stops
cleanly leaves as it stops. The set holds URLs of replicas, nothing about anyone asked, each
with a MAC by a key derived from the cluster key: an entry someone else wrote into Redis is
never forwarded to (it would be sent addresses).

A window's owner is picked by rendezvous hashing over the live URLs: every replica picks the
same owner from the same list, and when a replica comes or goes only its own windows move.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging

from prometheus_client import Gauge

from proxy.cluster.link import REDIS_ERRORS, ClusterLink
from proxy.core.clock import Clock
from proxy.core.model import Window
from proxy.observability.metrics import Metrics

log = logging.getLogger(__name__)

BEAT_S = 1.0
# Missing three beats in a row takes a replica out.
TTL_S = 3.5
# A replica that could not be reached is left out by this one for this long.
DOWN_S = 5.0

# Entries read per beat: bounded work, whatever else was written into the set.
MOST_HEARD = 1000

# KEYS: the set. ARGV: this replica's entry, its ms to live, how many to read. Returns the
# live entries, soonest to expire first.
_BEAT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
return redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
"""


def owner_of(window: Window, urls: list[str]) -> str | None:
    """The replica among ``urls`` that owns ``window`` by rendezvous hashing (None: none)."""
    if not urls:
        return None
    name = f"{window.start.isoformat()}/{window.end.isoformat()}|".encode()
    return max(urls, key=lambda url: hashlib.blake2b(name + url.encode()).digest())


class Members:
    """The live replicas as this one last heard them, and the owner of each window."""

    def __init__(self, link: ClusterLink, *, clock: Clock, metrics: Metrics) -> None:
        self._link = link
        self._clock = clock
        self._beat = link.redis.register_script(_BEAT)
        self._key = link.key("replicas")
        self._mac_key = link.derived_key("freebusy-proxy replica")
        self.me: str | None = None
        self._live: tuple[str, ...] = ()
        self._down: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        Gauge(
            "freebusy_cluster_replicas",
            "Replicas this one last heard taking forwarded fetches, itself included.",
            registry=metrics.registry,
        ).set_function(lambda: len(self._live))
        link.on_close.append(self._leave)

    def advertise(self, url: str) -> None:
        """Take part from now on as ``url``: beat, and own a share of the windows."""
        self.me = url
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._beat_forever())

    def owner(self, window: Window) -> str | None:
        """The replica that fetches ``window``'s misses (None: fetch them here)."""
        if self.me is None or not self._link.sharing:
            return None
        now = self._clock()
        live = [url for url in self._live if self._down.get(url, 0.0) <= now or url == self.me]
        return owner_of(window, live)

    def down(self, url: str) -> None:
        """``url`` could not be reached: leave it out for a while (until it beats on)."""
        self._down[url] = self._clock() + DOWN_S

    async def _beat_forever(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(BEAT_S)

    async def beat(self) -> None:
        """Say this replica is alive and hear who else is (nobody while Redis fails)."""
        if self.me is None or not self._link.sharing:
            self._live = ()
            return
        try:
            self._link.count("membership")
            live = await self._beat(
                keys=[self._key], args=[self._entry(), int(TTL_S * 1000), MOST_HEARD]
            )
        except REDIS_ERRORS as exc:
            self._live = ()
            self._link.failed(exc)
            return
        self._live = tuple(sorted(url for url in map(self._verified, live) if url is not None))
        now = self._clock()
        self._down = {url: until for url, until in self._down.items() if until > now}

    def _entry(self) -> str:
        """This replica's entry in the set: its URL and the URL's MAC."""
        assert self.me is not None
        mac = hmac.new(self._mac_key, self.me.encode(), hashlib.sha256).hexdigest()
        return f"{self.me} {mac}"

    def _verified(self, entry: bytes) -> str | None:
        """The URL of an entry a replica wrote (None for anything else)."""
        url, _, mac = entry.decode("utf-8", "replace").partition(" ")
        expected = hmac.new(self._mac_key, url.encode(), hashlib.sha256).hexdigest()
        return url if hmac.compare_digest(expected.encode(), mac.encode()) else None

    async def _leave(self) -> None:
        """Stopping cleanly: no more beats, and out of the set, so nobody forwards here."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.me is None or not self._link.sharing:
            return
        try:
            self._link.count("membership")
            await self._link.redis.zrem(self._key, self._entry())
        except REDIS_ERRORS:
            log.info("cluster: could not leave the replica set; it expires on its own")
