"""Interval arithmetic over minimized items: merging, and the busy periods a view shows."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
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


Span = tuple[datetime, datetime]
"""A half-open interval [start, end) of aware datetimes."""


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """The union of the spans as sorted, disjoint spans; overlapping and touching ones joined."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract_spans(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    """What of ``spans`` no span of ``holes`` covers; both sorted and disjoint, and so is this."""
    out: list[Span] = []
    index, count = 0, len(holes)
    for start, end in spans:
        # Holes that end before this span starts can end no later span either.
        while index < count and holes[index][1] <= start:
            index += 1
        cursor = start
        probe = index
        while probe < count and holes[probe][0] < end:
            hole_start, hole_end = holes[probe]
            if hole_start > cursor:
                out.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            probe += 1
        if cursor < end:
            out.append((cursor, end))
    return out
