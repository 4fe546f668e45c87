"""Scripted misbehaviour: errors, latency, broken bodies and dropped connections on demand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast, get_args

FaultEndpoint = Literal["getSchedule", "token", "openid-configuration", "organization", "*"]
FaultKind = Literal["status", "latency", "malformed", "drop", "body"]
ENDPOINTS: tuple[str, ...] = get_args(FaultEndpoint)
KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One scripted misbehaviour and the requests it applies to.

    - ``status``: answer ``status`` with the endpoint's error shape (and Retry-After if set).
    - ``latency``: wait ``delay_ms`` (or until faults are cleared), then answer normally.
    - ``malformed``: answer 200 with truncated JSON.
    - ``drop``: close the connection without answering.
    - ``body``: answer 200 with ``body`` as JSON instead of the computed result.
    """

    kind: FaultKind
    endpoint: FaultEndpoint = "getSchedule"
    mailbox: str | None = None
    """Matches the {id} of /users/{id}/ case-insensitively; None matches any request."""
    schedule: str | None = None
    """Matches when this address is among the requested schedules; None matches any."""
    status: int = 503
    retry_after: str | None = None
    delay_ms: int = 0
    body: Any = None
    count: int | None = 1
    """How many matching requests it applies to; None means forever."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be positive or null")
        if not 100 <= self.status <= 599 or self.delay_ms < 0:
            raise ValueError("status must be an HTTP status and delay_ms non-negative")

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """Return the fault described by a JSON object; ValueError names what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(map(str, unknown)))}")
        if "kind" not in data:
            raise ValueError("kind is required")
        try:
            return cls(**cast(Mapping[str, Any], data))
        except TypeError as error:
            raise ValueError(str(error)) from error

    def to_json(self) -> dict[str, Any]:
        """Return the fault as the JSON object ``from_json`` reads."""
        return asdict(self)

    def matches(self, endpoint: str, mailbox: str | None, schedules: Sequence[str]) -> bool:
        """Return whether this fault applies to a request with these coordinates."""
        if self.endpoint not in ("*", endpoint):
            return False
        if self.mailbox is not None and (
            mailbox is None or mailbox.lower() != self.mailbox.lower()
        ):
            return False
        wanted = self.schedule.lower() if self.schedule is not None else None
        return wanted is None or any(s.lower() == wanted for s in schedules)


class FaultBook:
    """Faults in order of addition; the first matching one with uses left is consumed."""

    def __init__(self) -> None:
        self._entries: list[tuple[Fault, int | None]] = []
        self._release: asyncio.Event | None = None

    def add(self, fault: Fault) -> None:
        """Append ``fault``; it applies after every fault added before it."""
        self._entries.append((fault, fault.count))

    def clear(self) -> None:
        """Forget every fault and end any injected latency still in progress."""
        self._entries.clear()
        if self._release is not None:
            self._release.set()
            self._release = None

    def pending(self) -> list[Fault]:
        """Return the faults that still have uses left, in order."""
        return [fault for fault, _ in self._entries]

    def take(
        self, endpoint: str, mailbox: str | None, schedules: Sequence[str] = ()
    ) -> Fault | None:
        """Return the fault for this request, using up one of its applications, or None."""
        for position, (fault, left) in enumerate(self._entries):
            if fault.matches(endpoint, mailbox, schedules):
                if left is None:
                    return fault
                if left <= 1:
                    del self._entries[position]
                else:
                    self._entries[position] = (fault, left - 1)
                return fault
        return None

    async def delay(self, fault: Fault) -> None:
        """Wait out a latency fault; clearing the faults cuts the wait short."""
        if self._release is None:
            self._release = asyncio.Event()
        release = self._release
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), timeout=fault.delay_ms / 1000)
