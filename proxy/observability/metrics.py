"""Prometheus metrics: one registry per app, labels that never carry personal data.

Labels are route templates, HTTP methods and statuses, our own outcome and event names, and
never an address, a subject, a key or a URL with a mailbox in it.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from proxy.observability.loopmetrics import LoopCounter, LoopHistogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 3, 5, 10, 15, 20, 40, 100)
# Fine up to 50 ms: p99 and the worst stall are read from it (bench/run.py).
_LAG_BUCKETS = (
    *(0.001, 0.002, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025),
    *(0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0),
)
_GET_SCHEDULE_SUFFIX = "/calendar/getSchedule"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method as labels and log lines name it: a standard one, or "other"."""
    # Any token is a valid HTTP method: unknown ones share one name, so a client cannot grow
    # label sets or write words of its choosing into the logs.
    return method if method in _METHODS else "other"


class Metrics:
    """Every metric the proxy exports, registered in a registry of its own."""

    def __init__(self) -> None:
        # A registry per app: tests and benchmarks build many apps in one process.
        self.registry = CollectorRegistry()
        r = self.registry
        # Counted on every request: plain numbers, exported at scrape time (loopmetrics).
        self.requests = LoopCounter(
            "freebusy_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
        )
        self.request_seconds = LoopHistogram(
            "freebusy_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            "route",
            _LATENCY_BUCKETS,
        )
        self.cache_lookups = LoopCounter(
            "freebusy_cache_lookups",
            "Mailbox-day lookups: hit, miss (fetched), coalesced (joined a fetch in flight), "
            "stale (served past its freshness).",
            ["result"],
        )
        # A consumer's configured name is an operator's label, never personal data.
        self.consumer_requests = LoopCounter(
            "freebusy_consumer_requests",
            "Consumer requests by consumer name and admission: admitted, rate_limited, "
            "refused (allowlist or limits).",
            ["consumer", "outcome"],
        )
        for collector in (
            self.requests,
            self.request_seconds,
            self.cache_lookups,
            self.consumer_requests,
        ):
            r.register(collector)
        self._upstream_children: dict[tuple[str, str], Any] = {}
        self._upstream_histograms: dict[str, Any] = {}
        self.upstream_calls = Counter(
            "freebusy_upstream_calls",
            "HTTP calls to Microsoft Graph, by endpoint and outcome (HTTP status or transport).",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "freebusy_upstream_call_duration_seconds",
            "Duration of HTTP calls to Microsoft Graph, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_entries = Gauge(
            "freebusy_cache_entries", "Mailbox-days held in the cache.", registry=r
        )
        self.batch_schedules = Histogram(
            "freebusy_batch_schedules",
            "Schedules per batched upstream fetch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_callers = Histogram(
            "freebusy_batch_callers",
            "Fetches folded into one batched upstream fetch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.throttle_events = Counter(
            "freebusy_throttle_events",
            "Throttling events: upstream_429, mailbox_budget (call refused locally), "
            "mailbox_wait, global_wait (queued for a slot), breaker_rejected.",
            ["event"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "freebusy_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 10 ms: what any request may wait.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.loop_lag_max = Gauge(
            "freebusy_event_loop_lag_max_seconds",
            "The longest the event loop was held since start.",
            registry=r,
        )
        self.breaker_state = Gauge(
            "freebusy_breaker_state",
            "Circuit breaker in front of Graph: 0 closed, 1 half-open, 2 open.",
            registry=r,
        )

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its duration."""
        self.requests.inc((route, method_label(method), str(status)))
        self.request_seconds.observe(route, seconds)

    def consumer_counts(self, name: str) -> dict[str, int]:
        """Requests of the consumer ``name`` by admission outcome, as counted for /metrics."""
        return {
            outcome: int(count)
            for (consumer, outcome), count in self.consumer_requests.counts.items()
            if consumer == name
        }

    def economy(self) -> dict[str, Any]:
        """What Graph cost so far, read from the very counters /metrics exports."""
        calls: dict[str, int] = {}
        for (endpoint, outcome), count in _counter_values(self.upstream_calls).items():
            if endpoint == "getSchedule":
                calls[outcome] = calls.get(outcome, 0) + count
        lookups = {result: int(n) for (result,), n in self.cache_lookups.counts.items()}
        total = sum(lookups.values())
        batches, schedules = _histogram_totals(self.batch_schedules)
        return {
            "get_schedule_calls": calls,
            "cache_lookups": lookups,
            "cache_hit_rate": None if total == 0 else lookups.get("hit", 0) / total,
            "cache_entries": int(_gauge_value(self.cache_entries)),
            "throttle_events": {
                event: count for (event,), count in _counter_values(self.throttle_events).items()
            },
            "breaker_state": _BREAKER_STATES.get(int(_gauge_value(self.breaker_state)), "closed"),
            "batches": batches,
            "schedules_per_batch": None if batches == 0 else schedules / batches,
        }

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def trace_config(self) -> aiohttp.TraceConfig:
        """Client tracing that counts Graph calls by outcome without looking at their URLs."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        trace.on_request_end.append(self._on_request_end)
        trace.on_request_exception.append(self._on_request_exception)
        return trace

    async def _on_request_start(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        context.started = time.perf_counter()
        # The path names a mailbox: only a fixed endpoint name leaves this function.
        context.endpoint = (
            "getSchedule" if params.url.path.endswith(_GET_SCHEDULE_SUFFIX) else "other"
        )

    async def _on_request_end(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        status = params.response.status
        self._observe(context, str(status))
        if status == 429:
            self.throttle_events.labels("upstream_429").inc()

    async def _on_request_exception(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        self._observe(context, "transport_error")

    def _observe(self, context: SimpleNamespace, outcome: str) -> None:
        endpoint = getattr(context, "endpoint", "other")
        key = (endpoint, outcome)
        # Labelled children looked up once (labels() costs more than the increment); the
        # keys are two endpoint names times HTTP statuses and "transport_error".
        counter = self._upstream_children.get(key)
        if counter is None:
            counter = self._upstream_children[key] = self.upstream_calls.labels(*key)
        counter.inc()
        started = getattr(context, "started", None)
        if started is not None:
            histogram = self._upstream_histograms.get(endpoint)
            if histogram is None:
                histogram = self.upstream_seconds.labels(endpoint)
                self._upstream_histograms[endpoint] = histogram
            histogram.observe(time.perf_counter() - started)


_BREAKER_STATES = {0: "closed", 1: "half_open", 2: "open"}


def _counter_values(counter: Counter) -> dict[tuple[str, ...], int]:
    """A labelled Counter's totals by label values, as a scrape reads them."""
    values: dict[tuple[str, ...], int] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                values[tuple(sample.labels.values())] = int(sample.value)
    return values


def _gauge_value(gauge: Gauge) -> float:
    """A Gauge's value as a scrape reads it (set_function gauges included)."""
    for family in gauge.collect():
        for sample in family.samples:
            return float(sample.value)
    return 0.0


def _histogram_totals(histogram: Histogram) -> tuple[int, float]:
    """An unlabelled Histogram's observation count and sum."""
    count, total = 0, 0.0
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count = int(sample.value)
            elif sample.name.endswith("_sum"):
                total = float(sample.value)
    return count, total
