"""Time parsing and formatting at the edges: RFC 3339 outside, aware UTC datetimes inside."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

# RFC 3339 §5.6 date-time; an offset is mandatory so no instant is ever guessed.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)


def parse_rfc3339(text: str) -> datetime:
    """Return the UTC instant of an RFC 3339 date-time with offset; raise ValueError otherwise."""
    if not _RFC3339.match(text):
        raise ValueError("not an RFC 3339 date-time with offset")
    if "t" not in text and "z" not in text:
        # The usual spelling: fromisoformat reads every upper-case RFC 3339 date-time as it
        # is (fractions beyond microseconds truncated, as below).
        try:
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            pass  # judged below, with the same answer and message as any other spelling
    normalized = text.upper().replace(" ", "T")
    head, sep, frac_and_offset = normalized.partition(".")
    if sep:
        # Python keeps microseconds; nanosecond digits beyond that are truncated, not rounded.
        digits = re.match(r"[0-9]+", frac_and_offset)
        assert digits is not None
        normalized = f"{head}.{digits.group()[:6]:0<6}{frac_and_offset[digits.end() :]}"
    try:
        return datetime.fromisoformat(normalized).astimezone(UTC)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+01:00 is before datetime's range once in UTC.
        raise ValueError("date-time out of range") from None


# Served availability repeats the same instants over and over; formatting is the hot path.
@functools.lru_cache(maxsize=16384)
def format_utc(instant: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a ``Z`` suffix."""
    return format_instant(instant)


def format_instant(instant: datetime) -> str:
    """format_utc without its memo, for instants that never repeat (the clock's now)."""
    if instant.tzinfo is UTC:
        # isoformat()'s own choice (microseconds only when there are some) is ours too.
        return instant.isoformat()[:-6] + "Z"
    utc = instant.astimezone(UTC)
    spec = "seconds" if utc.microsecond == 0 else "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def format_graph_local(instant: datetime) -> str:
    """Format a naive-local or UTC datetime the way Graph writes dateTimeTimeZone.dateTime."""
    return instant.replace(tzinfo=None).isoformat(timespec="microseconds") + "0"
