"""In-memory stand-ins for the ports: a ScheduleSource with scripted calendars and failures."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from proxy.core.errors import UpstreamFailure
from proxy.core.model import BusyItem, ErrorCode, ScheduleResult, Window


@dataclass(frozen=True)
class Call:
    """One call the fake received: the addresses (as sent) and the window."""

    addresses: tuple[str, ...]
    window: Window


@dataclass
class FakeSource:
    """A ScheduleSource over in-memory calendars (case-folded address -> items).

    ``errors`` answers an address with a per-schedule code; ``failure`` fails every call as
    a whole; while ``hold`` is set, calls wait for it to be released (``release()``), so a
    test can line concurrent requests up without sleeping. Unknown addresses are not_found.
    """

    calendars: Mapping[str, Sequence[BusyItem]] = field(default_factory=dict)
    errors: dict[str, ErrorCode] = field(default_factory=dict)
    failure: UpstreamFailure | None = None
    calls: list[Call] = field(default_factory=list)
    hold: asyncio.Event | None = None
    waiting: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Each address's items clipped to the window, or its scripted error."""
        self.calls.append(Call(tuple(addresses), window))
        self.arrived.set()
        if self.hold is not None:
            self.waiting += 1
            try:
                await self.hold.wait()
            finally:
                self.waiting -= 1
        if self.failure is not None:
            raise self.failure
        return {
            address.casefold(): self._answer(address.casefold(), window) for address in addresses
        }

    def held(self) -> None:
        """Make every call from now on wait until release()."""
        self.hold = asyncio.Event()

    def release(self) -> None:
        """Let every waiting call (and every later one) answer."""
        if self.hold is not None:
            self.hold.set()
        self.hold = None

    async def until_called(self, times: int) -> None:
        """Wait until the fake has received ``times`` calls."""
        while len(self.calls) < times:
            self.arrived.clear()
            await self.arrived.wait()

    def _answer(self, address: str, window: Window) -> ScheduleResult:
        if address in self.errors:
            return ScheduleResult.failed(self.errors[address])
        if address not in self.calendars:
            return ScheduleResult.failed(ErrorCode.NOT_FOUND)
        clipped = {
            BusyItem(max(item.start, window.start), min(item.end, window.end), item.status)
            for item in self.calendars[address]
            if item.start < window.end and window.start < item.end
        }
        return ScheduleResult(items=tuple(sorted(clipped)))
