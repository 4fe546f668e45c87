"""Time zone names Graph uses (IANA and Windows) resolved to zoneinfo."""

from __future__ import annotations

from datetime import UTC, tzinfo
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# Windows zone ids seen in Graph payloads, mapped as CLDR's windowsZones.xml maps territory 001.
WINDOWS_TO_IANA: dict[str, str] = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Alaskan Standard Time": "America/Anchorage",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Atlantic Standard Time": "America/Halifax",
    "Canada Central Standard Time": "America/Regina",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
    "India Standard Time": "Asia/Calcutta",
    "China Standard Time": "Asia/Shanghai",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Singapore Standard Time": "Asia/Singapore",
    "Arabian Standard Time": "Asia/Dubai",
    "Israel Standard Time": "Asia/Jerusalem",
    "South Africa Standard Time": "Africa/Johannesburg",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "E. Australia Standard Time": "Australia/Brisbane",
    "W. Australia Standard Time": "Australia/Perth",
    "New Zealand Standard Time": "Pacific/Auckland",
}

_FOLDED_WINDOWS = {name.casefold(): iana for name, iana in WINDOWS_TO_IANA.items()}
# Files of the zone database that are not zones: "localtime" (and often "posixrules") is the
# host's own zone, and "Factory" a placeholder. Answering in them would reveal the host's zone.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def known_zone_names() -> frozenset[str]:
    """The IANA zone names we accept: the zone database's, without the host's own."""
    return frozenset(available_timezones()) - _NOT_ZONES


@lru_cache(maxsize=512)
def resolve_zone(name: str) -> tzinfo | None:
    """Return the zone for an IANA or Windows name, or None when it is not one we know."""
    if len(name) > 64:
        return None
    if name.casefold() in ("utc", "etc/utc", "z", "tzone://microsoft/utc"):
        return UTC
    iana = _FOLDED_WINDOWS.get(name.casefold(), name)
    if iana not in known_zone_names():
        # Only names of the table: no file path under the zone directory ("posix/...",
        # "right/..."), nothing that names the host's zone.
        return None
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
