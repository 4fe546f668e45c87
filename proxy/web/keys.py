"""Typed application state: what the app factory builds once and the handlers use."""

from __future__ import annotations

from aiohttp import web

from proxy.access.consumers import ConsumerRegistry
from proxy.access.feeds import FeedRegistry
from proxy.availability.service import Availability
from proxy.config.schema import Settings
from proxy.connect.runtime import ConnectRuntime
from proxy.core.clock import WallClock
from proxy.observability.looplag import LoopLag
from proxy.observability.metrics import Metrics
from proxy.sources.chain import Chain

SETTINGS = web.AppKey("settings", Settings)
CONSUMERS = web.AppKey("consumers", ConsumerRegistry)
FEEDS = web.AppKey("feeds", FeedRegistry)
METRICS = web.AppKey("metrics", Metrics)
WALL_CLOCK: web.AppKey[WallClock] = web.AppKey("wall_clock")
LOOP_LAG = web.AppKey("loop_lag", LoopLag)
# Built on start-up, once each: the source chain, the service in front of it, connect.
CHAIN = web.AppKey("chain", Chain)
AVAILABILITY = web.AppKey("availability", Availability)
CONNECT = web.AppKey("connect", ConnectRuntime)
