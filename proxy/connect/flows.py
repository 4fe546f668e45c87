"""Sign-ins in progress: msal's auth-code flow state, kept server-side by ``state``, with expiry."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from proxy.core.clock import Clock
from proxy.core.connections import Kind

# How long an expired state is still recognised as "expired" rather than unknown.
_REMEMBER_EXPIRED_S = 24 * 3600.0
_MAX_PENDING = 10_000

Lookup = Literal["ok", "unknown", "expired"]


@dataclass(frozen=True, slots=True)
class PendingFlow:
    """One started sign-in: its kind, msal's flow dict (with PKCE verifier, nonce) and expiry."""

    kind: Kind
    flow: dict[str, Any]
    expires_at: float


class PendingFlows:
    """Flows by state; each is taken at most once."""

    def __init__(self, *, timeout_s: float, clock: Clock) -> None:
        self._timeout = timeout_s
        self._clock = clock
        self._flows: OrderedDict[str, PendingFlow] = OrderedDict()

    def put(self, kind: Kind, flow: dict[str, Any]) -> None:
        """Remember a flow under its state."""
        self._forget_old()
        self._flows[str(flow["state"])] = PendingFlow(
            kind=kind, flow=flow, expires_at=self._clock() + self._timeout
        )
        while len(self._flows) > _MAX_PENDING:
            self._flows.popitem(last=False)

    def take(self, state: str | None) -> tuple[Lookup, PendingFlow | None]:
        """Remove and return the flow for ``state``, saying whether it is unknown or expired."""
        pending = self._flows.pop(state, None) if state else None
        if pending is None:
            return "unknown", None
        if pending.expires_at <= self._clock():
            return "expired", None
        return "ok", pending

    def _forget_old(self) -> None:
        now = self._clock()
        for state in [
            s for s, p in self._flows.items() if p.expires_at + _REMEMBER_EXPIRED_S < now
        ]:
            del self._flows[state]
