"""Minimized items as flat integers: what replicas store in Redis and send each other.

Each item is three integers: start and end as microseconds after an origin (a day's midnight,
a window's start) and a status number. Nothing else of an item exists to be packed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from proxy.core.model import BusyItem, Status

# Status numbers: append only (stored days and replicas of other versions read them).
STATUSES = (
    Status.FREE,
    Status.TENTATIVE,
    Status.BUSY,
    Status.OOF,
    Status.WORKING_ELSEWHERE,
    Status.UNKNOWN,
)
_STATUS_NUMBER = {status: number for number, status in enumerate(STATUSES)}
_TICK = timedelta(microseconds=1)


def pack_items(items: Iterable[BusyItem], origin: datetime) -> list[int]:
    """Start and end offsets from ``origin`` in microseconds, and a status number, per item."""
    flat: list[int] = []
    for item in items:
        flat += (
            (item.start - origin) // _TICK,
            (item.end - origin) // _TICK,
            _STATUS_NUMBER[item.status],
        )
    return flat


def unpack_items(flat: list[int], origin: datetime, span: timedelta) -> tuple[BusyItem, ...]:
    """The items pack_items() packed; ValueError unless each lies within ``span`` of
    ``origin``, ends after it starts and has a known status."""
    if len(flat) % 3:
        raise ValueError("not packed items")
    limit = span // _TICK
    items = []
    for index in range(0, len(flat), 3):
        start, end, number = flat[index : index + 3]
        if not 0 <= number < len(STATUSES) or not 0 <= start < end <= limit:
            raise ValueError("not packed items")
        items.append(BusyItem(origin + start * _TICK, origin + end * _TICK, STATUSES[number]))
    return tuple(items)
