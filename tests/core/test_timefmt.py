"""RFC 3339 at the edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.timefmt import format_graph_local, format_utc, parse_rfc3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-15T09:00:00Z", datetime(2026, 3, 15, 9, tzinfo=UTC)),
        ("2026-03-15t09:00:00z", datetime(2026, 3, 15, 9, tzinfo=UTC)),
        ("2026-03-15T10:00:00+01:00", datetime(2026, 3, 15, 9, tzinfo=UTC)),
        ("2026-03-15T09:00:00.123456789Z", datetime(2026, 3, 15, 9, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parse_accepts_rfc3339(text: str, expected: datetime) -> None:
    """Offsets are applied and the result is UTC."""
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-15T09:00:00",
        "2026-03-15",
        "2026-W11-1T09:00Z",
        "2026-03-15T09:00Z",
        "tomorrow",
        "2026-13-40T09:00:00Z",
        "",
    ],
)
def test_parse_rejects_anything_else(text: str) -> None:
    """No offset, no seconds, or not a date-time: rejected rather than guessed."""
    with pytest.raises(ValueError, match=r".+"):
        parse_rfc3339(text)


_STAMPS = st.builds(
    lambda instant, digits, fraction, offset, sep: (
        f"{instant.year:04d}-{instant.month:02d}-{instant.day:02d}{sep}"
        f"{instant.hour:02d}:{instant.minute:02d}:{instant.second:02d}"
        + (f".{fraction:09d}"[: digits + 1] if digits else "")
        + (
            "Z"
            if offset is None
            else f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        )
    ),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(0, 9),
    st.integers(0, 999_999_999),
    st.one_of(st.none(), st.integers(-23 * 60 - 59, 23 * 60 + 59)),
    st.sampled_from(["T", " "]),
)


@given(text=_STAMPS)
def test_every_spelling_of_a_stamp_reads_the_same(text: str) -> None:
    """Upper-case stamps (read by fromisoformat) and their lower-case spelling (normalised
    first) give the same instant, or are both refused (out of range once in UTC)."""
    lower = text.replace("T", "t").replace("Z", "z")
    try:
        expected = parse_rfc3339(lower)
    except ValueError:
        with pytest.raises(ValueError, match="out of range"):
            parse_rfc3339(text)
        return
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_format_is_utc_with_z() -> None:
    """Output is always UTC with a Z suffix."""
    assert (
        format_utc(datetime(2026, 3, 15, 10, tzinfo=timezone(timedelta(hours=1))))
        == "2026-03-15T09:00:00Z"
    )


def test_graph_local_has_seven_fraction_digits() -> None:
    """Graph's dateTime shape: seven fractional digits, no offset."""
    assert format_graph_local(datetime(2026, 3, 15, 9, tzinfo=UTC)) == "2026-03-15T09:00:00.0000000"


@pytest.mark.parametrize(
    "instant",
    [
        datetime(2026, 3, 15, 9, tzinfo=UTC),
        datetime(2026, 3, 15, 9, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 15, 10, 0, 0, 500000, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_format_instant_matches_format_utc(instant: datetime) -> None:
    """The unmemoised formatter writes what the memoised one does."""
    from proxy.core.timefmt import format_instant

    expected = instant.astimezone(UTC).replace(tzinfo=None)
    spec = "seconds" if expected.microsecond == 0 else "microseconds"
    assert format_instant(instant) == format_utc(instant) == expected.isoformat(timespec=spec) + "Z"
