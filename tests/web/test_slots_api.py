"""POST /v1/slots end to end: real proxy, real msal, the mock Graph over HTTPS, real sockets."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from proxy.access.consumers import new_key
from proxy.config.schema import AuditSettings, FeedSettings, Settings
from proxy.core.free_time import OpenHours, Participant, SlotSearch, find_slots
from proxy.core.model import BusyItem, ScheduleResult, Status, Window
from proxy.core.policy import DEFAULT_POLICY, blocking_spans
from proxy.core.timefmt import format_utc, parse_rfc3339
from proxy.mock import MOCK_DOMAIN, RunningMock
from proxy.web.keys import AVAILABILITY
from tests.support.dialects import ask_everywhere
from tests.support.feeds import FEED_TOKEN, FEED_TOKEN_SHA, ICS
from tests.support.leaks import assert_no_leak
from tests.support.proxies import (
    AUDIT_KEY,
    KEY_ONE,
    ONE_ADDRESS,
    ProxyFactory,
    auth,
    consumer,
    graph_calls,
    proxy_settings,
)

SLOTS_KEY, SLOTS_KEY_SHA = new_key()
WEEK = {"start": "2026-03-16T08:00:00Z", "end": "2026-03-20T18:00:00Z"}
BERLIN_HOURS = [
    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00",
     "time_zone": "Europe/Berlin"}
]  # fmt: skip
OTHER = f"megan.bowen@{MOCK_DOMAIN}"


def people(mock: RunningMock, count: int) -> list[str]:
    """The first ``count`` mailboxes of the mock organisation."""
    return mock.graph.organisation.addresses()[:count]


def with_slots_key(mock: RunningMock, **fields: Any) -> Settings:
    """The test settings plus a slots-only consumer allowed the whole mock domain."""
    settings = proxy_settings(mock)
    slots_only = consumer("booking", SLOTS_KEY_SHA, (f"*@{MOCK_DOMAIN}",), detail="slots")
    return replace(settings, consumers=(*settings.consumers, slots_only), **fields)


async def ask(
    client: TestClient[Any, Any], body: Any, key: str | None = None
) -> tuple[int, dict[str, str], Any]:
    """POST /v1/slots; status, headers and the parsed body, checked for leaks."""
    headers = auth() if key is None else auth(key)
    async with client.post("/v1/slots", json=body, headers=headers) as resp:
        text = await resp.text()
        assert_no_leak(text, json.dumps(dict(resp.headers)))
        return resp.status, dict(resp.headers), json.loads(text)


async def items_of(
    client: TestClient[Any, Any], addresses: list[str], window: Window
) -> dict[str, tuple[BusyItem, ...]]:
    """What the JSON API shows of each address over ``window``."""
    body = {
        "schedules": addresses,
        "start": format_utc(window.start),
        "end": format_utc(window.end),
    }
    async with client.post("/v1/availability", json=body, headers=auth()) as resp:
        assert resp.status == 200
        document = await resp.json()
    return {
        entry["schedule"]: tuple(
            BusyItem(parse_rfc3339(i["start"]), parse_rfc3339(i["end"]), Status(i["status"]))
            for i in entry["items"]
        )
        for entry in document["schedules"]
    }


@pytest.mark.parametrize(
    ("required", "form"), [("all", "slots"), (2, "overlapping_slots"), (1, "periods")]
)
async def test_slots_are_what_the_search_finds_in_the_json_apis_items(
    proxy: TestClient[Any, Any], mock_graph: RunningMock, required: Any, form: str
) -> None:
    """A week of Berlin office hours for three people: exactly the slots the core search
    finds in the items /v1/availability shows, and nothing but start, end (and who)."""
    addresses = people(mock_graph, 3)
    body = {
        "participants": [{"schedule": a} for a in addresses[:2]]
        + [{"schedule": addresses[2], "optional": True}],
        "required": required,
        **WEEK,
        "duration_minutes": 30,
        "buffer_before_minutes": 5,
        "buffer_after_minutes": 10,
        "open_hours": BERLIN_HOURS,
        "format": form,
        "max_results": 1000,
    }
    status, headers, document = await ask(proxy, body)
    assert status == 200, document
    assert headers["Cache-Control"] == "no-store"
    assert set(document) == {"slots", "truncated", "errors"}
    assert document["errors"] == []
    assert document["slots"], "a week of office hours has room for a meeting"
    keys = {"start", "end"} if required == "all" else {"start", "end", "available"}
    assert all(set(slot) == keys for slot in document["slots"])
    search = SlotSearch(
        window=Window(start=parse_rfc3339(WEEK["start"]), end=parse_rfc3339(WEEK["end"])),
        duration=timedelta(minutes=30),
        buffer_before=timedelta(minutes=5),
        buffer_after=timedelta(minutes=10),
        open_hours=(OpenHours(frozenset(range(5)), timedelta(hours=9), timedelta(hours=17)),),
        zone=ZoneInfo("Europe/Berlin"),
        required=None if required == "all" else required,
        format=form,
        max_results=1000,
    )
    seen = await items_of(proxy, addresses, search.reach)
    participants = [
        Participant(
            blocking_spans(ScheduleResult(items=seen[a]), DEFAULT_POLICY, search.reach),
            optional=n == 2,
        )
        for n, a in enumerate(addresses)
    ]
    expected = [
        {"start": format_utc(s.start), "end": format_utc(s.end)}
        | ({} if required == "all" else {"available": [addresses[i] for i in s.available]})
        for s in find_slots(search, participants).slots
    ]
    assert document["slots"] == expected


async def test_the_mock_sent_canaries_and_the_answer_holds_none(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """The leak scan is meaningful: Graph's answers carried canaries; /v1/slots passes none."""
    body = {
        "participants": [{"schedule": a} for a in people(mock_graph, 4)],
        **WEEK,
        "duration_minutes": 45,
        "format": "periods",
    }
    status, _, document = await ask(proxy, body)
    assert status == 200
    assert graph_calls(mock_graph) >= 1
    events = mock_graph.graph.organisation.events(
        people(mock_graph, 1)[0], parse_rfc3339(WEEK["start"]), parse_rfc3339(WEEK["end"])
    )
    assert any("CANARY" in event.subject for event in events)
    assert_no_leak(json.dumps(document))


async def test_an_unknown_participant_is_listed_and_blocks(proxy: TestClient[Any, Any]) -> None:
    """nobody@ is not_found: listed in errors as requested, and "all" finds nothing."""
    nobody = f"Nobody@{MOCK_DOMAIN}"
    body = {
        "participants": [{"schedule": ONE_ADDRESS}, {"schedule": nobody}],
        **WEEK,
        "duration_minutes": 30,
    }
    status, _, document = await ask(proxy, body)
    assert status == 200
    assert document == {
        "slots": [],
        "truncated": False,
        "errors": [{"schedule": nobody, "code": "not_found"}],
    }


async def test_a_repeated_question_is_answered_from_the_memo(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """The same body again: the same bytes, no Graph call, and a memo of its own route."""
    body = {"participants": [{"schedule": a} for a in people(mock_graph, 2)], **WEEK,
            "duration_minutes": 30}  # fmt: skip
    async with proxy.post("/v1/slots", json=body, headers=auth()) as resp:
        first = await resp.read()
    calls = graph_calls(mock_graph)
    for _ in range(2):  # kept the second time it is asked, answered from it the third
        async with proxy.post("/v1/slots", json=body, headers=auth()) as resp:
            assert resp.status == 200
            assert await resp.read() == first
        assert len(proxy.app[AVAILABILITY].memo) == 1
    assert graph_calls(mock_graph) == calls


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"extra": 1}, "unknown_field"),
        ({"participants": []}, "invalid_schedules"),
        ({"participants": [{"schedule": "not an address"}]}, "invalid_schedules"),
        ({"participants": [{"schedule": ONE_ADDRESS, "name": "x"}]}, "invalid_schedules"),
        ({"participants": [{"schedule": ONE_ADDRESS}, {"schedule": ONE_ADDRESS.upper()}]},
         "invalid_schedules"),
        ({"participants": [{"schedule": ONE_ADDRESS, "optional": True}]}, "invalid_request"),
        ({"participants": [{"schedule": ONE_ADDRESS, "optional": "yes"}]}, "invalid_request"),
        ({"required": 2}, "invalid_request"),
        ({"required": 0}, "invalid_request"),
        ({"required": True}, "invalid_request"),
        ({"required": "any"}, "invalid_request"),
        ({"duration_minutes": None}, "invalid_request"),
        ({"duration_minutes": 0}, "invalid_request"),
        ({"duration_minutes": 30.5}, "invalid_request"),
        ({"interval_minutes": 1441}, "invalid_request"),
        ({"buffer_before_minutes": -1}, "invalid_request"),
        ({"buffer_after_minutes": 241}, "invalid_request"),
        ({"max_results": 1001}, "invalid_request"),
        ({"format": "busy"}, "invalid_request"),
        ({"start": "2026-03-16T08:00:00"}, "invalid_time"),
        ({"end": WEEK["start"]}, "invalid_window"),
        ({"open_hours": {"days": ["mon"]}}, "invalid_request"),
        ({"open_hours": [{"days": ["mon"], "start": "09:00", "end": "17:00"}]},
         "invalid_request"),
        ({"open_hours": [{**BERLIN_HOURS[0], "days": ["monday"]}]}, "invalid_request"),
        ({"open_hours": [{**BERLIN_HOURS[0], "days": []}]}, "invalid_request"),
        ({"open_hours": [{**BERLIN_HOURS[0], "start": "9:00"}]}, "invalid_time"),
        ({"open_hours": [{**BERLIN_HOURS[0], "end": "24:01"}]}, "invalid_time"),
        ({"open_hours": [{**BERLIN_HOURS[0], "start": "17:00", "end": "09:00"}]},
         "invalid_time"),
        ({"open_hours": [{**BERLIN_HOURS[0], "time_zone": "Mars/Olympus"}]},
         "invalid_time_zone"),
        ({"open_hours": [BERLIN_HOURS[0], {**BERLIN_HOURS[0], "time_zone": "UTC"}]},
         "invalid_time_zone"),
        ({"open_hours": BERLIN_HOURS * 21}, "invalid_request"),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-09-01T00:00:00Z"}, "window_too_long"),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-05-02T00:00:01Z"}, "window_too_long"),
        ({"participants": [{"schedule": f"p{n}@{MOCK_DOMAIN}"} for n in range(21)]},
         "too_many_schedules"),
    ],
)  # fmt: skip
async def test_bad_questions_are_problems_with_a_code(
    proxy: TestClient[Any, Any], change: dict[str, Any], code: str
) -> None:
    """Each malformed question is a 400 problem document naming what is wrong."""
    body = {"participants": [{"schedule": ONE_ADDRESS}], **WEEK, "duration_minutes": 30}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    status, headers, document = await ask(proxy, body)
    assert status == 400, document
    assert headers["Content-Type"].startswith("application/problem+json")
    assert document["code"] == code


async def test_windows_time_zone_names_are_accepted(proxy: TestClient[Any, Any]) -> None:
    """Windows names may be mixed with the IANA names they stand for."""
    pairs = [("W. Europe Standard Time", "Europe/Berlin"), ("UTC", "Coordinated Universal Time")]
    for names in pairs:
        hours = [{**BERLIN_HOURS[0], "time_zone": name} for name in names]
        body = {"participants": [{"schedule": ONE_ADDRESS}], **WEEK, "duration_minutes": 30,
                "open_hours": hours}  # fmt: skip
        status, _, document = await ask(proxy, body)
        assert status == 200, document


async def test_slots_only_key_is_refused_on_every_other_route_in_its_shape(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """detail = "slots": /v1/slots answers; the JSON API, the Graph drop-in, Google freeBusy
    and the .ics feed answer 403 slots_only in their own shapes, audited as slots_only, and
    nothing is fetched for them."""
    path = tmp_path / "audit.jsonl"
    settings = with_slots_key(mock_graph, audit=AuditSettings(hmac_key=AUDIT_KEY, file=path))
    proxy = await make_proxy(mock_graph, settings=settings)
    window = ("2026-03-16T00:00:00Z", "2026-03-17T00:00:00Z")
    statuses = await ask_everywhere(proxy, SLOTS_KEY, ONE_ADDRESS, window)
    assert statuses.pop("POST /v1/slots") == 200
    assert set(statuses.values()) == {403}, statuses
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    outcomes = {line["route"]: line["outcome"] for line in lines}
    assert outcomes.pop("POST /v1/slots") == "ok"
    assert outcomes == dict.fromkeys(statuses, "slots_only")
    assert {line["upstream_calls"] for line in lines if line["outcome"] == "slots_only"} == {0}
    start, end = window
    headers = auth(SLOTS_KEY)
    async with proxy.post(
        "/v1/availability", json={"schedules": [ONE_ADDRESS], "start": start, "end": end},
        headers=headers,
    ) as resp:  # fmt: skip
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["code"] == "slots_only"
    graph_body = {
        "schedules": [ONE_ADDRESS],
        "startTime": {"dateTime": start[:-1], "timeZone": "UTC"},
        "endTime": {"dateTime": end[:-1], "timeZone": "UTC"},
    }
    async with proxy.post(
        f"/v1.0/users/{ONE_ADDRESS}/calendar/getSchedule", json=graph_body, headers=headers
    ) as resp:
        error = (await resp.json())["error"]
        assert (error["code"], error["innerError"]["code"]) == ("ErrorAccessDenied", "slots_only")
    google_body = {"timeMin": start, "timeMax": end, "items": [{"id": ONE_ADDRESS}]}
    async with proxy.post("/calendar/v3/freeBusy", json=google_body, headers=headers) as resp:
        error = (await resp.json())["error"]
        assert (error["code"], error["errors"][0]["reason"]) == (403, "forbidden")


async def test_a_feed_token_of_a_slots_only_consumer_reads_no_feed(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Even a feed the loader would refuse (it names a slots-only consumer) shows nothing."""
    feed = FeedSettings(
        name="adele", token_sha256=FEED_TOKEN_SHA, address=ONE_ADDRESS, consumer="booking"
    )
    proxy = await make_proxy(mock_graph, settings=with_slots_key(mock_graph, feeds=(feed,)))
    async with proxy.get(ICS, params={"token": FEED_TOKEN}) as resp:
        assert resp.status == 403
        assert (await resp.json())["code"] == "slots_only"


async def test_the_audit_line_records_route_counts_and_outcome(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """One line per /v1/slots request: route, participant count, window, status, outcome,
    Graph calls; refusals carry their code."""
    path = tmp_path / "audit.jsonl"
    settings = replace(
        proxy_settings(mock_graph), audit=AuditSettings(hmac_key=AUDIT_KEY, file=path)
    )
    client = await make_proxy(mock_graph, settings=settings)
    addresses = people(mock_graph, 3)
    body = {"participants": [{"schedule": a} for a in addresses], **WEEK, "duration_minutes": 60}
    assert (await ask(client, body))[0] == 200
    assert (await ask(client, body))[0] == 200
    refused = {**body, "participants": [{"schedule": ONE_ADDRESS}, {"schedule": OTHER}]}
    assert (await ask(client, refused, KEY_ONE))[0] == 403
    assert (await ask(client, {**body, "format": "all"}))[0] == 400
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert_no_leak(path.read_text())
    assert [line["route"] for line in lines] == ["POST /v1/slots"] * 4
    assert [(line["status"], line["outcome"]) for line in lines] == [
        (200, "ok"),
        (200, "ok"),
        (403, "schedule_not_allowed"),
        (400, "invalid_request"),
    ]
    assert [line["addresses"] for line in lines[:3]] == [3, 3, 2]
    assert lines[0]["window"] == {"start": WEEK["start"], "end": WEEK["end"]}
    assert lines[0]["upstream_calls"] >= 1
    assert lines[1]["upstream_calls"] == 0
    assert all(address not in path.read_text() for address in addresses)


async def test_only_post_is_served(proxy: TestClient[Any, Any]) -> None:
    """GET /v1/slots is 405 with Allow: POST."""
    async with proxy.get("/v1/slots", headers=auth()) as resp:
        assert resp.status == 405
        assert "POST" in resp.headers["Allow"]


async def test_the_largest_search_is_answered(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """20 participants over 62 days, every 5 minutes: answered, at most max_results."""
    body = {
        "participants": [{"schedule": a, "optional": True} for a in people(mock_graph, 20)],
        "required": 2,
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-05-02T00:00:00Z",
        "duration_minutes": 15,
        "interval_minutes": 5,
        "format": "overlapping_slots",
        "max_results": 1000,
    }
    status, _, document = await ask(proxy, body)
    assert status == 200, document
    assert len(document["slots"]) == 1000
    assert document["truncated"] is True
