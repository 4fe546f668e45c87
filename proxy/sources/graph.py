"""getSchedule over one shared aiohttp session: splitting, retries, per-mailbox limits."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from proxy.core.clock import Clock
from proxy.core.errors import Code, TokenError, UpstreamFailure
from proxy.core.minimize import decode_answer, minimize_answer
from proxy.core.model import ErrorCode, ScheduleResult, Window
from proxy.core.pacing import Pacer
from proxy.core.ports import CallGate, TokenProvider
from proxy.core.timefmt import format_graph_local
from proxy.observability.audit_record import count_upstream_call

log = logging.getLogger(__name__)

MAX_SCHEDULES_PER_CALL = 20
# Graph wants the window "less than 62 days"; 61 keeps a margin for any rounding upstream.
MAX_SPAN_PER_CALL = timedelta(days=61)
# One request's getSchedule calls in flight at once: a request for 100 addresses over half a
# year (15 calls) holds four answers in memory at a time, not fifteen, and leaves the rest of
# throttle.max_concurrency to everyone else.
CALLS_PER_REQUEST = 4
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_RETRYABLE = frozenset({429, 503, 504})
# getSchedule calls one chunk may make while Graph keeps 404ing the mailbox in the URL.
_URL_ATTEMPTS = 3
_BACKOFF_BASE_S = 0.25
_BACKOFF_CAP_S = 8.0
# When our own per-mailbox budget refuses a call: its counting slot is a minute long.
BUDGET_RETRY_AFTER_S = 60.0
_ENCODE = msgspec.json.Encoder().encode
_NONE = ScheduleResult(items=())
_WHOLE_FAILURE_PRIORITY = (
    ErrorCode.THROTTLED,
    ErrorCode.UPSTREAM_UNAVAILABLE,
    ErrorCode.UPSTREAM_ERROR,
    ErrorCode.UPSTREAM_TIMEOUT,
)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How hard to try one getSchedule call."""

    max_retries: int = 3
    deadline_s: float = 20.0
    # Each attempt is cut off after this long (None: only the deadline bounds it); a shared
    # gate's lease must outlive any attempt that holds it.
    attempt_s: float | None = None


class _MailboxNotFound:
    """Graph answered 404 for the mailbox in the URL."""


_MAILBOX_NOT_FOUND = _MailboxNotFound()


@dataclass(frozen=True, slots=True)
class _CallFailed:
    """A whole getSchedule call failed; ``code`` is what each of its schedules reports.

    ``retry_after``: when asking again may succeed (throttled calls). ``answered``: Graph
    answered, with a 4xx about this call: it is up, and the breaker must not hear otherwise.
    """

    code: ErrorCode
    retry_after: float | None = None
    answered: bool = False
    # Refused for the mailbox in the URL (403, or throttled there): another may be asked.
    url_refused: bool = False


def split_addresses(addresses: Sequence[str]) -> list[list[str]]:
    """Chunks of at most 20 addresses, order kept."""
    return [
        list(addresses[i : i + MAX_SCHEDULES_PER_CALL])
        for i in range(0, len(addresses), MAX_SCHEDULES_PER_CALL)
    ]


def split_window(window: Window) -> list[Window]:
    """Consecutive sub-windows, each shorter than Graph's 62-day limit, covering the window."""
    parts: list[Window] = []
    start = window.start
    while start < window.end:
        end = min(start + MAX_SPAN_PER_CALL, window.end)
        parts.append(Window(start=start, end=end))
        start = end
    return parts


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds, possibly fractional), or None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class GraphScheduleSource:
    """Fetches minimized schedules from Graph with application (or any) tokens."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        tokens: TokenProvider,
        base_url: str,
        retry: RetryPolicy,
        gate: CallGate,
        clock: Clock,
        me_address: str | None = None,
    ) -> None:
        # me_address: a delegated token's own mailbox; calls then go to /me/calendar/getSchedule.
        self._me = me_address
        self._session = session
        self._tokens = tokens
        self._base_url = base_url.rstrip("/")
        self._retry = retry
        self._gate = gate
        self._clock = clock
        # A mailbox Graph answered for as the one in the URL (so known to exist).
        self._known: str | None = None

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Fetch every address over the whole window, splitting into calls Graph accepts."""
        deadline = self._clock() + self._retry.deadline_s
        jobs = [
            (chunk, part) for chunk in split_addresses(addresses) for part in split_window(window)
        ]
        try:
            if len(jobs) == 1:
                # The usual case: awaited here, not in a task of its own (a turn of the loop
                # to start it and another to hear it finished).
                outcomes = [await self._fetch_chunk(*jobs[0], window, deadline)]
            else:
                lanes = asyncio.Semaphore(CALLS_PER_REQUEST)

                async def fetch(chunk: list[str], part: Window) -> Any:
                    async with lanes:
                        return await self._fetch_chunk(chunk, part, window, deadline)

                outcomes = await asyncio.gather(*(fetch(chunk, part) for chunk, part in jobs))
        except TokenError as exc:
            raise UpstreamFailure(
                "could not get an access token for Microsoft Graph", code=Code.UPSTREAM_AUTH
            ) from exc
        failed = [outcome for outcome in outcomes if isinstance(outcome, _CallFailed)]
        if len(failed) == len(outcomes):
            raise _whole_failure(failed)
        return await _merge(jobs, outcomes)

    async def _fetch_chunk(
        self, chunk: list[str], part: Window, window: Window, deadline: float
    ) -> dict[str, ScheduleResult] | _CallFailed:
        """One getSchedule for ≤20 addresses, asked as the first of them.

        When Graph does not know the mailbox in the URL (404), the rest of the chunk is asked
        again as a mailbox that answered before: Graph then reports any other unknown address
        inside its answer, so a chunk of unknown addresses costs two calls, not one each.
        Without such a mailbox the next address is tried. A mailbox Graph refuses in the URL
        (403: an application access policy leaves it out) is answered as refused, and the
        rest of the chunk is asked as another mailbox: the policy holds for that mailbox (it
        is never read through another), and nobody else fails with it. A throttled mailbox's
        chunk is asked whole as another of its mailboxes. At most _URL_ATTEMPTS calls in all.
        """
        rest = list(chunk)
        missing: dict[str, ScheduleResult] = {}
        mailbox = rest[0]
        tried: set[str] = set()
        refused: _CallFailed | None = None
        for _ in range(_URL_ATTEMPTS):
            outcome = await self._call(rest, part, window, deadline, mailbox=mailbox)
            folded = mailbox.casefold()
            tried.add(folded)
            if isinstance(outcome, _CallFailed):
                if not outcome.url_refused or self._me is not None:
                    return refused or outcome
                refused = refused or outcome
                if outcome.code is ErrorCode.UPSTREAM_ERROR:
                    missing[folded] = ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR)
                    rest = [address for address in rest if address.casefold() != folded]
                    known = self._known
                    if known is not None and known.casefold() not in tried and rest:
                        mailbox = known
                        continue
                other = next((a for a in rest if a.casefold() not in tried), None)
                if other is None:
                    # Refused as every mailbox tried: Graph's answer for the whole chunk.
                    return refused
                mailbox = other
                continue
            if not isinstance(outcome, _MailboxNotFound):
                self._known = mailbox
                return missing | outcome
            if any(address.casefold() == folded for address in rest):
                missing[folded] = ScheduleResult.failed(ErrorCode.NOT_FOUND)
                rest = [address for address in rest if address.casefold() != folded]
            if self._known is not None and self._known.casefold() == folded:
                self._known = None  # it answered once; it does not any more
            if not rest:
                return missing
            known = self._known
            mailbox = known if known is not None and known.casefold() not in missing else rest[0]
        if refused is not None and all(
            r.error is ErrorCode.UPSTREAM_ERROR for r in missing.values()
        ):
            return refused
        # Graph kept refusing the mailbox asked as: the rest stay unanswered, not unknown.
        return missing | {
            a.casefold(): ScheduleResult.failed(ErrorCode.UPSTREAM_ERROR) for a in rest
        }

    async def _call(
        self, chunk: list[str], part: Window, window: Window, deadline: float, *, mailbox: str
    ) -> dict[str, ScheduleResult] | _CallFailed | _MailboxNotFound:
        """POST getSchedule, as ``mailbox``, with bounded retries inside the deadline."""
        # Graph throttles per mailbox in the URL; asking as a requested mailbox spreads load
        # across mailboxes instead of funnelling it through one service account.
        mailbox = self._me or mailbox
        url = f"{self._base_url}/users/{quote(mailbox, safe='@')}/calendar/getSchedule"
        if self._me is not None:
            url = f"{self._base_url}/me/calendar/getSchedule"
        body = _request_body(chunk, part)
        failure = ErrorCode.UPSTREAM_ERROR
        throttled_for: float | None = None
        for attempt in range(self._retry.max_retries + 1):
            remaining = deadline - self._clock()
            if remaining <= 0:
                return _CallFailed(ErrorCode.UPSTREAM_TIMEOUT)
            wait: float | None = None
            token = await self._tokens.token()
            async with self._gate.hold(mailbox.casefold()) as admitted:
                if admitted is False:
                    # Our own per-mailbox budget is spent: Graph would only answer 429.
                    return _CallFailed(
                        ErrorCode.THROTTLED, retry_after=BUDGET_RETRY_AFTER_S, url_refused=True
                    )
                bound = deadline - self._clock()
                if self._retry.attempt_s is not None:
                    bound = min(bound, self._retry.attempt_s)
                try:
                    # asyncio.timeout, not wait_for: no extra task per call on the cold path.
                    async with asyncio.timeout(bound):
                        status, retry_after, payload = await self._post(url, body, token)
                except TimeoutError:
                    return _CallFailed(ErrorCode.UPSTREAM_TIMEOUT)
                except (aiohttp.ClientError, ValueError) as exc:
                    # Dropped connection, reset, or a body that is not JSON: worth another try.
                    log.info(
                        "getSchedule transport failure (%s), attempt %d",
                        type(exc).__name__,
                        attempt + 1,
                    )
                    failure = ErrorCode.UPSTREAM_UNAVAILABLE
                    wait = _backoff(attempt)
                else:
                    log.debug("getSchedule answered %d, attempt %d", status, attempt + 1)
                    if status == 200:
                        return minimize_answer(payload, requested=chunk, window=window)
                    if status == 404 and self._me is None:
                        return _MAILBOX_NOT_FOUND
                    if status not in _RETRYABLE:
                        return _CallFailed(
                            ErrorCode.UPSTREAM_ERROR,
                            answered=status < 500,
                            url_refused=status == 403,
                        )
                    failure = (
                        ErrorCode.THROTTLED if status == 429 else ErrorCode.UPSTREAM_UNAVAILABLE
                    )
                    wait = retry_after if retry_after is not None else _backoff(attempt)
                    throttled_for = wait
                    if retry_after is not None:
                        self._gate.hold_off(mailbox.casefold(), retry_after)
            if attempt == self._retry.max_retries:
                break
            if self._clock() + wait >= deadline:
                # Waiting as asked would overrun the deadline: report now rather than hang.
                break
            await asyncio.sleep(wait)
        if failure is ErrorCode.THROTTLED:
            return _CallFailed(failure, retry_after=throttled_for, url_refused=True)
        return _CallFailed(failure)

    async def _post(
        self, url: str, body: dict[str, Any], token: str
    ) -> tuple[int, float | None, Any]:
        """Send one request; return status, Retry-After seconds and the decoded answer (2xx
        only; ValueError when it is not JSON)."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Prefer": 'outlook.timezone="UTC"',
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        count_upstream_call()
        async with self._session.post(url, data=_ENCODE(body), headers=headers) as resp:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if resp.status != 200:
                await resp.read()
                return resp.status, retry_after, None
            raw = bytearray()
            async for chunk in resp.content.iter_any():
                raw += chunk
                if len(raw) > MAX_RESPONSE_BYTES:
                    raise ValueError("response too large")
            return resp.status, retry_after, decode_answer(raw)


def _whole_failure(failed: list[_CallFailed]) -> UpstreamFailure:
    """What a request whose every call failed reports; throttling says when to come back."""
    codes = {outcome.code for outcome in failed}
    graph_failing = not all(outcome.answered for outcome in failed)
    if codes == {ErrorCode.UPSTREAM_TIMEOUT}:
        return UpstreamFailure(
            "Microsoft Graph did not answer in time", code=Code.UPSTREAM_TIMEOUT, status=504
        )
    # Timeouts are reported as such only when nothing else went wrong.
    code = next(c for c in _WHOLE_FAILURE_PRIORITY if c in codes)
    retry_after = None
    if code is ErrorCode.THROTTLED:
        waits = [o.retry_after for o in failed if o.retry_after is not None]
        retry_after = max(waits) if waits else _BACKOFF_CAP_S
    return UpstreamFailure(
        "Microsoft Graph failed for the whole request",
        code=Code(code.value),
        retry_after=retry_after,
        graph_failing=graph_failing,
    )


def _request_body(chunk: list[str], part: Window) -> dict[str, Any]:
    """The getSchedule body for one chunk and sub-window, always in UTC."""
    minutes = math.ceil(part.duration.total_seconds() / 60)
    return {
        "schedules": chunk,
        "startTime": {
            "dateTime": format_graph_local(part.start.astimezone(UTC)),
            "timeZone": "UTC",
        },
        "endTime": {"dateTime": format_graph_local(part.end.astimezone(UTC)), "timeZone": "UTC"},
        # We never read availabilityView; the largest interval keeps that string short.
        "availabilityViewInterval": max(5, min(1440, minutes)),
    }


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))  # noqa: S311


async def _merge(
    jobs: list[tuple[list[str], Window]],
    outcomes: Sequence[dict[str, ScheduleResult] | _CallFailed],
) -> dict[str, ScheduleResult]:
    """Join sub-window results per address; any failed part fails that address. Many
    addresses over many sub-windows are many thousand items: the loop gets turns between."""
    merged: dict[str, ScheduleResult] = {}
    pacer = Pacer()
    for (chunk, _part), outcome in zip(jobs, outcomes, strict=True):
        for address in chunk:
            if len(jobs) > 1 and pacer.due(1 + len(merged.get(address.casefold(), _NONE).items)):
                await asyncio.sleep(0)
            key = address.casefold()
            result = (
                ScheduleResult.failed(outcome.code)
                if isinstance(outcome, _CallFailed)
                else outcome[key]
            )
            previous = merged.get(key)
            if previous is None:
                merged[key] = result
            elif previous.error is None and result.error is None:
                # The same event is returned whole by neighbouring sub-windows: de-duplicate.
                merged[key] = ScheduleResult(items=tuple(sorted({*previous.items, *result.items})))
            elif previous.error is None:
                merged[key] = result
    return merged
