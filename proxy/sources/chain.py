"""The one builder of the source chain: everything between the availability service and Graph.

Read top to bottom, it is what sits in front of Graph::

    cache (+ singleflight) -> micro-batching -> circuit breaker -> router -> Graph -> gate -> tokens

The chain is policy-neutral: one cache serves every consumer, and the availability service
applies each consumer's policy to what comes out of it.

With ``[cluster]`` set, replicas share through Redis: a second cache tier between the cache
and batching (days one replica fetched are hits on every other; misses are fetched once),
the breaker's state, and the gate (leased mailbox slots, the budget, Retry-After holds),
each falling back to this process's own pieces, at 1/fallback_replicas of the limits, while
Redis is unreachable::

    cache -> shared days -> forwarding -> batching -> breaker (shared) -> router -> Graph
          -> shared gate

Forwarding sends a miss whose window another replica owns to that replica, whose batching
folds it with its own: the cluster's misses share calls as one process's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from proxy.config.schema import Settings
from proxy.core.clock import Clock, SystemWallClock, WallClock
from proxy.core.ports import CallGate, ConnectionDirectory, ScheduleSource, TokenProvider
from proxy.observability.metrics import Metrics
from proxy.sources.batching import BatchingScheduleSource
from proxy.sources.breaker import BreakerScheduleSource, CircuitBreaker
from proxy.sources.cache import CachedScheduleSource
from proxy.sources.gate import Throttle
from proxy.sources.graph import GraphScheduleSource, RetryPolicy
from proxy.sources.readiness import Readiness
from proxy.sources.router import RoutingScheduleSource

SYSTEM_WALL_CLOCK = SystemWallClock()

if TYPE_CHECKING:
    # Imported where used: without [cluster], Redis' client is never loaded.
    from proxy.cluster.forwarding import Forwarder
    from proxy.cluster.link import ClusterLink
    from proxy.cluster.members import Members


@dataclass(frozen=True, kw_only=True)
class Chain:
    """The chain as built: its front, and the links that others watch."""

    cache: CachedScheduleSource
    breaker: CircuitBreaker
    gate: CallGate
    readiness: Readiness
    # The batching every fetch of this process goes through (forwarded ones included).
    batcher: BatchingScheduleSource
    # The Redis link replicas share through, when [cluster] is set.
    cluster: ClusterLink | None = None
    # With [cluster] forward_misses: who owns which window, and the link sending misses there.
    members: Members | None = None
    forwarder: Forwarder | None = None


def build_chain(
    settings: Settings,
    *,
    session: aiohttp.ClientSession,
    app_tokens: TokenProvider | None,
    connections: ConnectionDirectory | None,
    clock: Clock,
    metrics: Metrics,
    cluster: ClusterLink | None = None,
    wall_clock: WallClock = SYSTEM_WALL_CLOCK,
) -> Chain:
    """Build the chain in front of Graph for these settings.

    ``app_tokens``: application credentials, or None when only delegated connections may be
    used; ``connections``: the delegated connections, or None when connecting is off;
    ``cluster``: the Redis link when [cluster] is set.
    """
    graph = settings.graph
    throttle = settings.throttle
    retry = RetryPolicy(max_retries=graph.max_retries, deadline_s=graph.timeout_seconds)
    # Graph throttles per app and mailbox whatever the token: one gate for every call.
    gate: CallGate
    if cluster is None:
        gate = Throttle(
            mailbox_concurrency=graph.mailbox_concurrency,
            max_concurrency=throttle.max_concurrency,
            mailbox_budget=throttle.mailbox_budget,
            clock=clock,
            metrics=metrics,
        )
    else:
        from proxy.cluster.shared_gate import SharedGate

        share = cluster.fallback_replicas
        gate = SharedGate(
            cluster,
            fallback=Throttle(
                mailbox_concurrency=max(1, graph.mailbox_concurrency // share),
                max_concurrency=throttle.max_concurrency,
                mailbox_budget=max(1, throttle.mailbox_budget // share),
                clock=clock,
                metrics=metrics,
            ),
            mailbox_concurrency=graph.mailbox_concurrency,
            mailbox_budget=throttle.mailbox_budget,
            max_concurrency=throttle.max_concurrency,
            metrics=metrics,
        )
        # A lease must outlive every call holding it: each attempt is cut off in time.
        retry = RetryPolicy(
            max_retries=graph.max_retries,
            deadline_s=graph.timeout_seconds,
            attempt_s=settings.cluster.lease_seconds,
        )

    def graph_for(tokens: TokenProvider, me: str | None = None) -> ScheduleSource:
        return GraphScheduleSource(
            session=session,
            tokens=tokens,
            base_url=graph.base_url,
            retry=retry,
            gate=gate,
            clock=clock,
            me_address=me,
        )

    application = None if app_tokens is None else graph_for(app_tokens)
    if connections is not None:
        upstream: ScheduleSource = RoutingScheduleSource(
            connections=connections, graph_for=graph_for, application=application
        )
    elif application is not None:
        upstream = application
    else:
        raise ValueError("no application credentials and no connections: nothing to ask")
    breaker = CircuitBreaker(
        failures=settings.throttle.breaker_failures,
        cool_down_s=settings.throttle.breaker_cool_down_seconds,
        clock=clock,
    )
    batcher = BatchingScheduleSource(
        BreakerScheduleSource(upstream, breaker, metrics=metrics),
        wait_s=settings.batching.wait_ms / 1000,
        max_schedules=settings.batching.max_schedules,
        metrics=metrics,
    )
    batched: ScheduleSource = batcher
    tier = members = forwarder = None
    if cluster is not None:
        from proxy.cluster.shared_breaker import BreakerShare
        from proxy.cluster.shared_days import SharedDays

        BreakerShare(cluster, breaker)
        if forwarding(settings):
            from proxy.cluster.forwarding import Forwarder, signing_key
            from proxy.cluster.members import Members

            members = Members(cluster, clock=clock, metrics=metrics)
            batched = forwarder = Forwarder(
                batcher,
                members,
                key=signing_key(settings.cluster.cluster_key or ""),
                wall_clock=wall_clock,
                # The owner's batch waits forward_wait_ms, its fetch is cut off at Graph's
                # timeout: past both (and a second), this replica fetches instead.
                timeout_s=graph.timeout_seconds + settings.cluster.forward_wait_ms / 1000 + 1,
                wait_s=settings.cluster.forward_wait_ms / 1000,
                max_schedules=settings.batching.max_schedules,
                metrics=metrics,
            )
            cluster.on_close.append(forwarder.close)
        batched = tier = SharedDays(batched, cluster, ttl_s=settings.cache.ttl_seconds)
    cache = CachedScheduleSource(
        batched,
        ttl_s=settings.cache.ttl_seconds,
        max_entries=settings.cache.max_entries,
        max_unknown=settings.cache.max_unknown_mailboxes,
        stale_max_age_s=settings.cache.stale_max_age_seconds,
        min_fetch_days=settings.cache.min_fetch_days,
        clock=clock,
        metrics=metrics,
    )
    if tier is not None:
        tier.attach(cache)
        cache.forget_hooks.append(tier.forgotten)
    readiness = Readiness(tokens=app_tokens, session=session, base_url=graph.base_url, clock=clock)
    return Chain(
        cache=cache,
        breaker=breaker,
        gate=gate,
        readiness=readiness,
        batcher=batcher,
        cluster=cluster,
        members=members,
        forwarder=forwarder,
    )


def forwarding(settings: Settings) -> bool:
    """Whether replicas forward misses to their window's owner: [cluster] with
    forward_misses, and no connections in SQLite (which only their own replica can use)."""
    cluster, connect = settings.cluster, settings.connect
    local_connections = bool(connect.kinds) and connect.storage_url is None
    return cluster.redis_url is not None and cluster.forward_misses and not local_connections
