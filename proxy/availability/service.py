"""The availability service: every per-request duty between a consumer and the source chain.

Every consumer route (the JSON API, each dialect, the feed, the slot search) asks through one
service object, built once with its collaborators. A question is admitted before anything is
fetched or sent (audit record, rate, what kind of question the key may ask, allowlist,
limits, in that order), then answered from the policy-neutral chain with the consumer's
policy applied. An answer the memo holds is admitted again before it is sent: its rate
charged and its window judged against the time as a new question's are; what its first
admission settled for the very same consumer (allowlist, size, cost) stands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Literal, NamedTuple

from proxy.access.consumers import Consumer, ConsumerRegistry
from proxy.availability.memo import MemoKey, ResponseMemo
from proxy.config.schema import LimitSettings
from proxy.core.clock import WallClock
from proxy.core.connections import Connection
from proxy.core.errors import Code, Forbidden, ProblemError, RateLimited
from proxy.core.free_time import Participant, SlotAnswer, SlotQuestion, find_slots
from proxy.core.model import ErrorCode, Query, ScheduleResult, Window
from proxy.core.pacing import SLICE, paced
from proxy.core.policy import (
    Bounds,
    Policy,
    apply_policy,
    blocking_spans,
    check_reach,
    check_request,
    fetch_window,
    graph_calls,
    request_cost,
)
from proxy.core.ports import RateLimiter
from proxy.observability.audit_record import note_request
from proxy.observability.metrics import Metrics
from proxy.sources.cache import CachedScheduleSource

Question = Literal["items", "slots"]
"""What a route asks for: per-person items (every view but the slot search), or free slots."""


# A busy interval costs a search more than an item costs a lookup (widened, merged, swept
# against open hours and the grid), so searches leave the loop at fewer items than paced()'s.
_SEARCH_WEIGHT = 4
_SEARCHES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="freebusy-slots")


def _search(
    question: SlotQuestion, policy: Policy, results: Mapping[str, ScheduleResult]
) -> SlotAnswer:
    """The slot answer for ``question`` from its participants' results (pure: thread-safe)."""
    participants: list[Participant] = []
    errors: list[tuple[str, ErrorCode]] = []
    stale = False
    reach = question.search.reach
    for address, optional in zip(question.schedules, question.optional, strict=True):
        result = results[address.casefold()]
        stale = stale or result.stale
        if result.error is not None:
            errors.append((address, result.error))
            participants.append(Participant(None, optional))
        else:
            participants.append(Participant(blocking_spans(result, policy, reach), optional))
    return SlotAnswer(find_slots(question.search, participants), tuple(errors), stale)


class Availability:
    """Answers consumers' questions from the chain, with every duty done once, in one place."""

    def __init__(
        self,
        *,
        chain: CachedScheduleSource,
        memo: ResponseMemo,
        rate: RateLimiter,
        limits: LimitSettings,
        wall_clock: WallClock,
        metrics: Metrics,
        searches: Executor = _SEARCHES,
    ) -> None:
        self._chain = chain
        self._searches = searches
        self._counts = metrics.consumer_requests
        self.memo = memo
        self._rate = rate
        self._limits = limits
        self._wall_clock = wall_clock
        # Per consumer (by name): its limits under the global ones, computed once.
        self._bounds: dict[str, _Bounds] = {}

    async def lookup(
        self,
        consumer: Consumer,
        query: Query,
        *,
        view_minutes: int | None = None,
        bucket: str | None = None,
    ) -> Mapping[str, ScheduleResult]:
        """Results for every requested address, keyed by its case-folded form.

        Raises RateLimited, Forbidden or BadRequest before any upstream call when the
        question may not be asked (a slots-only key may ask nothing that shows items;
        ``view_minutes``: the interval of an availabilityView the answer will carry, part of
        its cost; ``bucket``: the rate bucket to charge, when not the consumer's own).
        Duplicates (in any letter case) are fetched once, and every result is shaped by the
        consumer's privacy policy.
        """
        window = await self._admit(
            consumer, query, "items", view_minutes=view_minutes, bucket=bucket
        )
        policy = consumer.policy
        results = await self._chain.get_schedules(query.unique, window)
        shaped: dict[str, ScheduleResult] = {}
        done = 0
        for key, result in results.items():
            shaped[key] = apply_policy(result, policy, query.window)
            done += len(result.items) + 1
            if done >= SLICE:
                done = 0
                await asyncio.sleep(0)
        return shaped

    async def slots(self, consumer: Consumer, question: SlotQuestion) -> SlotAnswer:
        """When the participants could meet, from the same chain, admitted as lookup() admits.

        Busy time is what the consumer's ``busy_statuses`` count, widened to its
        ``granularity_minutes``, over the window widened by the buffers. A participant whose
        schedule cannot be read is busy throughout and listed among the errors.
        """
        reach = question.search.reach
        window = await self._admit(consumer, question.query, "slots", span=reach)
        results = await self._chain.get_schedules(question.query.unique, window)
        items = sum(len(result.items) for result in results.values())
        if not paced(items * _SEARCH_WEIGHT):
            return _search(question, consumer.policy, results)
        # A search over many busy intervals is many milliseconds of sorting and sweeping: on
        # a thread of its own (one, so searches queue rather than crowd the loop out), while
        # the loop serves everyone else. Its inputs are frozen values; nothing is shared.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._searches, _search, question, consumer.policy, results
        )

    async def recall(self, consumer: Consumer, key: MemoKey) -> bytes | None:
        """The answer already rendered for exactly this request, admitted again: its rate
        charged, its window judged against the time.

        None when there is none to send: answer through lookup() (or slots()).
        """
        entry = self.memo.get(key, consumer=consumer)
        if entry is None:
            return None
        query = entry.query
        # What its first admission settled stands: the entry is tied to this very consumer
        # (its allowlist and policy), and the global limits do not change.
        note_request(query.schedules, query.window)
        try:
            await self._charge(consumer, entry.cost, None)
            check_reach(self._bounds_of(consumer), query.window, now=self._wall_clock.now())
        except ProblemError as refusal:
            self._counts.inc((consumer.name, _outcome(refusal)))
            raise
        self._counts.inc((consumer.name, "admitted"))
        self.memo.served(entry)
        return entry.body

    def remember(
        self,
        consumer: Consumer,
        key: MemoKey,
        query: Query,
        results: Mapping[str, ScheduleResult],
        body: bytes,
    ) -> None:
        """Keep a rendered answer for recall(), unless any part of it is stale or an error."""
        if all(result.error is None and not result.stale for result in results.values()):
            policy = consumer.policy
            window = fetch_window(policy, query.window)
            self.memo.put(
                key,
                body=body,
                query=query,
                consumer=consumer,
                fetch_window=window,
                cost=graph_calls(query, window),
            )

    def remember_slots(
        self,
        consumer: Consumer,
        key: MemoKey,
        question: SlotQuestion,
        answer: SlotAnswer,
        body: bytes,
    ) -> None:
        """Keep a rendered slot answer for recall(), unless a participant was stale or failed."""
        if not answer.errors and not answer.stale:
            policy = consumer.policy
            window = fetch_window(policy, question.search.reach)
            self.memo.put(
                key,
                body=body,
                query=question.query,
                consumer=consumer,
                fetch_window=window,
                cost=graph_calls(question.query, window),
            )

    def forget(self, addresses: Iterable[str]) -> None:
        """Drop everything held for these addresses, rendered answers included, at once."""
        self._chain.forget(addresses)
        self.memo.clear()

    async def forget_connection(self, connection: Connection) -> None:
        """Drop everything a removed connection could have fetched: its account, or its domains."""
        if connection.kind == "individual":
            self.forget([connection.account])
            return
        cached = {key[0] for key, _ in self._chain.entries()}
        self.forget([a for a in cached if a.rpartition("@")[2] in connection.domains])

    async def _admit(
        self,
        consumer: Consumer,
        query: Query,
        question: Question,
        *,
        span: Window | None = None,
        view_minutes: int | None = None,
        bucket: str | None = None,
    ) -> Window:
        """Record the question and count how it was admitted (by consumer name, for /metrics);
        return the window to fetch (``span``, or the query's, widened by the policy)."""
        note_request(query.schedules, query.window)
        window = fetch_window(consumer.policy, span or query.window)
        try:
            await self._charge(consumer, graph_calls(query, window), bucket)
            self._check(consumer, query, question, window, view_minutes)
        except ProblemError as refusal:
            self._counts.inc((consumer.name, _outcome(refusal)))
            raise
        self._counts.inc((consumer.name, "admitted"))
        return window

    async def _charge(self, consumer: Consumer, cost: int, bucket: str | None) -> None:
        """Charge the rate ``cost`` (what the question could cost Graph, in calls), or raise
        RateLimited."""
        policy = consumer.policy
        try:
            await self._rate.charge(bucket or consumer.name, policy.rate_per_minute, cost=cost)
        except RateLimited as limited:
            whose = "feed" if bucket else "API key"
            raise RateLimited(
                f"at most {policy.rate_per_minute} requests per minute for this {whose} "
                "(one per 20 addresses per 61 days asked)",
                retry_after=limited.retry_after,
            ) from None

    def _check(
        self,
        consumer: Consumer,
        query: Query,
        question: Question,
        window: Window,
        view_minutes: int | None,
    ) -> None:
        """Raise unless the consumer may ask this question."""
        policy = consumer.policy
        if question == "items" and policy.detail == "slots":
            raise Forbidden(
                "this API key may only ask when a group is free: POST /v1/slots",
                code=Code.SLOTS_ONLY,
            )
        ConsumerRegistry.authorize(consumer, query.unique)
        check_request(
            self._bounds_of(consumer),
            query,
            now=self._wall_clock.now(),
            cost=request_cost(query, window, view_minutes=view_minutes),
        )

    def _bounds_of(self, consumer: Consumer) -> Bounds:
        """The consumer's limits under the global ones (computed once per policy)."""
        policy = consumer.policy
        bounds = self._bounds.get(consumer.name)
        if bounds is None or bounds.policy is not policy:
            bounds = self._bounds[consumer.name] = _Bounds(
                policy,
                Bounds.of(
                    policy,
                    max_window_days=self._limits.max_window_days,
                    max_schedules=self._limits.max_schedules,
                    max_cost=self._limits.max_request_cost,
                ),
            )
        return bounds.bounds


def _outcome(refusal: ProblemError) -> str:
    """How a refused question is counted: rate_limited, or refused (allowlist or limits)."""
    return "rate_limited" if isinstance(refusal, RateLimited) else "refused"


class _Bounds(NamedTuple):
    """A consumer's bounds, and the policy object they were computed from."""

    policy: Policy
    bounds: Bounds
