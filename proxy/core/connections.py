"""Delegated connections as values: whose, which organisation, what was granted; never tokens."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["individual", "enterprise"]
# revoked: an administrator stopped it; the record stays (tokens erased) until it is deleted.
ConnectionStatus = Literal["connected", "needs_consent", "over_privileged", "revoked"]


@dataclass(frozen=True, kw_only=True)
class Connection:
    """One delegated connection: whose, which organisation, what was granted; never tokens."""

    id: str
    kind: Kind
    account: str
    """The signed-in person's address (user principal name), case-folded."""
    tenant_id: str
    tenant_name: str
    domains: tuple[str, ...]
    """The organisation's verified domains, case-folded (enterprise connections use them)."""
    scopes: tuple[str, ...]
    """Granted permissions, as read from the last access token."""
    status: ConnectionStatus
    public_client: bool
    """True when made by the device-code flow: refreshed without the client secret."""
    created: str

    def covers(self, address: str) -> bool:
        """Return True when this connection may answer for ``address`` (case-folded)."""
        if self.kind == "individual":
            return address == self.account
        return address.rpartition("@")[2] in self.domains

    def with_status(
        self, status: ConnectionStatus, scopes: tuple[str, ...] | None = None
    ) -> Connection:
        """Return a copy with a new status (and granted scopes, when given)."""
        return replace(self, status=status, scopes=self.scopes if scopes is None else scopes)
