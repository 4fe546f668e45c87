"""Typed application state keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from proxy.access.consumers import ConsumerRegistry
from proxy.access.feeds import FeedRegistry
from proxy.access.rate import TokenBuckets
from proxy.availability.memo import ResponseMemo
from proxy.config.schema import Settings
from proxy.connect.registry import ConnectionRemoved
from proxy.connect.runtime import ConnectRuntime
from proxy.core.clock import Clock, WallClock
from proxy.observability.metrics import Metrics
from proxy.sources.cache import CachedScheduleSource
from proxy.sources.credentials import TokenProvider
from proxy.sources.gate import Throttle
from proxy.sources.graph import ScheduleSource
from proxy.sources.readiness import Readiness

if TYPE_CHECKING:
    # proxy.observability.audit reads these keys, so importing it here would be circular.
    from proxy.observability.audit import AuditTrail

SETTINGS = web.AppKey("settings", Settings)
CONSUMERS = web.AppKey("consumers", ConsumerRegistry)
GRAPH_SESSION = web.AppKey("graph_session", aiohttp.ClientSession)
TOKENS = web.AppKey("tokens", TokenProvider)
SOURCE = web.AppKey("source", ScheduleSource)
READINESS = web.AppKey("readiness", Readiness)
CONNECT = web.AppKey("connect", ConnectRuntime)
# Called with each deleted delegated connection, so caches can forget what it fetched.
CONNECTION_REMOVED = web.AppKey("connection_removed", list[ConnectionRemoved])
CACHE = web.AppKey("cache", CachedScheduleSource)
# Rendered JSON API answers, tied to the cache (proxy/memo.py).
MEMO = web.AppKey("memo", ResponseMemo)
METRICS = web.AppKey("metrics", Metrics)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
# The one throttle every Graph call passes, whichever token it carries.
GATE = web.AppKey("gate", Throttle)
WALL_CLOCK: web.AppKey[WallClock] = web.AppKey("wall_clock")
RATE_LIMITS = web.AppKey("rate_limits", TokenBuckets)
AUDIT_TRAIL: web.AppKey[AuditTrail] = web.AppKey("audit_trail")
FEEDS = web.AppKey("feeds", FeedRegistry)
