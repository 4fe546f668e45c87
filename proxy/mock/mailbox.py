"""A mailbox of the mock organisation: a person or a room, with the zone it lives in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proxy.mock.canary import stable_object_id

MailboxKind = Literal["person", "room"]


@dataclass(frozen=True, kw_only=True)
class Mailbox:
    """One resolvable address of the organisation: a person or a meeting room."""

    address: str
    display_name: str
    kind: MailboxKind
    time_zone: str
    """IANA name of the zone the mailbox's working hours and local meetings live in."""
    index: int

    @property
    def object_id(self) -> str:
        """Return the directory object id (GUID) Graph also accepts in place of the address."""
        return stable_object_id("user", self.address)
