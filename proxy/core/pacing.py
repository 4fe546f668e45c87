"""Pacing: long loops over one request's mailboxes give the event loop a turn now and then.

Whatever a request may ask (up to its cost ceiling), the work between two turns of the loop
stays a slice of a few milliseconds, so other requests (a /healthz probe, a cached answer)
are served in between instead of waiting for the whole of it.
"""

from __future__ import annotations

# Units of work (mailbox-days looked up, items shaped or rendered) per slice.
SLICE = 500


def paced(units: int) -> bool:
    """True when a loop of this much work must give the event loop turns (see Pacer)."""
    return units >= SLICE


class Pacer:
    """Counts the work of one loop; ``due`` says when to give the event loop a turn.

    Used as ``if pacer.due(n): await asyncio.sleep(0)``; a loop whose whole work is known
    guards it with ``paced(total) and``, so small requests never call it.
    """

    __slots__ = ("_left",)

    def __init__(self) -> None:
        self._left = SLICE

    def due(self, units: int) -> bool:
        """Count ``units`` of work done; True once a slice is done (the count starts again)."""
        self._left -= units
        if self._left > 0:
            return False
        self._left = SLICE
        return True
