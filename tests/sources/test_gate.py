"""The per-mailbox budget and the breaker's state machine, driven by a manual clock."""

from __future__ import annotations

from proxy.core.clock import ManualClock
from proxy.sources.breaker import BreakerState, CircuitBreaker
from proxy.sources.gate import MailboxBudget


def test_budget_counts_per_mailbox_over_ten_minutes() -> None:
    """A mailbox gets ``limit`` calls in any 10 minutes; others are unaffected; it refills."""
    clock = ManualClock(start=0.0)
    budget = MailboxBudget(3, clock=clock)
    assert [budget.take("a") for _ in range(4)] == [True, True, True, False]
    assert budget.take("b")
    clock.advance(599)
    assert not budget.take("a")
    clock.advance(61 + 60)
    assert budget.take("a")


def test_budget_never_allows_more_than_limit_in_any_ten_minutes() -> None:
    """Calls spread over time: every sliding 10-minute window holds at most ``limit`` calls."""
    clock = ManualClock(start=0.0)
    budget = MailboxBudget(50, clock=clock)
    admitted: list[float] = []
    for _ in range(20_000):
        if budget.take("a"):
            admitted.append(clock())
        clock.advance(0.37)
    assert len(admitted) > 50
    j = 0
    for i, t in enumerate(admitted):
        while admitted[j] <= t - 600:
            j += 1
        assert i - j + 1 <= 50


def test_idle_mailboxes_are_forgotten() -> None:
    """Budget state is kept only for mailboxes called in the last ten minutes."""
    clock = ManualClock(start=0.0)
    budget = MailboxBudget(10, clock=clock)
    for n in range(100):
        budget.take(f"m{n}")
    clock.advance(3600)
    for _ in range(2048):
        budget.take("busy")
    assert budget.tracked() == 1


def test_breaker_cycle() -> None:
    """closed -> open at the threshold -> half-open after cool-down -> closed on success."""
    clock = ManualClock()
    breaker = CircuitBreaker(failures=3, cool_down_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow(), "only one probe at a time"
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.advance(10)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_neutral_probe_frees_the_half_open_slot() -> None:
    """A probe that says nothing about Graph (throttled, abandoned) lets the next one try."""
    clock = ManualClock()
    breaker = CircuitBreaker(failures=1, cool_down_s=5, clock=clock)
    breaker.record_failure()
    clock.advance(5)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_neutral()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
