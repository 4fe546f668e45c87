"""Typed application state keys."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from proxy.consumers import ConsumerRegistry
from proxy.feeds import FeedRegistry
from proxy.graph import ScheduleSource
from proxy.readiness import Readiness
from proxy.settings import Settings
from proxy.tokens import TokenProvider

SETTINGS = web.AppKey("settings", Settings)
CONSUMERS = web.AppKey("consumers", ConsumerRegistry)
GRAPH_SESSION = web.AppKey("graph_session", aiohttp.ClientSession)
TOKENS = web.AppKey("tokens", TokenProvider)
SOURCE = web.AppKey("source", ScheduleSource)
READINESS = web.AppKey("readiness", Readiness)
FEEDS = web.AppKey("feeds", FeedRegistry)
