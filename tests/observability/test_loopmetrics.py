"""The loop-thread counter and histogram expose what prometheus-client's own would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from proxy.observability.loopmetrics import LoopCounter, LoopHistogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.01, 0.5, 1, 10)
labels = st.sampled_from(["/v1/availability", "/healthz", "unmatched", 'quote"back\\slash'])
# Bucket bounds themselves included: an observation equal to a bound counts in that bucket.
amounts = st.one_of(
    st.sampled_from(BUCKETS), st.floats(min_value=0, max_value=100, allow_nan=False)
)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text format's lines, without the optional ``_created`` series."""
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]


@given(st.lists(st.tuples(labels, st.sampled_from(["GET", "POST"]), st.integers(1, 3))))
def test_counter_renders_like_prometheus_client(incs: list[tuple[str, str, int]]) -> None:
    """Same increments, same exposition: names, HELP, TYPE, label escaping and values."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("freebusy_x", "Things counted.", ["route", "method"])
    ours.register(loop)
    reference = Counter("freebusy_x", "Things counted.", ["route", "method"], registry=theirs)
    for route, method, amount in incs:
        loop.inc((route, method), amount)
        reference.labels(route, method).inc(amount)
    assert exposition(ours) == exposition(theirs)


@given(st.lists(st.tuples(labels, amounts)))
def test_histogram_renders_like_prometheus_client(observations: list[tuple[str, float]]) -> None:
    """Same observations, same buckets (le is <=), counts and sums."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("freebusy_seconds", "Time taken.", "route", BUCKETS)
    ours.register(loop)
    reference = Histogram(
        "freebusy_seconds", "Time taken.", ["route"], buckets=BUCKETS, registry=theirs
    )
    for route, amount in observations:
        loop.observe(route, amount)
        reference.labels(route).observe(amount)
    assert exposition(ours) == exposition(theirs)
