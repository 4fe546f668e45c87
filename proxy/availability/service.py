"""The one path every consumer-facing route takes to availability: authorize, fetch, shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from proxy.access.consumers import Consumer, ConsumerRegistry
from proxy.core.model import ScheduleResult, Window
from proxy.core.policy import apply_policy, check_request, fetch_window
from proxy.observability.audit_record import note_request
from proxy.web.keys import RATE_LIMITS, SETTINGS, SOURCE, WALL_CLOCK


async def lookup(
    app: web.Application, consumer: Consumer, schedules: Sequence[str], window: Window
) -> Mapping[str, ScheduleResult]:
    """Results for every requested address, keyed by its case-folded form.

    Raises Forbidden before any upstream call when the consumer may not see an address.
    Duplicates (in any letter case) are fetched once.
    Also enforces the consumer's rate (RateLimited) and limits (BadRequest) before any
    upstream call, and shapes every result by the consumer's privacy policy.
    """
    note_request(schedules, window)
    policy = consumer.policy
    app[RATE_LIMITS].take(consumer.name, policy.rate_per_minute)
    ConsumerRegistry.authorize(consumer, schedules)
    limits = app[SETTINGS].limits
    check_request(
        policy,
        schedules=schedules,
        window=window,
        now=app[WALL_CLOCK].now(),
        max_window_days=limits.max_window_days,
        max_schedules=limits.max_schedules,
    )
    unique = list({address.casefold(): address for address in schedules}.values())
    # The source stays policy-neutral (a cache in front of it serves every consumer).
    results = await app[SOURCE].get_schedules(unique, fetch_window(policy, window))
    return {key: apply_policy(result, policy, window) for key, result in results.items()}
