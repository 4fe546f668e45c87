"""The audit record of the request being handled, filled in by whoever learns a fact.

A context variable, so the routes, the service and the Graph adapter each need one call
and no parameter threading; tasks started for the request share the same record.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.core.model import Window


@dataclass(slots=True)
class AuditRecord:
    """What one request did, filled in as it goes."""

    consumer: str | None = None
    addresses: tuple[str, ...] = ()
    window: Window | None = None
    upstream_calls: int = 0
    # Set by a handler whose answer is itself a failure page (the connect flows).
    outcome: str | None = None


CURRENT: contextvars.ContextVar[AuditRecord | None] = contextvars.ContextVar(
    "audit_record", default=None
)


def note_consumer(name: str) -> None:
    """Record the authenticated consumer of the current request."""
    record = CURRENT.get()
    if record is not None:
        record.consumer = name


def note_request(addresses: Sequence[str], window: Window) -> None:
    """Record the addresses and window the current request asks for."""
    record = CURRENT.get()
    if record is not None:
        record.addresses = tuple(addresses)
        record.window = window


def count_upstream_call() -> None:
    """Count one Graph call for the current request (tasks share the record)."""
    record = CURRENT.get()
    if record is not None:
        record.upstream_calls += 1


def note_outcome(outcome: str) -> None:
    """Record why a request whose answer is a failure page failed (a stable reason)."""
    record = CURRENT.get()
    if record is not None:
        record.outcome = outcome
