"""Adversarial Graph payloads: the minimizer never raises and only lets allowed data out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.core.minimize import decode_answer, minimize, minimize_answer, minimize_item
from proxy.core.model import Query, Status, Window
from proxy.core.timefmt import format_utc
from proxy.mock import Fault, RunningMock
from proxy.web.dialects.native import render_availability
from tests.support.leaks import assert_no_leak
from tests.support.proxies import ONE_ADDRESS, auth

REQUESTED = ["adele.vance@contoso.example", "Alex.Wilber@contoso.example", "room.1@contoso.example"]
CANARY = "CANARY-payload"

# --- strategies ---------------------------------------------------------------------------

junk_text = st.one_of(
    st.text(max_size=30),
    st.just(CANARY),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=10).map(
        lambda t: CANARY + t
    ),
    st.just("x" * 100_000),  # huge
    st.just("\u202e\u0000\ud7ff\U0010ffff"),  # bidi override, NUL, edge code points
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    junk_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(junk_text, children, max_size=4)
    ),
    max_leaves=12,
)

date_texts = st.one_of(
    # Plausible: around the window, in Graph's 7-digit spelling or with offsets.
    st.datetimes(min_value=datetime(2026, 3, 14), max_value=datetime(2026, 3, 18)).map(
        lambda d: d.isoformat(timespec="microseconds") + "0"
    ),
    st.datetimes(min_value=datetime(2026, 3, 14), max_value=datetime(2026, 3, 18)).map(
        lambda d: d.isoformat()
    ),
    st.tuples(
        st.datetimes(min_value=datetime(2026, 3, 14), max_value=datetime(2026, 3, 18)),
        st.sampled_from(["Z", "+00:00", "+14:00", "-12:00", "+05:45", "-00:30", "+23:59"]),
    ).map(lambda p: p[0].isoformat() + p[1]),
    # The edges of datetime's range, with offsets that push them past it.
    st.sampled_from(
        [
            "0001-01-01T00:00:00",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59.9999999",
            "9999-12-31T23:00:00-12:00",
            "9999-12-31T23:59:59-00:01",
        ]
    ),
    # Odd formats.
    st.sampled_from(
        [
            "2026-03-16",
            "2026-03-16T24:00:00",
            "2026-03-16T23:59:60",
            "2026-02-30T10:00:00",
            "2026-03-16T10:00:00.",
            "2026-03-16T10:00:00.12345678901234567890",
            "2026-03-16t10:00:00z",
            "2026-W12-1T10:00:00",
            "20260316T100000",
            "\uff12\uff10\uff12\uff16-03-16T10:00:00",
            "2026-03-16T10:00:00+25:00",
            "2026-03-16T10:00:00 UTC",
            "",
            " 2026-03-16T10:00:00",
        ]
    ),
    junk_text,
)
zones = st.one_of(
    st.sampled_from(
        [
            "UTC",
            "utc",
            "Pacific Standard Time",
            "W. Europe Standard Time",
            "Europe/Berlin",
            "America/St_Johns",
            "Asia/Kathmandu",
            "Pacific/Kiritimati",
            "Etc/GMT+12",
            "tzone://Microsoft/Custom",
            "Customized Time Zone",
            "../../etc/passwd",
            "",
        ]
    ),
    junk_text,
    scalars,
)
date_time_zone = st.one_of(
    st.fixed_dictionaries(
        {"dateTime": date_texts, "timeZone": zones}, optional={"extra": json_values}
    ),
    json_values,
)
statuses = st.one_of(
    st.sampled_from([s.value for s in Status]),
    st.sampled_from([s.value.upper() for s in Status] + ["Busy", "OOF", "workingelsewhere"]),
    st.sampled_from(["elsewhere", "busy ", "4", "\uff22\uff35\uff33\uff39"]),
    scalars,
)
schedule_items = st.one_of(
    st.fixed_dictionaries(
        {"status": statuses, "start": date_time_zone, "end": date_time_zone},
        optional={
            "subject": junk_text,
            "location": junk_text,
            "isPrivate": scalars,
            "unknownKey": json_values,
            "Status": statuses,
        },
    ),
    json_values,
)
schedule_ids = st.one_of(
    st.sampled_from(REQUESTED).map(str.upper),
    st.sampled_from(REQUESTED).map(str.lower),
    st.sampled_from(REQUESTED),
    st.sampled_from(["someone.else@contoso.example", "adele.vance@contoso.example.evil"]),
    scalars,
)
schedule_infos = st.one_of(
    st.fixed_dictionaries(
        {"scheduleId": schedule_ids},
        optional={
            "scheduleItems": st.one_of(st.lists(schedule_items, max_size=6), json_values),
            "error": st.one_of(
                st.fixed_dictionaries(
                    {"message": junk_text, "responseCode": st.one_of(st.just("5009"), scalars)}
                ),
                json_values,
            ),
            "availabilityView": junk_text,
            "workingHours": json_values,
            "unknownKey": json_values,
        },
    ),
    json_values,
)
values = st.one_of(st.lists(schedule_infos, max_size=8), json_values)
windows = st.tuples(
    st.datetimes(min_value=datetime(2026, 3, 14), max_value=datetime(2026, 3, 17)),
    st.integers(min_value=1, max_value=5 * 24 * 60),
).map(
    lambda p: Window(
        start=p[0].replace(tzinfo=UTC), end=p[0].replace(tzinfo=UTC) + timedelta(minutes=p[1])
    )
)

# --- properties ---------------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(value=values, window=windows)
def test_minimizer_output_is_always_allowed(value: Any, window: Window) -> None:
    """Any JSON-shaped payload: no exception; one result per requested address; only
    statuses, and UTC intervals inside the window, sorted and unique; nothing else."""
    results = minimize(value, requested=REQUESTED, window=window)
    assert set(results) == {address.casefold() for address in REQUESTED}
    for result in results.values():
        assert result.error is None or result.items == ()
        assert list(result.items) == sorted(set(result.items))
        for item in result.items:
            assert isinstance(item.status, Status)
            assert item.start.utcoffset() == timedelta(0)
            assert item.end.utcoffset() == timedelta(0)
            assert window.start <= item.start < item.end <= window.end
    # Rendered as a consumer gets it: exactly the allowed keys, and no upstream text.
    query = Query(schedules=tuple(REQUESTED), window=window)
    document = json.loads(render_availability(query, results))
    assert set(document) == {"start", "end", "schedules"}
    for entry in document["schedules"]:
        assert set(entry) <= {"schedule", "items", "error", "stale"}
        assert entry["error"] is None or set(entry["error"]) == {"code"}
        for item in entry["items"]:
            assert set(item) == {"status", "start", "end"}
    assert_no_leak(json.dumps(document))


usual_items = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from([s.value for s in Status] + ["Busy", "elsewhere"]),
            "start": st.fixed_dictionaries({"dateTime": date_texts, "timeZone": zones}),
            "end": st.fixed_dictionaries({"dateTime": date_texts, "timeZone": zones}),
        },
        optional={"subject": junk_text, "isPrivate": scalars},
    ),
    max_size=6,
)
usual_values = st.lists(
    st.fixed_dictionaries(
        {"scheduleId": st.sampled_from([*REQUESTED, "someone.else@contoso.example"])},
        optional={
            "scheduleItems": st.one_of(st.none(), usual_items),
            "error": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "responseCode": st.sampled_from(["5009", 5009, "ErrorInvalidUser", "x"])
                    },
                ),
            ),
            "availabilityView": junk_text,
        },
    ),
    max_size=8,
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(value=st.one_of(usual_values, values), window=windows)
def test_typed_decoding_reads_every_body_as_the_minimizer_does(value: Any, window: Window) -> None:
    """A body in the usual shape (decoded into structs) and any other body (parsed as JSON,
    judged value by value) minimize to exactly what minimize() makes of the same value."""
    body = json.dumps({"value": value}).encode()
    answer = decode_answer(body)
    assert minimize_answer(answer, requested=REQUESTED, window=window) == minimize(
        value, requested=REQUESTED, window=window
    )


@given(
    item=st.fixed_dictionaries(
        {
            "status": statuses,
            "start": st.fixed_dictionaries({"dateTime": date_texts, "timeZone": zones}),
            "end": st.fixed_dictionaries({"dateTime": date_texts, "timeZone": zones}),
        }
    ),
    window=windows,
)
def test_any_single_item_is_safe(item: dict[str, Any], window: Window) -> None:
    """Well-shaped items with hostile times and zones: None or a UTC interval in the window."""
    result = minimize_item(item, window)
    if result is not None:
        assert result.start.utcoffset() == timedelta(0)
        assert window.start <= result.start < result.end <= window.end


@given(value=values)
def test_unrequested_schedules_never_appear(value: Any) -> None:
    """Only requested addresses come out, however Graph spells or repeats its scheduleIds."""
    window = Window(start=datetime(2026, 3, 16, tzinfo=UTC), end=datetime(2026, 3, 17, tzinfo=UTC))
    results = minimize(value, requested=REQUESTED[:1], window=window)
    assert list(results) == [REQUESTED[0].casefold()]


# --- end to end: adversarial bodies from the mock ---------------------------------------------

DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
GOOD = {"dateTime": "2026-03-16T10:00:00.0000000", "timeZone": "UTC"}
LATER = {"dateTime": "2026-03-16T11:00:00.0000000", "timeZone": "UTC"}
ADVERSARIAL_BODIES: list[Any] = [
    [1, 2, 3],
    {"value": "CANARY-not-a-list"},
    {"value": [None, 42, "CANARY-x", {"scheduleId": None}]},
    {
        "value": [
            {
                "scheduleId": ONE_ADDRESS.upper(),
                "scheduleItems": [
                    {
                        "status": "busy",
                        "start": GOOD,
                        "end": LATER,
                        "subject": "CANARY-" + "y" * 50_000,
                        "CANARY-key": {"nested": ["CANARY-deep"]},
                    },
                    {"status": None, "start": GOOD, "end": LATER},
                    {
                        "status": "busy",
                        "start": {"dateTime": "9999-12-31T23:00:00-12:00"},
                        "end": LATER,
                    },
                    {
                        "status": "busy",
                        "start": {"dateTime": "2026-03-16T10:00:00", "timeZone": "CANARY-zone"},
                        "end": LATER,
                    },
                ],
            },
            {
                "scheduleId": "intruder@contoso.example",
                "scheduleItems": [{"status": "busy", "start": GOOD, "end": LATER}],
            },
            {
                "scheduleId": ONE_ADDRESS,
                "scheduleItems": [{"status": "oof", "start": GOOD, "end": LATER}],
            },
        ],
        "@odata.nextLink": "CANARY-next",
    },
    {
        "value": [
            {"scheduleId": ONE_ADDRESS, "error": {"message": "CANARY-err", "responseCode": {}}}
        ]
    },
]


async def test_adversarial_bodies_end_to_end(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """Hostile getSchedule bodies served by the mock: 200, allowed keys only, no leak."""
    outcomes = []
    for index, body in enumerate(ADVERSARIAL_BODIES):
        mock_graph.graph.add_fault(Fault(kind="body", body=body, count=1))
        # Days 10 apart (the fourth is the items' day), so no answer comes from the cache.
        day = datetime(2026, 3, 16, tzinfo=UTC) + timedelta(days=10 * (index - 3))
        window = {"start": format_utc(day), "end": format_utc(day + timedelta(days=1))}
        async with proxy.post(
            "/v1/availability", json={"schedules": [ONE_ADDRESS], **window}, headers=auth()
        ) as resp:
            text = await resp.text()
        assert resp.status == 200, text
        assert_no_leak(text)
        entry = json.loads(text)["schedules"][0]
        assert set(entry) <= {"schedule", "items", "error", "stale"}
        outcomes.append(entry)
    # Non-list or junk values: the address reports upstream_error, not a crash.
    assert [o["error"] for o in outcomes[:3]] == [{"code": "upstream_error"}] * 3
    # The first usable answer for the address wins; intruders and broken items are dropped.
    assert outcomes[3] == {
        "schedule": ONE_ADDRESS,
        "items": [
            {"status": "busy", "start": "2026-03-16T10:00:00Z", "end": "2026-03-16T11:00:00Z"}
        ],
        "error": None,
        "stale": False,
    }
    assert outcomes[4]["error"] == {"code": "upstream_error"}
