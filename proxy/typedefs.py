"""Typed application state keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from proxy.consumers import ConsumerRegistry
from proxy.graph import ScheduleSource
from proxy.readiness import Readiness
from proxy.settings import Settings
from proxy.tokens import TokenProvider

if TYPE_CHECKING:
    # proxy.audit reads these keys, so importing it here would be circular.
    from proxy.audit import AuditTrail
    from proxy.clock import Clock
    from proxy.ratelimit import TokenBuckets

SETTINGS = web.AppKey("settings", Settings)
CONSUMERS = web.AppKey("consumers", ConsumerRegistry)
GRAPH_SESSION = web.AppKey("graph_session", aiohttp.ClientSession)
TOKENS = web.AppKey("tokens", TokenProvider)
SOURCE = web.AppKey("source", ScheduleSource)
READINESS = web.AppKey("readiness", Readiness)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
RATE_LIMITS: web.AppKey[TokenBuckets] = web.AppKey("rate_limits")
AUDIT_TRAIL: web.AppKey[AuditTrail] = web.AppKey("audit_trail")
