"""A circuit breaker in front of a ScheduleSource: stop asking Graph while it keeps failing.

closed    -> every call goes through; ``failures`` consecutive failed calls open it.
open      -> calls fail at once with upstream_unavailable (a cache in front may serve stale)
             until ``cool_down_s`` has passed.
half-open -> one probe call goes through, the others fail at once; the probe's success
             closes the breaker, its failure opens it again for another cool-down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import StrEnum

from proxy.core.clock import Clock
from proxy.core.errors import Code, UpstreamFailure
from proxy.core.model import ScheduleResult, Window
from proxy.core.ports import ScheduleSource
from proxy.observability.metrics import Metrics

log = logging.getLogger(__name__)

# The failure class the breaker counts: whole fetches that failed because Graph did (5xx,
# timeouts, dropped connections). Not counted: per-schedule errors inside an answer (a room
# Graph refuses says nothing about the rest), throttling (per mailbox; Retry-After and the
# budget handle it), a 4xx about the mailbox asked as, and token errors (the identity
# platform's, retried with their own backoff by the token provider).
GRAPH_FAILURES = frozenset({Code.UPSTREAM_ERROR, Code.UPSTREAM_TIMEOUT, Code.UPSTREAM_UNAVAILABLE})


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """The state machine alone, driven by an injectable clock."""

    def __init__(self, *, failures: int, cool_down_s: float, clock: Clock) -> None:
        self._threshold = failures
        self._cool_down_s = cool_down_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        # Told (seconds it stays open; 0: closed) when this breaker itself opens or closes,
        # not when a peer's news does it: how replicas share the breaker.
        self.on_change: Callable[[float], None] | None = None

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker past its cool-down reads as half-open."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self._cool_down_s
        ):
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        return self._state

    def allow(self) -> bool:
        """Whether a call may go upstream now; in half-open only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker and forget past failures."""
        if self._state is not BreakerState.CLOSED:
            log.warning("circuit breaker closed: Microsoft Graph answers again")
            if self.on_change is not None:
                self.on_change(0.0)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probing = False

    def hold_open(self, seconds: float) -> None:
        """Another replica's breaker opened: stay open for ``seconds`` (or longer, if already)."""
        if self.state is BreakerState.OPEN and self.retry_after() >= seconds:
            return
        if self._state is BreakerState.CLOSED:
            log.warning(
                "circuit breaker opened by another replica; not asking Graph for %.0f s", seconds
            )
        self._state = BreakerState.OPEN
        self._opened_at = self._clock() - self._cool_down_s + seconds
        self._probing = False

    def close_quietly(self) -> None:
        """Another replica's probe found Graph answering: close without telling anyone."""
        if self._state is not BreakerState.CLOSED:
            log.warning("circuit breaker closed: Microsoft Graph answers another replica again")
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probing = False

    def record_neutral(self) -> None:
        """A call told nothing about Graph's health (throttled, abandoned): free the probe."""
        self._probing = False

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        return max(0.0, self._opened_at + self._cool_down_s - self._clock())

    def record_failure(self) -> None:
        """A call failed: count it, and open the breaker at the threshold or after a probe."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            if self._state is BreakerState.CLOSED:
                log.warning(
                    "circuit breaker opened after %d failed calls to Microsoft Graph; "
                    "not asking it for %.0f s",
                    self._failures,
                    self._cool_down_s,
                )
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probing = False
            if self.on_change is not None:
                self.on_change(self._cool_down_s)


class BreakerScheduleSource:
    """A ScheduleSource that fails fast while its upstream keeps failing."""

    def __init__(
        self, source: ScheduleSource, breaker: CircuitBreaker, *, metrics: Metrics
    ) -> None:
        self._source = source
        self.breaker = breaker
        self._metrics = metrics
        # Read at scrape time, so an open breaker past its cool-down shows as half-open.
        self._metrics.breaker_state.set_function(lambda: _GAUGE[self.breaker.state])

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Ask the upstream unless the breaker is open; count the outcome."""
        if not self.breaker.allow():
            self._metrics.throttle_events.labels("breaker_rejected").inc()
            raise UpstreamFailure(
                "Microsoft Graph keeps failing; not asking it for a while",
                code=Code.UPSTREAM_UNAVAILABLE,
                retry_after=self.breaker.retry_after(),
            )
        try:
            results = await self._source.get_schedules(addresses, window)
        except UpstreamFailure as exc:
            if exc.code in GRAPH_FAILURES and exc.graph_failing:
                self.breaker.record_failure()
            else:
                self.breaker.record_neutral()
            raise
        except Exception:
            self.breaker.record_failure()
            raise
        except BaseException:
            self.breaker.record_neutral()
            raise
        # Graph answered: whatever it says per schedule, it is up.
        self.breaker.record_success()
        return results
