"""The app factory: wires settings, resources and routes; does no I/O itself."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from proxy.access.consumers import ConsumerRegistry
from proxy.access.feeds import FeedRegistry
from proxy.access.rate import TokenBuckets
from proxy.availability.memo import ResponseMemo
from proxy.config.schema import CLIENT_SECRET_ENV, Settings
from proxy.connect.store import Connection
from proxy.core.clock import MONOTONIC, Clock, SystemWallClock, WallClock
from proxy.core.errors import ConfigError
from proxy.observability.audit import audit_trail_ctx, check_audit_settings
from proxy.observability.metrics import Metrics
from proxy.sources.batching import BatchingScheduleSource
from proxy.sources.breaker import BreakerScheduleSource, CircuitBreaker
from proxy.sources.cache import CachedScheduleSource
from proxy.sources.credentials import MsalAppTokens
from proxy.sources.gate import Throttle
from proxy.sources.graph import GraphScheduleSource, RetryPolicy, ScheduleSource
from proxy.sources.readiness import Readiness
from proxy.sources.tls import client_ssl_context
from proxy.web.connect.setup import check_connect_config, connect_context, install_connect_routes
from proxy.web.envelope import Envelope
from proxy.web.keys import (
    CACHE,
    CLOCK,
    CONNECTION_REMOVED,
    CONSUMERS,
    FEEDS,
    GATE,
    GRAPH_SESSION,
    MEMO,
    METRICS,
    RATE_LIMITS,
    READINESS,
    SETTINGS,
    SOURCE,
    TOKENS,
    WALL_CLOCK,
)
from proxy.web.routes import setup_routes


def init_app(
    settings: Settings, *, clock: Clock = MONOTONIC, wall_clock: WallClock | None = None
) -> web.Application:
    """Build the proxy application from validated settings (``clock``, ``wall_clock``: tests)."""
    if settings.graph.client_secret is None:
        raise ConfigError(f"set {CLIENT_SECRET_ENV} to the app registration's client secret")
    app = web.Application(client_max_size=settings.server.client_max_size)
    app[SETTINGS] = settings
    app[CONSUMERS] = ConsumerRegistry(settings.consumers)
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    # No aiohttp middleware: every route is registered through the envelope (proxy.web.envelope).
    envelope = Envelope(app, app[METRICS])
    app[WALL_CLOCK] = wall_clock or SystemWallClock()
    app[RATE_LIMITS] = TokenBuckets(clock)
    app.cleanup_ctx.append(audit_trail_ctx)
    app[FEEDS] = FeedRegistry(settings.feeds, app[CONSUMERS])
    app.cleanup_ctx.append(_graph_session)
    app.cleanup_ctx.append(_tokens)
    app.cleanup_ctx.append(_schedule_source)
    if settings.connect.kinds:
        check_connect_config(settings)
        app.cleanup_ctx.append(connect_context)
        install_connect_routes(app, envelope)
    # Last, so the cache sits in front of whatever source the steps above settled on.
    app.cleanup_ctx.append(_frugal)
    check_audit_settings(settings.audit)
    setup_routes(app, envelope)
    return app


async def _graph_session(app: web.Application) -> AsyncIterator[None]:
    """One ClientSession for all Graph traffic, closed on shutdown."""
    graph = app[SETTINGS].graph
    connector = aiohttp.TCPConnector(
        ssl=client_ssl_context(graph.ca_file), limit=100, limit_per_host=100
    )
    timeout = aiohttp.ClientTimeout(total=graph.timeout_seconds, connect=5)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        raise_for_status=False,
        trace_configs=[app[METRICS].trace_config()],
    ) as session:
        app[GRAPH_SESSION] = session
        yield


async def _tokens(app: web.Application) -> AsyncIterator[None]:
    """The msal-backed token provider (client credentials)."""
    graph = app[SETTINGS].graph
    assert graph.client_secret is not None
    tokens = MsalAppTokens(
        authority=graph.authority,
        tenant_id=graph.tenant_id,
        client_id=graph.client_id,
        client_secret=graph.client_secret,
        ca_file=graph.ca_file,
        timeout_seconds=graph.timeout_seconds,
    )
    app[TOKENS] = tokens
    yield
    await tokens.close()


async def _schedule_source(app: web.Application) -> AsyncIterator[None]:
    """Where availability comes from, and the readiness probe that watches it."""
    graph = app[SETTINGS].graph
    app[GATE] = graph_gate(app[SETTINGS], app[CLOCK], app[METRICS])
    app[SOURCE] = GraphScheduleSource(
        session=app[GRAPH_SESSION],
        tokens=app[TOKENS],
        base_url=graph.base_url,
        retry=RetryPolicy(max_retries=graph.max_retries, deadline_s=graph.timeout_seconds),
        mailbox_limiter=app[GATE],
    )
    app[READINESS] = Readiness(
        tokens=app[TOKENS], session=app[GRAPH_SESSION], base_url=graph.base_url
    )
    yield


async def _frugal(app: web.Application) -> AsyncIterator[None]:
    """Put the cache, batching and breaker in front of the source; forget on disconnect."""
    cache = frugal_source(app[SOURCE], app[SETTINGS], app[CLOCK], app[METRICS])
    app[SOURCE] = app[CACHE] = cache
    memo = app[MEMO] = ResponseMemo(cache, clock=app[CLOCK])
    if CONNECTION_REMOVED in app:

        async def forget(connection: Connection) -> None:
            # Everything that connection could have fetched: its account, or its domains.
            cached = {key[0] for key, _ in cache.entries()}
            cache.forget(
                [connection.account]
                if connection.kind == "individual"
                else [a for a in cached if a.rpartition("@")[2] in connection.domains]
            )
            memo.clear()

        app[CONNECTION_REMOVED].append(forget)
    yield


def frugal_source(
    graph: ScheduleSource, settings: Settings, clock: Clock, metrics: Metrics
) -> CachedScheduleSource:
    """Cache (with singleflight) -> micro-batching -> circuit breaker -> ``graph``."""
    breaker = CircuitBreaker(
        failures=settings.throttle.breaker_failures,
        cool_down_s=settings.throttle.breaker_cool_down_seconds,
        clock=clock,
    )
    batched = BatchingScheduleSource(
        BreakerScheduleSource(graph, breaker, metrics=metrics),
        wait_s=settings.batching.wait_ms / 1000,
        max_schedules=settings.batching.max_schedules,
        metrics=metrics,
    )
    return CachedScheduleSource(
        batched,
        ttl_s=settings.cache.ttl_seconds,
        max_entries=settings.cache.max_entries,
        stale_max_age_s=settings.cache.stale_max_age_seconds,
        min_fetch_days=settings.cache.min_fetch_days,
        clock=clock,
        metrics=metrics,
    )


def graph_gate(settings: Settings, clock: Clock, metrics: Metrics) -> Throttle:
    """The throttle every Graph call holds: budget, 4 per mailbox, a global limit."""
    return Throttle(
        mailbox_concurrency=settings.graph.mailbox_concurrency,
        max_concurrency=settings.throttle.max_concurrency,
        mailbox_budget=settings.throttle.mailbox_budget,
        clock=clock,
        metrics=metrics,
    )


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without query string, status, duration.

    Query strings carry addresses and keys could appear in headers, so neither is logged.
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the access line."""
        self.logger.info(
            "%s %s %d %.1fms", request.method, request.path, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        """Log only when INFO is on."""
        return self.logger.isEnabledFor(logging.INFO)


def run_kwargs() -> dict[str, Any]:
    """Keyword arguments for web.run_app / AppRunner that every entry point shares."""
    return {"access_log_class": AccessLogger}
