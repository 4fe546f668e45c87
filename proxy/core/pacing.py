"""Pacing: long loops over one request's mailboxes give the event loop a turn now and then.

Whatever a request may ask (up to its cost ceiling), the work between two turns of the loop
stays a slice of a few milliseconds, so other requests (a /healthz probe, a cached answer)
are served in between instead of waiting for the whole of it.
"""

from __future__ import annotations

# Units of work (mailbox-days looked up, items shaped or rendered) per slice.
SLICE = 500


class Pacer:
    """Counts the work of one loop; ``due`` says when to give the event loop a turn.

    Used as ``if pacer.due(n): await asyncio.sleep(0)``: counting costs a subtraction, and
    small requests never reach a slice, so the cached path pays nothing for it.
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
