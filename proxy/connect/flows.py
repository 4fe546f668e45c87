"""Sign-ins in progress: msal's auth-code flow state, kept server-side by ``state``, with expiry.

Each flow is bound to the browser that started it (a random value in a cookie, held here as
its SHA-256): an answer that comes back without that cookie does not finish the sign-in.

Floods cannot push a real sign-in out. Each client (remote address) holds at most
``per_client`` flows, a new one replacing that client's own oldest; when ``capacity`` flows
from all clients are pending, new sign-ins are refused until some finish or expire; nothing is
ever evicted to make room for a stranger's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Literal

from proxy.core.clock import Clock
from proxy.core.connections import Kind

# How long an expired state is still recognised as "expired" rather than unknown, and how many
# such states are remembered (forgetting one only changes which page is shown).
_REMEMBER_EXPIRED_S = 24 * 3600.0
_EXPIRED_KEPT = 10_000
CAPACITY = 10_000
PER_CLIENT = 16

Lookup = Literal["ok", "unknown", "expired", "other_browser"]


@dataclass(frozen=True, slots=True)
class PendingFlow:
    """One started sign-in: its kind, msal's flow dict (with PKCE verifier, nonce) and expiry."""

    kind: Kind
    flow: dict[str, Any]
    expires_at: float
    client: str
    browser_sha256: bytes


def browser_digest(binding: str) -> bytes:
    """What is kept of a browser's binding cookie: its SHA-256."""
    return hashlib.sha256(binding.encode("utf-8", "surrogateescape")).digest()


class PendingFlows:
    """Flows by state; each is taken at most once, and only by the browser that started it."""

    def __init__(
        self,
        *,
        timeout_s: float,
        clock: Clock,
        capacity: int = CAPACITY,
        per_client: int = PER_CLIENT,
    ) -> None:
        self._timeout = timeout_s
        self._clock = clock
        self._capacity = capacity
        self._per_client = per_client
        # In start order, which (with one timeout for all) is also expiry order.
        self._flows: OrderedDict[str, PendingFlow] = OrderedDict()
        self._by_client: dict[str, deque[str]] = {}
        self._expired: OrderedDict[str, float] = OrderedDict()

    def put(self, kind: Kind, flow: dict[str, Any], *, client: str, browser: str) -> bool:
        """Remember a flow under its state for ``client``'s browser; False when full."""
        now = self._clock()
        self._forget_expired(now)
        mine = self._by_client.get(client)
        if mine is not None and len(mine) >= self._per_client:
            # The client's own oldest sign-in makes room, never someone else's.
            self._drop(mine[0])
        elif len(self._flows) >= self._capacity:
            return False
        state = str(flow["state"])
        self._flows[state] = PendingFlow(
            kind=kind,
            flow=flow,
            expires_at=now + self._timeout,
            client=client,
            browser_sha256=browser_digest(browser),
        )
        self._by_client.setdefault(client, deque()).append(state)
        return True

    def take(self, state: str | None, *, browser: str | None) -> tuple[Lookup, PendingFlow | None]:
        """Remove and return the flow for ``state`` if ``browser`` started it; else say why not.

        An answer from another browser leaves the flow where it is, so it cannot cancel the
        sign-in of the person who started it.
        """
        now = self._clock()
        pending = self._flows.get(state) if state else None
        if pending is None:
            expired_at = self._expired.get(state) if state else None
            if expired_at is not None and expired_at + _REMEMBER_EXPIRED_S >= now:
                return "expired", None
            return "unknown", None
        if pending.expires_at <= now:
            self._drop(str(pending.flow["state"]))
            self._expired[str(pending.flow["state"])] = pending.expires_at
            return "expired", None
        if browser is None or not hmac.compare_digest(
            browser_digest(browser), pending.browser_sha256
        ):
            return "other_browser", None
        self._drop(str(pending.flow["state"]))
        return "ok", pending

    def __len__(self) -> int:
        """Flows pending."""
        return len(self._flows)

    def _forget_expired(self, now: float) -> None:
        """Move flows past their expiry to the bounded memory of expired states."""
        while self._flows:
            state, pending = next(iter(self._flows.items()))
            if pending.expires_at > now:
                break
            self._drop(state)
            self._expired[state] = pending.expires_at
        while len(self._expired) > _EXPIRED_KEPT:
            self._expired.popitem(last=False)

    def _drop(self, state: str) -> None:
        pending = self._flows.pop(state, None)
        if pending is None:
            return
        mine = self._by_client.get(pending.client)
        if mine is not None:
            mine.remove(state)
            if not mine:
                del self._by_client[pending.client]
