"""Interval arithmetic over minimized items: merging, and the busy periods a view shows."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from proxy.core.model import BusyItem, Status


def merge(items: Iterable[BusyItem]) -> list[BusyItem]:
    """Merge sorted same-status items that overlap or touch into single intervals."""
    merged: list[BusyItem] = []
    last: dict[Status, int] = {}  # status -> index in merged of its latest interval
    for item in sorted(items):
        index = last.get(item.status)
        if index is not None and item.start <= merged[index].end:
            if item.end > merged[index].end:
                merged[index] = BusyItem(
                    start=merged[index].start, end=item.end, status=item.status
                )
            continue
        last[item.status] = len(merged)
        merged.append(item)
    return sorted(merged)


def busy_periods(
    items: Iterable[BusyItem], statuses: Collection[Status]
) -> list[tuple[datetime, datetime]]:
    """Intervals covered by items whose status is in ``statuses``; overlapping and touching
    intervals merged, sorted."""
    busy = [
        BusyItem(start=i.start, end=i.end, status=Status.BUSY)
        for i in items
        if i.status in statuses
    ]
    return [(item.start, item.end) for item in merge(busy)]
