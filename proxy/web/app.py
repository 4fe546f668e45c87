"""The app factory: wires validated settings into routes and resources; does no I/O itself.

Resources that need the event loop (the Graph session, credentials, connections, the source
chain and the availability service in front of it) are opened once, in dependency order, by
one cleanup context, and closed in reverse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web

from proxy.access.consumers import ConsumerRegistry
from proxy.access.feeds import FeedRegistry
from proxy.access.rate import TokenBuckets
from proxy.availability.memo import ResponseMemo
from proxy.availability.service import Availability
from proxy.config.schema import ServerSettings, Settings
from proxy.connect.runtime import open_connect
from proxy.core.clock import MONOTONIC, Clock, SystemWallClock, WallClock
from proxy.core.ports import RateLimiter
from proxy.core.zones import known_zone_names
from proxy.observability.audit import AuditTrail
from proxy.observability.logs import http_logger
from proxy.observability.looplag import LoopLag
from proxy.observability.metrics import Metrics
from proxy.sources.chain import build_chain, forwarding
from proxy.sources.credentials import MsalAppTokens
from proxy.sources.tls import client_ssl_context
from proxy.web.access_log import AccessLogger
from proxy.web.envelope import Envelope
from proxy.web.keys import (
    AVAILABILITY,
    CHAIN,
    CONNECT,
    CONSUMERS,
    FEEDS,
    LOOP_LAG,
    METRICS,
    SETTINGS,
    WALL_CLOCK,
)
from proxy.web.routes import setup_routes


def init_app(
    settings: Settings, *, clock: Clock = MONOTONIC, wall_clock: WallClock | None = None
) -> web.Application:
    """Build the proxy application from validated settings (``clock``, ``wall_clock``: tests)."""
    wall_clock = wall_clock or SystemWallClock()
    app = web.Application(client_max_size=settings.server.client_max_size)
    app[SETTINGS] = settings
    app[CONSUMERS] = ConsumerRegistry(settings.consumers)
    app[FEEDS] = FeedRegistry(settings.feeds, app[CONSUMERS])
    app[METRICS] = Metrics()
    app[WALL_CLOCK] = wall_clock
    app[LOOP_LAG] = LoopLag(app[METRICS].loop_lag, app[METRICS].loop_lag_max)
    trail = AuditTrail(settings.audit, wall_clock)
    envelope = Envelope(trail=trail, metrics=app[METRICS], cors=settings.cors)
    app.cleanup_ctx.append(partial(_audit_trail, trail))
    app.cleanup_ctx.append(_loop_lag)
    app.cleanup_ctx.append(partial(_resources, clock=clock))
    setup_routes(
        app,
        envelope,
        connect_routes=bool(settings.connect.kinds),
        cluster_routes=forwarding(settings),
    )
    return app


async def _audit_trail(trail: AuditTrail, app: web.Application) -> AsyncIterator[None]:
    """Open the audit trail for the app's lifetime (first, so nothing goes unrecorded)."""
    trail.open()
    try:
        yield
    finally:
        trail.close()


async def _loop_lag(app: web.Application) -> AsyncIterator[None]:
    """Observe the event loop's lag for the app's lifetime (see /metrics)."""
    lag = app[LOOP_LAG]
    lag.start()
    try:
        yield
    finally:
        lag.stop()


async def _resources(app: web.Application, *, clock: Clock) -> AsyncIterator[None]:
    """Open what requests need, each once: session, credentials, connections, chain, service."""
    settings, metrics = app[SETTINGS], app[METRICS]
    # Read the zone table now, off the loop, rather than in the first request naming a zone.
    await asyncio.to_thread(known_zone_names)
    async with AsyncExitStack() as resources:
        session = await resources.enter_async_context(_graph_session(settings, metrics))
        app_tokens = None
        if settings.connect.application_permissions:
            app_tokens = MsalAppTokens(
                authority=settings.graph.authority,
                tenant_id=settings.graph.tenant_id,
                client_id=settings.graph.client_id,
                client_secret=settings.graph.client_secret or "",
                ca_file=settings.graph.ca_file,
                timeout_seconds=settings.graph.timeout_seconds,
                clock=clock,
            )
            resources.push_async_callback(app_tokens.close)
        connections = None
        if settings.connect.kinds:
            connect = await resources.enter_async_context(
                open_connect(settings, session, clock=clock, wall_clock=app[WALL_CLOCK])
            )
            app[CONNECT] = connect
            connections = connect.connections
        cluster = None
        rate: RateLimiter = TokenBuckets(clock)
        if settings.cluster.redis_url is not None:
            # Imported only here: without [cluster], Redis' client is never loaded.
            from proxy.cluster.link import ClusterLink
            from proxy.cluster.shared_rate import SharedRate

            cluster = ClusterLink(settings.cluster, metrics=metrics, clock=clock)
            resources.push_async_callback(cluster.close)
            rate = SharedRate(cluster, fallback=rate)
        chain = build_chain(
            settings,
            session=session,
            app_tokens=app_tokens,
            connections=connections,
            clock=clock,
            metrics=metrics,
            cluster=cluster,
            wall_clock=app[WALL_CLOCK],
        )
        if cluster is not None:
            # After the chain: its pieces hear what happened while this replica was away.
            await cluster.start()
        app[CHAIN] = chain
        availability = Availability(
            chain=chain.cache,
            memo=ResponseMemo(chain.cache, clock=clock),
            rate=rate,
            limits=settings.limits,
            wall_clock=app[WALL_CLOCK],
            metrics=metrics,
        )
        app[AVAILABILITY] = availability
        if connections is not None:
            connections.on_removed.append(availability.forget_connection)
        yield


def _graph_session(settings: Settings, metrics: Metrics) -> aiohttp.ClientSession:
    """One ClientSession for all Graph traffic (closed with the app)."""
    graph = settings.graph
    connector = aiohttp.TCPConnector(
        ssl=client_ssl_context(graph.ca_file), limit=100, limit_per_host=100
    )
    timeout = aiohttp.ClientTimeout(total=graph.timeout_seconds, connect=5)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        raise_for_status=False,
        trace_configs=[metrics.trace_config()],
    )


def runner_kwargs(server: ServerSettings) -> dict[str, Any]:
    """Keyword arguments for aiohttp's AppRunner (and TestServer) that every entry point shares.

    aiohttp enforces the parser limits while parsing, before any of our code runs: an
    over-long request line (query string included), header or header count is answered by
    aiohttp itself with a plain-text 400. Its log line about it goes to a redacted logger.

    aiohttp's keep-alive timer runs from a connection's start (and from each answer) until a
    whole request has arrived, so it is the header timeout: a client dribbling its headers
    (or idling between requests) is cut off once it runs out. After an answer sent before the
    body was read (an error, a 408), what is left of the body is read and dropped for at most
    the body timeout (aiohttp's default: 10 s), so the client still gets the answer.
    """
    return {
        "access_log_class": AccessLogger,
        "keepalive_timeout": server.header_timeout_seconds,
        "lingering_time": min(10.0, server.body_timeout_seconds),
        "max_line_size": server.max_line_size,
        "max_field_size": server.max_field_size,
        "max_headers": server.max_headers,
        "logger": http_logger(),
    }
