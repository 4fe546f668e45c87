"""MockGraph: everything one mock tenant knows and remembers, independent of HTTP."""

from __future__ import annotations

from typing import Any

from proxy.mock.consent import ConsentBook
from proxy.mock.faults import Fault, FaultBook
from proxy.mock.organisation import Organisation
from proxy.mock.settings import MockSettings
from proxy.mock.throttling import MailboxGate, Stats
from proxy.mock.tokens import TokenIssuer


class MockGraph:
    """The in-process state of one mock: organisation, token issuer, faults and counters."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.organisation = Organisation(size=settings.org_size, seed=settings.seed)
        self.tokens = TokenIssuer(
            tenant_id=settings.tenant_id, lifetime_s=settings.token_lifetime_s
        )
        self.faults = FaultBook()
        self.consent = ConsentBook(
            extra_scopes=settings.extra_delegated_scopes,
            withheld_scopes=settings.withheld_delegated_scopes,
            single_use=settings.single_use_refresh_tokens,
        )
        self.counters = Stats()
        self.gate = MailboxGate(
            concurrency=settings.mailbox_concurrency_limit,
            per_ten_minutes=settings.mailbox_rate_limit,
            stats=self.counters,
        )

    def add_fault(self, fault: Fault) -> None:
        """Script ``fault``; it applies after every fault added before it."""
        self.faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every fault and release requests held by a latency fault."""
        self.faults.clear()

    def stats(self) -> dict[str, Any]:
        """Return the counters, exactly the JSON of GET /_mock/stats."""
        return self.counters.to_json()

    def reset(self) -> None:
        """Clear faults, counters and rate budgets; issued tokens and grants stay valid."""
        self.faults.clear()
        self.counters.clear()
        self.gate.forget_history()

    def issue_app_token(self, *, roles: tuple[str, ...] | None = None) -> str:
        """Return an app-only token as the token endpoint would, optionally with other roles."""
        chosen = self.settings.app_roles if roles is None else roles
        return self.tokens.issue_app_token(client_id=self.settings.client_id, roles=chosen)

    def set_token_lifetime(self, seconds: int) -> None:
        """Give tokens issued from now on this lifetime (``expires_in`` and ``exp``)."""
        self.tokens.lifetime_s = seconds

    def revoke_grant(self, user: str) -> int:
        """Revoke ``user``'s delegated consent: their refresh tokens now fail with invalid_grant."""
        return self.consent.revoke(user)

    def grant_extra_scopes(self, user: str, *scopes: str) -> int:
        """Widen ``user``'s delegated consent: later tokens carry ``scopes`` too."""
        return self.consent.add_scopes(user, scopes)

    def approve_device_code(self, user_code: str, user: str) -> bool:
        """Complete a pending device-code sign-in as ``user`` (as the person would in a browser)."""
        return self.consent.decide_device(user_code, user=user)

    def decline_device_code(self, user_code: str) -> bool:
        """Decline a pending device-code sign-in."""
        return self.consent.decide_device(user_code, user=None)
