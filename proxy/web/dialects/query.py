"""What every dialect's question must be: addresses Exchange accepts, and a non-empty window.

Dialects read their own field names and time formats, then build the same Query from these. Limits
(how many addresses, how long a window, how far back or ahead) are the availability
service's to check, once, for every route.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from proxy.core.errors import BadRequest, Code
from proxy.core.model import Window
from proxy.core.timefmt import parse_rfc3339

# Deliberately plain: a mailbox address as Exchange accepts it, ASCII, no quoting or comments
# (\Z, not $: a trailing newline is not part of an address).
_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\Z"
)
MAX_ADDRESS_LENGTH = 254
# Addresses the pattern accepted already: apps ask about the same people all day, and the
# pattern costs microseconds an address. Emptied when full.
_ACCEPTED_KEPT = 4096
_ACCEPTED: set[str] = set()
# Every window is widened before its limits are judged (to a consumer's grid, by a slot
# search's buffers, to whole cache days): bounds far inside datetime's range leave room for
# that, so no arithmetic on an admitted window can overflow into a 500.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def schedules_of(value: Any) -> tuple[str, ...]:
    """The addresses of a question, each one Exchange accepts, or BadRequest."""
    if not isinstance(value, list) or not value:
        raise BadRequest(
            "schedules must be a non-empty list of addresses", code=Code.INVALID_SCHEDULES
        )
    for address in value:
        if type(address) is str and len(address) <= MAX_ADDRESS_LENGTH and address in _ACCEPTED:
            continue
        if (
            not isinstance(address, str)
            or len(address) > MAX_ADDRESS_LENGTH
            or not _ADDRESS.match(address)
        ):
            raise BadRequest(
                "every schedule must be an e-mail address", code=Code.INVALID_SCHEDULES
            )
        if len(_ACCEPTED) >= _ACCEPTED_KEPT:
            _ACCEPTED.clear()
        _ACCEPTED.add(address)
    return tuple(value)


def window_of(start: datetime, end: datetime) -> Window:
    """The window between two UTC instants, or BadRequest when it is empty or does not lie
    within EARLIEST to LATEST."""
    if not start < end:
        raise BadRequest("end must be after start", code=Code.INVALID_WINDOW)
    if start < EARLIEST or end > LATEST:
        raise BadRequest(
            "start and end must lie between 1900-01-01 and 9000-01-01", code=Code.INVALID_WINDOW
        )
    return Window(start=start, end=end)


def parse_instant(value: Any, name: str) -> datetime:
    """The UTC instant of an RFC 3339 date-time with offset, or BadRequest naming ``name``."""
    if not isinstance(value, str):
        raise BadRequest(
            f"{name} is required (RFC 3339, e.g. 2026-03-15T09:00:00Z)", code=Code.INVALID_TIME
        )
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise BadRequest(
            f"{name} must be an RFC 3339 date-time with offset, e.g. 2026-03-15T09:00:00Z",
            code=Code.INVALID_TIME,
        ) from None
