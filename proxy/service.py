"""The one path every consumer-facing route takes to availability: authorize, fetch, shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from proxy.consumers import Consumer, ConsumerRegistry
from proxy.model import ScheduleResult, Window
from proxy.typedefs import SOURCE


async def lookup(
    app: web.Application, consumer: Consumer, schedules: Sequence[str], window: Window
) -> Mapping[str, ScheduleResult]:
    """Results for every requested address, keyed by its case-folded form.

    Raises Forbidden before any upstream call when the consumer may not see an address.
    Duplicates (in any letter case) are fetched once.
    """
    ConsumerRegistry.authorize(consumer, schedules)
    unique = list({address.casefold(): address for address in schedules}.values())
    return await app[SOURCE].get_schedules(unique, window)
