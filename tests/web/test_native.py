"""The JSON API end to end: real proxy, real msal, mock Graph over HTTPS, real sockets."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config.schema import ConnectSettings
from proxy.mock import MOCK_DOMAIN, Fault, RunningMock
from tests.support.connect import ADMIN_KEY_SHA, admin
from tests.support.leaks import assert_no_leak
from tests.support.mock_graph import MockFactory
from tests.support.proxies import KEY_ONE, ONE_ADDRESS, ProxyFactory, auth, proxy_settings

DAY = {"start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
ALLOWED_ITEM_KEYS = {"status", "start", "end"}
STATUSES = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}


def people(mock: RunningMock, count: int) -> list[str]:
    """The first ``count`` mailboxes of the mock organisation."""
    addresses = mock.graph.organisation.addresses()
    assert len(addresses) >= count
    return addresses[:count]


async def post(
    client: TestClient[Any, Any], body: Any, key: str | None = None
) -> tuple[int, dict[str, Any], str]:
    """POST /v1/availability; return status, headers and body text, checked for leaks."""
    headers = auth() if key is None else auth(key)
    async with client.post("/v1/availability", json=body, headers=headers) as resp:
        text = await resp.text()
        assert_no_leak(text, json.dumps(dict(resp.headers)))
        return resp.status, dict(resp.headers), text


async def test_minimized_availability_end_to_end(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """A request returns, per address in request order, only status/start/end in UTC with Z."""
    addresses = people(mock_graph, 3)
    status, headers, text = await post(proxy, {"schedules": addresses, **DAY})
    assert status == 200, text
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "no-store"
    body = json.loads(text)
    assert set(body) == {"start", "end", "schedules"}
    assert (body["start"], body["end"]) == (DAY["start"], DAY["end"])
    assert [s["schedule"] for s in body["schedules"]] == addresses
    total = 0
    for entry in body["schedules"]:
        assert set(entry) == {"schedule", "items", "error", "stale"}
        assert entry["stale"] is False
        assert entry["error"] is None
        for item in entry["items"]:
            total += 1
            assert set(item) == ALLOWED_ITEM_KEYS
            assert item["status"] in STATUSES
            assert item["start"].endswith("Z")
            assert item["end"].endswith("Z")
            assert DAY["start"] <= item["start"] < item["end"] <= DAY["end"]
    assert total > 0, "the mock organisation should have meetings on a Monday"


async def test_upstream_really_sent_canaries(
    mock_graph: RunningMock, proxy: TestClient[Any, Any]
) -> None:
    """The leak checks are meaningful: the mock did send canaries for this very query."""
    addresses = people(mock_graph, 3)
    status, _, _ = await post(proxy, {"schedules": addresses, **DAY})
    assert status == 200
    raw = json.dumps(mock_graph.graph.stats())
    assert mock_graph.graph.stats()["calls"]["getSchedule"] >= 1
    assert "CANARY" not in raw  # stats hold no payloads either


async def test_get_matches_post(proxy: TestClient[Any, Any], mock_graph: RunningMock) -> None:
    """GET with a comma-separated list answers the same document as POST."""
    addresses = people(mock_graph, 2)
    _, _, posted = await post(proxy, {"schedules": addresses, **DAY})
    params = {"schedules": ",".join(addresses), **DAY}
    async with proxy.get("/v1/availability", params=params, headers=auth()) as resp:
        assert resp.status == 200
        assert json.loads(await resp.text()) == json.loads(posted)


async def test_more_than_twenty_addresses_are_split(
    make_mock: MockFactory, make_proxy: ProxyFactory
) -> None:
    """45 addresses become three getSchedule calls of at most 20 schedules each."""
    mock_graph = await make_mock(org_size=60)
    proxy = await make_proxy(mock_graph)
    addresses = people(mock_graph, 45)
    status, _, text = await post(proxy, {"schedules": addresses, **DAY})
    assert status == 200, text
    stats = mock_graph.graph.stats()
    sizes = sorted(len(r["schedules"]) for r in stats["recent"])
    assert sizes == [5, 20, 20]
    assert stats["breaches"]["too_many_schedules"] == 0
    assert all(entry["error"] is None for entry in json.loads(text)["schedules"])


async def test_long_window_is_split_below_62_days(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """A 100-day window becomes calls each shorter than 62 days, and events are not duplicated."""
    addresses = people(mock_graph, 2)
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-04-11T00:00:00Z"}
    status, _, text = await post(proxy, {"schedules": addresses, **window})
    assert status == 200, text
    stats = mock_graph.graph.stats()
    assert stats["breaches"]["window_too_long"] == 0
    assert len(stats["recent"]) == 2
    for entry in json.loads(text)["schedules"]:
        items = [(i["start"], i["end"], i["status"]) for i in entry["items"]]
        assert len(items) == len(set(items))
        assert items == sorted(items)


async def test_retry_after_is_honoured(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """After a 429 with Retry-After 0.3, the proxy waits at least that long, then succeeds."""
    mock_graph.graph.add_fault(Fault(kind="status", status=429, retry_after="0.3", count=1))
    started = time.monotonic()
    status, _, text = await post(proxy, {"schedules": people(mock_graph, 1), **DAY})
    elapsed = time.monotonic() - started
    assert status == 200, text
    assert json.loads(text)["schedules"][0]["error"] is None
    assert mock_graph.graph.stats()["calls"]["getSchedule"] == 2
    assert elapsed >= 0.3  # a lower bound on waiting, not a speed check


@pytest.mark.parametrize("status", [503, 504])
async def test_transient_errors_are_retried(
    proxy: TestClient[Any, Any], mock_graph: RunningMock, status: int
) -> None:
    """503 and 504 are retried; the consumer sees only the eventual success."""
    mock_graph.graph.add_fault(Fault(kind="status", status=status, retry_after="0", count=2))
    code, _, text = await post(proxy, {"schedules": people(mock_graph, 1), **DAY})
    assert code == 200, text
    assert mock_graph.graph.stats()["calls"]["getSchedule"] == 3


@pytest.mark.parametrize("kind", ["drop", "malformed"])
async def test_broken_transport_is_retried(
    proxy: TestClient[Any, Any], mock_graph: RunningMock, kind: str
) -> None:
    """A dropped connection or a truncated body is retried rather than served."""
    mock_graph.graph.add_fault(Fault(kind=kind, count=1))
    code, _, text = await post(proxy, {"schedules": people(mock_graph, 1), **DAY})
    assert code == 200, text
    assert json.loads(text)["schedules"][0]["error"] is None


async def test_unknown_address_is_a_per_schedule_not_found(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """An address Graph cannot resolve gets not_found; the others still answer."""
    known = people(mock_graph, 1)[0]
    status, _, text = await post(proxy, {"schedules": [known, f"nobody@{MOCK_DOMAIN}"], **DAY})
    assert status == 200, text
    first, second = json.loads(text)["schedules"]
    assert first["error"] is None
    assert second == {
        "schedule": f"nobody@{MOCK_DOMAIN}",
        "items": [],
        "error": {"code": "not_found"},
        "stale": False,
    }


async def test_failure_of_one_call_is_per_schedule(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """When one of two calls keeps failing, only its schedules report an error code."""
    addresses = people(mock_graph, 25)
    # The second chunk (addresses 20..24) contains addresses[22]; fail every call that asks for it.
    mock_graph.graph.add_fault(
        Fault(kind="status", status=503, retry_after="0", schedule=addresses[22], count=None)
    )
    status, _, text = await post(proxy, {"schedules": addresses, **DAY})
    assert status == 200, text
    errors = [entry["error"] for entry in json.loads(text)["schedules"]]
    assert errors[:20] == [None] * 20
    assert errors[20:] == [{"code": "upstream_unavailable"}] * 5


async def test_throttled_past_retries_reports_throttled(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """Graph that keeps answering 429 makes the whole request fail with 502 and a code."""
    client = await make_proxy(mock_graph, max_retries=1)
    mock_graph.graph.add_fault(Fault(kind="status", status=429, retry_after="0", count=None))
    status, headers, text = await post(client, {"schedules": people(mock_graph, 1), **DAY})
    assert status == 502
    assert headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(text)["code"] == "throttled"


async def test_retry_after_beyond_deadline_fails_fast(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A Retry-After longer than the deadline is reported at once instead of waited out."""
    client = await make_proxy(mock_graph, timeout_seconds=2.0)
    mock_graph.graph.add_fault(Fault(kind="status", status=429, retry_after="3600", count=None))
    status, _, text = await post(client, {"schedules": people(mock_graph, 1), **DAY})
    assert status == 502
    assert json.loads(text)["code"] == "throttled"
    assert mock_graph.graph.stats()["calls"]["getSchedule"] == 1


async def test_graph_too_slow_is_504(make_proxy: ProxyFactory, mock_graph: RunningMock) -> None:
    """Graph slower than the deadline gives 504 upstream_timeout."""
    client = await make_proxy(mock_graph, timeout_seconds=0.5)
    mock_graph.graph.add_fault(Fault(kind="latency", delay_ms=3000, count=None))
    status, _, text = await post(client, {"schedules": people(mock_graph, 1), **DAY})
    assert status == 504
    assert json.loads(text)["code"] == "upstream_timeout"


async def test_bad_client_secret_is_502_without_detail(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A refused token request is reported as upstream_auth; nothing of the reply leaks."""
    client = await make_proxy(mock_graph, client_secret="wrong-secret")
    status, _, text = await post(client, {"schedules": people(mock_graph, 1), **DAY})
    assert status == 502
    body = json.loads(text)
    assert body["code"] == "upstream_auth"
    assert "AADSTS" not in text


async def test_token_is_reused(proxy: TestClient[Any, Any], mock_graph: RunningMock) -> None:
    """Three requests need one token request: the token is held until near expiry."""
    for _ in range(3):
        status, _, _ = await post(proxy, {"schedules": people(mock_graph, 1), **DAY})
        assert status == 200
    assert mock_graph.graph.stats()["calls"]["token"] == 1


async def test_per_mailbox_concurrency_stays_at_most_four(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """Many concurrent requests for one mailbox never put more than 4 in flight against it."""
    import asyncio

    mock_graph.graph.add_fault(Fault(kind="latency", delay_ms=50, count=None))
    address = people(mock_graph, 1)
    windows = [
        {"start": f"2026-03-{d:02d}T00:00:00Z", "end": f"2026-03-{d + 1:02d}T00:00:00Z"}
        for d in range(1, 13)
    ]
    results = await asyncio.gather(*(post(proxy, {"schedules": address, **w}) for w in windows))
    assert all(status == 200 for status, _, _ in results)
    stats = mock_graph.graph.stats()
    assert stats["max_concurrent_per_mailbox"] <= 4
    assert stats["breaches"]["concurrency"] == 0


# --- consumers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer fbp_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_wrong_key_is_401(
    proxy: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    """Without a valid key: 401 problem+json with a Bearer challenge."""
    async with proxy.post(
        "/v1/availability", json={"schedules": [ONE_ADDRESS], **DAY}, headers=headers
    ) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await resp.json(content_type=None))["code"] == "unauthorized"


async def test_allowlist_enforced(proxy: TestClient[Any, Any], mock_graph: RunningMock) -> None:
    """A consumer allowed one address gets it, and 403 for anyone else; Graph is not asked."""
    status, _, _ = await post(proxy, {"schedules": [ONE_ADDRESS.upper()], **DAY}, key=KEY_ONE)
    assert status == 200
    calls = mock_graph.graph.stats()["calls"]["getSchedule"]
    other = next(a for a in people(mock_graph, 5) if a != ONE_ADDRESS)
    status, headers, text = await post(
        proxy, {"schedules": [ONE_ADDRESS, other], **DAY}, key=KEY_ONE
    )
    assert status == 403
    assert headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(text)["code"] == "schedule_not_allowed"
    assert mock_graph.graph.stats()["calls"]["getSchedule"] == calls


async def test_foreign_domain_refused(proxy: TestClient[Any, Any]) -> None:
    """The domain wildcard does not match other domains or subdomain tricks."""
    for address in [
        "x@fabrikam.example",
        "x@contoso.example.evil.example",
        "x@evilcontoso.example",
    ]:
        status, _, _ = await post(proxy, {"schedules": [address], **DAY})
        assert status == 403, address


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"schedules": ["a@contoso.example"], "start": "2026-03-16", "end": DAY["end"]},
            "invalid_time",
        ),
        (
            {"schedules": ["a@contoso.example"], "start": "2026-03-16T00:00:00", "end": DAY["end"]},
            "invalid_time",
        ),
        ({"schedules": ["a@contoso.example"], "end": DAY["end"]}, "invalid_time"),
        (
            {"schedules": ["a@contoso.example"], "start": DAY["end"], "end": DAY["start"]},
            "invalid_window",
        ),
        (
            {"schedules": ["a@contoso.example"], "start": DAY["start"], "end": DAY["start"]},
            "invalid_window",
        ),
        (
            {
                "schedules": ["a@contoso.example"],
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-12-31T00:00:00Z",
            },
            "window_too_long",
        ),
        ({"schedules": [], **DAY}, "invalid_schedules"),
        ({"schedules": "a@contoso.example", **DAY}, "invalid_schedules"),
        ({"schedules": ["not an address"], **DAY}, "invalid_schedules"),
        ({"schedules": [42], **DAY}, "invalid_schedules"),
        ({"schedules": ["a" * 250 + "@contoso.example"], **DAY}, "invalid_schedules"),
        ({"schedules": [f"p{i}@contoso.example" for i in range(101)], **DAY}, "too_many_schedules"),
        ({"schedules": ["a@contoso.example"], "extra": 1, **DAY}, "unknown_field"),
        ([1, 2], "invalid_json"),
    ],
)
async def test_bad_input_is_400_problem(proxy: TestClient[Any, Any], body: Any, code: str) -> None:
    """Each kind of bad input has its own code, as problem+json, and Graph is never called."""
    status, headers, text = await post(proxy, body)
    assert status == 400, text
    assert headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(text)
    assert problem["code"] == code
    assert problem["status"] == 400
    assert {"type", "title", "detail"} <= set(problem)


async def test_malformed_json_is_400(proxy: TestClient[Any, Any]) -> None:
    """A body that is not JSON, or nested absurdly deep, is 400 invalid_json."""
    for data in [b"{not json", b"[" * 50_000]:
        async with proxy.post(
            "/v1/availability", data=data, headers={**auth(), "Content-Type": "application/json"}
        ) as resp:
            assert resp.status in (400, 413)
            assert resp.content_type == "application/problem+json"


async def test_wrong_content_type_is_415(proxy: TestClient[Any, Any]) -> None:
    """A form post is refused with 415."""
    async with proxy.post("/v1/availability", data={"schedules": "x"}, headers=auth()) as resp:
        assert resp.status == 415
        assert resp.content_type == "application/problem+json"


async def test_oversized_body_is_413(proxy: TestClient[Any, Any]) -> None:
    """A body past client_max_size is 413 problem+json."""
    body = json.dumps({"schedules": ["a@contoso.example"], "pad": "x" * 200_000, **DAY})
    async with proxy.post(
        "/v1/availability", data=body, headers={**auth(), "Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/problem+json"


async def test_unknown_route_and_method(proxy: TestClient[Any, Any]) -> None:
    """404 and 405 are problem+json too; 405 says what is allowed."""
    async with proxy.get("/v2/nothing") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
    async with proxy.delete("/v1/availability", headers=auth()) as resp:
        assert resp.status == 405
        assert resp.content_type == "application/problem+json"
        assert {"GET", "POST"} <= {m.strip() for m in resp.headers["Allow"].split(",")}


async def test_repeated_query_parameter_is_400(proxy: TestClient[Any, Any]) -> None:
    """GET with a parameter given twice is ambiguous and refused."""
    async with proxy.get(
        "/v1/availability?schedules=a@contoso.example&schedules=b@contoso.example"
        f"&start={DAY['start']}&end={DAY['end']}",
        headers=auth(),
    ) as resp:
        assert resp.status == 400


async def test_bad_request_does_not_break_the_next(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """A garbage request leaves the proxy serving good ones."""
    await post(proxy, {"schedules": ["x"], "start": "nope"})
    status, _, _ = await post(proxy, {"schedules": people(mock_graph, 1), **DAY})
    assert status == 200


# --- health -------------------------------------------------------------------------------


async def test_health_and_readiness(proxy: TestClient[Any, Any]) -> None:
    """/healthz is alive; /readyz gets a token and reaches Graph."""
    async with proxy.get("/healthz") as resp:
        assert resp.status == 200
    async with proxy.get("/readyz") as resp:
        assert resp.status == 200
        body = await resp.json()
        assert body == {"status": "ready", "checks": {"token": "ok", "graph": "ok"}}
    assert resp.headers["Server"] == "freebusy-proxy"


async def test_not_ready_when_token_refused(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A wrong secret makes /readyz 503; only the admin key reads the OAuth error code."""
    settings = replace(
        proxy_settings(mock_graph, client_secret="wrong-secret"),
        connect=ConnectSettings(admin_key_sha256=ADMIN_KEY_SHA),
    )
    client = await make_proxy(mock_graph, settings=settings)
    async with client.get("/readyz") as resp:
        assert resp.status == 503
        body = await resp.json()
        assert body == {"status": "not_ready", "checks": {"token": "failed", "graph": "ok"}}
    async with client.get("/readyz", headers=admin()) as resp:
        assert resp.status == 503
        body = await resp.json()
        assert body["problems"] == {"token": "invalid_client"}
        assert "AADSTS" not in json.dumps(body)
    async with client.get("/readyz", headers=auth()) as resp:
        assert resp.status == 401
