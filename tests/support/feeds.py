"""A calendar feed token for ONE_ADDRESS, and reading a feed back with the icalendar library."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from icalendar import Calendar

from proxy.access.feeds import new_feed_token
from proxy.config.schema import FeedSettings, IcalSettings, Settings
from proxy.mock import RunningMock
from tests.support.proxies import ONE_ADDRESS, proxy_settings

FEED_TOKEN, FEED_TOKEN_SHA = new_feed_token()
ICS = f"/v1/schedules/{ONE_ADDRESS}/freebusy.ics"


def with_feed(mock: RunningMock, **ical: Any) -> Settings:
    """The usual test settings plus one feed for ONE_ADDRESS, read as consumer "all"."""
    base = proxy_settings(mock)
    feed = FeedSettings(
        name="adele", token_sha256=FEED_TOKEN_SHA, address=ONE_ADDRESS.upper(), consumer="all"
    )
    return replace(base, feeds=(feed,), ical=IcalSettings(**ical))


def parse_feed(body: bytes) -> tuple[Any, set[tuple[str, datetime, datetime]]]:
    """The single VFREEBUSY of a feed and its (FBTYPE, start, end) periods."""
    calendar = Calendar.from_ical(body)
    components = list(calendar.walk("VFREEBUSY"))
    assert len(components) == 1
    component = components[0]
    raw = component.get("freebusy", [])
    periods = set()
    for period in raw if isinstance(raw, list) else [raw]:
        start, end = period.dt
        assert start.utcoffset() == timedelta(0)
        periods.add((period.params["FBTYPE"], start, end))
    return component, periods
