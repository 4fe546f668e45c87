"""Metrics counted on every request, as plain numbers, exported by a prometheus-client collector.

prometheus-client's own Counter and Histogram take a lock on every increment so any thread may
count. The proxy counts requests and cache lookups only on its event loop thread, and /metrics
is rendered on that thread too, so nothing here is shared between threads: a dict increment
and a bisect replace the locks, which on the cached path cost more than the answer. The
exported families, names and labels are what the equivalent Counter and Histogram would give.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# The exposition format's spelling of a bucket bound ("0.005", "1.0", "+Inf"); untyped upstream.
_bound_label = cast(Callable[[float], str], floatToGoString)


class LoopCounter(Collector):
    """A counter family whose label values are tuples; event loop thread only."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = list(labels)
        self.counts: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1) -> None:
        """Add ``amount`` to the series with these label values."""
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + amount

    def collect(self) -> Iterator[Metric]:
        """The family as it stands, for a scrape."""
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for labels, value in self.counts.items():
            family.add_metric(list(labels), value)
        yield family


class LoopHistogram(Collector):
    """A histogram family with one label, on fixed buckets; event loop thread only."""

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._label = label
        self._bounds = tuple(sorted(buckets))
        # Per label value: a count per bucket (the last one is +Inf), and the sum.
        self._series: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, value: str, amount: float) -> None:
        """Count one observation of ``amount`` in the series for label value ``value``."""
        series = self._series.get(value)
        if series is None:
            series = self._series[value] = ([0] * (len(self._bounds) + 1), [0.0])
        counts, total = series
        # bisect_left: an observation equal to a bound belongs to that bucket (le is <=).
        counts[bisect_left(self._bounds, amount)] += 1
        total[0] += amount

    def collect(self) -> Iterator[Metric]:
        """The family as it stands, for a scrape (cumulative buckets, as exposition wants)."""
        family = HistogramMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, (counts, total) in self._series.items():
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip((*self._bounds, float("inf")), counts, strict=True):
                running += count
                buckets.append((_bound_label(bound), running))
            family.add_metric([value], buckets, sum_value=total[0])
        yield family
