"""The generated directory: people and rooms of contoso.example, deterministic from a seed."""

from __future__ import annotations

from datetime import datetime

from proxy.mock.calendar import CalendarEvent, events_between
from proxy.mock.canary import seeded_random
from proxy.mock.mailbox import Mailbox, MailboxKind
from proxy.mock.settings import MOCK_DOMAIN


def _words(text: str) -> tuple[str, ...]:
    """Return the whitespace-separated words of ``text`` (keeps long name lists compact)."""
    return tuple(text.split())


# Microsoft's own demo-tenant cast comes first, so small organisations look familiar.
_DEMO_PEOPLE = (
    ("Adele", "Vance"),
    ("Alex", "Wilber"),
    ("Megan", "Bowen"),
    ("Lee", "Gu"),
    ("Nestor", "Wilke"),
    ("Isaiah", "Langer"),
    ("Lidia", "Holloway"),
    ("Johanna", "Lorenz"),
    ("Pradeep", "Gupta"),
    ("Grady", "Archie"),
    ("Joni", "Sherman"),
    ("Lynne", "Robbins"),
    ("Miriam", "Graham"),
    ("Patti", "Fernandez"),
    ("Diego", "Siciliani"),
    ("Henrietta", "Mueller"),
)
_FIRST_NAMES = _words(
    "Aiko Amara Anders Ana Arjun Astrid Ben Bianca Carlos Chen Chloe Dara Dmitri Elena Emeka "
    "Emma Farah Felix Fatima Gabriel Greta Hana Hiro Ines Ivan Jamal Jana Javier Jin Julia "
    "Kai Kamala Karin Kenji Lars Layla Leon Lucia Luca Maya Mateo Mei Mila Nadia Nikhil Noah "
    "Nora Oliver Olga Omar Paula Priya Quinn Rafael Ravi Rosa Sami Sara Sean Sofia Tariq "
    "Tomas Uma Valentina Victor Wei Yara Yusuf Zoe Zanele"
)
_LAST_NAMES = _words(
    "Abe Adeyemi Andersen Bauer Becker Brown Carter Chen Costa Dubois Eriksen Fischer Garcia "
    "Hansen Haddad Ito Jansen Jones Kim Kowalski Kumar Larsen Lee Lopez Martin Meyer Moreau "
    "Nakamura Nguyen Novak Okafor Olsen Patel Perez Petrov Quispe Rossi Sato Schmidt Silva "
    "Singh Smith Suzuki Tanaka Taylor Torres Wagner Walker Wang Weber Williams Wong Yamamoto "
    "Young Zhang Ziegler Murphy Kelly Rahman Ali Hoffmann Novakova Lindqvist Virtanen Dias"
)
_ROOM_NAMES = _words(
    "aurora boardroom cedar delta everest fjord granite harbour iris juniper kestrel lagoon "
    "meridian nimbus orchid pinnacle quarry redwood summit tundra umber vista willow zenith"
)
# Mostly Europe/America/Asia, and both DST conventions (EU and US) early in the cycle so even
# a small organisation has people whose UTC meeting times move at the DST changes.
_ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Europe/London",
    "Asia/Tokyo",
    "America/Los_Angeles",
    "Europe/Paris",
    "Asia/Kolkata",
    "America/Chicago",
    "Europe/Amsterdam",
    "Asia/Singapore",
    "Australia/Sydney",
    "Europe/Madrid",
    "America/Sao_Paulo",
    "Asia/Shanghai",
    "Europe/Stockholm",
    "America/Toronto",
)


class Organisation:
    """The directory of one mock tenant; only names are built up front, calendars on demand."""

    def __init__(self, *, size: int, seed: int, domain: str = MOCK_DOMAIN) -> None:
        self.domain = domain
        self.seed = seed
        self._mailboxes: list[Mailbox] = []
        self._by_address: dict[str, Mailbox] = {}
        self._by_object_id: dict[str, Mailbox] | None = None
        rng = seeded_random(seed, "directory")
        used_locals: set[str] = set()
        kind: MailboxKind
        for index in range(size):
            # Every tenth mailbox is a room, the way a real tenant mixes them in.
            if index % 10 == 9:
                name = _ROOM_NAMES[rng.randrange(len(_ROOM_NAMES))]
                local, display, kind = f"room-{name}", f"Room {name.capitalize()}", "room"
            else:
                person = index - index // 10
                if person < len(_DEMO_PEOPLE):
                    first, last = _DEMO_PEOPLE[person]
                else:
                    first = _FIRST_NAMES[rng.randrange(len(_FIRST_NAMES))]
                    last = _LAST_NAMES[rng.randrange(len(_LAST_NAMES))]
                local, display, kind = f"{first}.{last}".lower(), f"{first} {last}", "person"
            local = _unique(local, used_locals)
            mailbox = Mailbox(
                address=f"{local}@{domain}",
                display_name=display,
                kind=kind,
                time_zone=_ZONES[(index + seed) % len(_ZONES)],
                index=index,
            )
            self._mailboxes.append(mailbox)
            self._by_address[mailbox.address] = mailbox

    def addresses(self) -> list[str]:
        """Return every address, people and rooms, in the same order for the same seed."""
        return [m.address for m in self._mailboxes]

    def mailboxes(self) -> list[Mailbox]:
        """Return every mailbox in directory order."""
        return list(self._mailboxes)

    def people(self) -> list[Mailbox]:
        """Return the people (no rooms) in directory order."""
        return [m for m in self._mailboxes if m.kind == "person"]

    def rooms(self) -> list[Mailbox]:
        """Return the meeting rooms in directory order."""
        return [m for m in self._mailboxes if m.kind == "room"]

    def lookup(self, address: str) -> Mailbox | None:
        """Return the mailbox of ``address`` (case-insensitive), or None if it does not resolve."""
        return self._by_address.get(address.strip().lower())

    def lookup_object_id(self, object_id: str) -> Mailbox | None:
        """Return the mailbox whose directory object id is ``object_id``, or None."""
        if self._by_object_id is None:
            # Built on first use only: most callers address mailboxes by e-mail address.
            self._by_object_id = {m.object_id: m for m in self._mailboxes}
        return self._by_object_id.get(object_id.strip().lower())

    def events(self, address: str, start: datetime, end: datetime) -> list[CalendarEvent]:
        """Return the events of ``address`` overlapping [start, end), whole, sorted by start."""
        mailbox = self.lookup(address)
        if mailbox is None:
            return []
        return events_between(mailbox, start, end, seed=self.seed)


def _unique(local: str, used: set[str]) -> str:
    """Return ``local`` or the first free ``local2``, ``local3``… and mark it used."""
    candidate, n = local, 1
    while candidate in used:
        n += 1
        candidate = f"{local}{n}"
    used.add(candidate)
    return candidate
