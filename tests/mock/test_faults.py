"""Scripted faults, Outlook's per-mailbox limits and the /_mock/ scenario endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from proxy.mock import Fault, RunningMock
from tests.support.mock_graph import open_session, post_schedule, schedule_body


def _body(mock: RunningMock, count: int = 1) -> dict[str, Any]:
    return schedule_body(mock.graph.organisation.addresses()[:count])


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "TooManyRequests"), (503, "ServiceUnavailable"), (504, "GatewayTimeout")],
)
async def test_status_faults_answer_graph_errors_with_retry_after(
    mock: RunningMock, session: aiohttp.ClientSession, status: int, code: str
) -> None:
    """A status fault answers Graph's error shape with the Retry-After given, even fractional."""
    mock.graph.add_fault(Fault(kind="status", status=status, retry_after="0.2"))
    got, headers, body = await post_schedule(session, mock, _body(mock))
    assert got == status
    assert headers["Retry-After"] == "0.2"
    assert body["error"]["code"] == code
    got, _, _ = await post_schedule(session, mock, _body(mock))
    assert got == 200, "a fault with count=1 applies once"


async def test_status_faults_without_retry_after_send_none(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """Retry-After is only sent when the fault sets it."""
    mock.graph.add_fault(Fault(kind="status"))
    status, headers, _ = await post_schedule(session, mock, _body(mock))
    assert status == 503
    assert "Retry-After" not in headers


async def test_malformed_fault_serves_truncated_json(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A malformed fault answers 200 whose JSON does not parse."""
    mock.graph.add_fault(Fault(kind="malformed"))
    status, _, body = await post_schedule(session, mock, _body(mock))
    assert status == 200
    assert isinstance(body, str)
    assert body.startswith('{"@odata.context"')


async def test_drop_fault_disconnects_the_client(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A drop fault closes the connection: aiohttp raises ServerDisconnectedError."""
    mock.graph.add_fault(Fault(kind="drop"))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_schedule(session, mock, _body(mock))
    status, _, _ = await post_schedule(session, mock, _body(mock))
    assert status == 200


async def test_body_fault_serves_the_given_payload(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A body fault serves exactly the JSON it carries (for adversarial payloads)."""
    payload = {"value": [{"scheduleId": "x", "scheduleItems": [{"status": "<script>"}]}]}
    mock.graph.add_fault(Fault(kind="body", body=payload))
    status, _, body = await post_schedule(session, mock, _body(mock))
    assert (status, body) == (200, payload)


async def test_latency_fault_delays_then_answers(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """A latency fault still gives the normal answer."""
    mock.graph.add_fault(Fault(kind="latency", delay_ms=20))
    status, _, body = await post_schedule(session, mock, _body(mock))
    assert status == 200
    assert "value" in body


async def test_faults_match_mailbox_and_schedule(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """mailbox matches the URL {id} case-insensitively; schedule matches a requested address."""
    first, second, third = mock.graph.organisation.addresses()[:3]
    mock.graph.add_fault(Fault(kind="status", status=500, mailbox=second.upper(), count=None))
    mock.graph.add_fault(Fault(kind="status", status=502, schedule=third, count=None))
    assert (await post_schedule(session, mock, schedule_body([first]), mailbox=first))[0] == 200
    assert (await post_schedule(session, mock, schedule_body([first]), mailbox=second))[0] == 500
    both = schedule_body([first, third])
    assert (await post_schedule(session, mock, both, mailbox=first))[0] == 502
    assert (await post_schedule(session, mock, schedule_body([first]), mailbox=second))[0] == 500


async def test_faults_apply_in_order_and_count_down(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """The first matching fault with uses left applies; count=2 applies twice."""
    mock.graph.add_fault(Fault(kind="status", status=503, count=2))
    mock.graph.add_fault(Fault(kind="status", status=504))
    statuses = [(await post_schedule(session, mock, _body(mock)))[0] for _ in range(4)]
    assert statuses == [503, 503, 504, 200]


async def test_token_and_discovery_faults(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """Faults on the identity endpoints answer in the identity platform's shape."""
    mock.graph.add_fault(Fault(endpoint="openid-configuration", kind="status", status=500))
    mock.graph.add_fault(Fault(endpoint="token", kind="status", status=429, retry_after="3"))
    url = f"{mock.url}/{mock.graph.settings.tenant_id}"
    async with session.get(f"{url}/v2.0/.well-known/openid-configuration") as response:
        assert response.status == 500
    async with session.post(f"{url}/oauth2/v2.0/token", data={}) as response:
        body = await response.json()
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        assert body["error"] == "temporarily_unavailable"


async def test_wildcard_faults_match_every_endpoint(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """endpoint="*" applies to whichever request comes first."""
    mock.graph.add_fault(Fault(endpoint="*", kind="status", status=503, count=2))
    url = f"{mock.url}/{mock.graph.settings.tenant_id}/v2.0/.well-known/openid-configuration"
    async with session.get(url) as response:
        assert response.status == 503
    assert (await post_schedule(session, mock, _body(mock)))[0] == 503
    assert (await post_schedule(session, mock, _body(mock)))[0] == 200


async def test_concurrency_beyond_four_per_mailbox_is_throttled(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """With four requests held in flight for one mailbox, the fifth and sixth get 429."""
    mailbox = mock.graph.organisation.addresses()[0]
    # Held until the faults are cleared; the long delay is only a safety net.
    mock.graph.add_fault(Fault(kind="latency", delay_ms=60_000, mailbox=mailbox, count=None))
    tasks = [
        asyncio.create_task(post_schedule(session, mock, _body(mock), mailbox=mailbox))
        for _ in range(6)
    ]
    finished: list[tuple[int, dict[str, str], Any]] = []
    pending: set[asyncio.Task[tuple[int, dict[str, str], Any]]] = set(tasks)
    while len(finished) < 2:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finished.extend(task.result() for task in done)
    for status, headers, body in finished:
        assert status == 429
        assert body["error"]["code"] == "ApplicationThrottled"
        assert "MailboxConcurrency" in body["error"]["message"]
        assert float(headers["Retry-After"]) > 0
    mock.graph.clear_faults()
    released = await asyncio.gather(*pending)
    assert [status for status, _, _ in released] == [200] * 4
    stats = mock.graph.stats()
    assert stats["breaches"]["concurrency"] == 2
    assert stats["max_concurrent_per_mailbox"] == 5  # four held plus each rejected one


async def test_other_mailboxes_are_not_throttled_by_a_busy_one(
    mock: RunningMock, session: aiohttp.ClientSession
) -> None:
    """Concurrency is counted per URL mailbox."""
    busy, other = mock.graph.organisation.addresses()[:2]
    mock.graph.add_fault(Fault(kind="latency", delay_ms=60_000, mailbox=busy, count=None))
    held = [
        asyncio.create_task(post_schedule(session, mock, _body(mock), mailbox=busy))
        for _ in range(4)
    ]
    status, _, _ = await post_schedule(session, mock, _body(mock), mailbox=other)
    assert status == 200
    mock.graph.clear_faults()
    assert [r[0] for r in await asyncio.gather(*held)] == [200] * 4
    assert mock.graph.stats()["breaches"]["concurrency"] == 0


async def test_ten_minute_budget_is_enforced(mock_factory: Any) -> None:
    """Past mailbox_rate_limit requests in ten minutes, a mailbox gets 429 and a rate breach."""
    mock = await mock_factory(mailbox_rate_limit=2)
    async with open_session(mock) as session:
        statuses = [(await post_schedule(session, mock, _body(mock)))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert mock.graph.stats()["breaches"]["rate"] == 1
        mock.graph.reset()
        assert (await post_schedule(session, mock, _body(mock)))[0] == 200


async def test_scenario_endpoints(mock: RunningMock, session: aiohttp.ClientSession) -> None:
    """/_mock/ adds, lists and clears faults, resets counters and lists the organisation."""
    base = f"{mock.url}/_mock"
    fault = {"kind": "status", "status": 429, "retry_after": "0.2", "count": None}
    async with session.post(f"{base}/faults", json=fault) as response:
        assert response.status == 201
        assert (await response.json())["retry_after"] == "0.2"
    async with session.post(f"{base}/faults", json={"kind": "explode"}) as response:
        assert response.status == 400
    async with session.post(f"{base}/faults", json={"kind": "drop", "colour": 1}) as response:
        assert response.status == 400
    async with session.get(f"{base}/faults") as response:
        assert len(await response.json()) == 1
    for _ in range(2):
        assert (await post_schedule(session, mock, _body(mock)))[0] == 429
    async with session.delete(f"{base}/faults") as response:
        assert response.status == 204
    assert (await post_schedule(session, mock, _body(mock)))[0] == 200
    async with session.get(f"{base}/stats") as response:
        stats = await response.json()
    assert stats["calls"]["getSchedule"] == 3
    assert [entry["status"] for entry in stats["recent"]] == [429, 429, 200]
    async with session.post(f"{base}/reset") as response:
        assert response.status == 204
    assert mock.graph.stats()["calls"]["getSchedule"] == 0
    assert mock.graph.stats()["recent"] == []
    async with session.get(f"{base}/organisation") as response:
        assert await response.json() == mock.graph.organisation.addresses()


def test_fault_validation() -> None:
    """Faults refuse unknown kinds, endpoints and non-positive counts."""
    with pytest.raises(ValueError, match="kind"):
        Fault(kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoint"):
        Fault(kind="drop", endpoint="calendar")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="count"):
        Fault(kind="drop", count=0)
    assert Fault.from_json({"kind": "latency", "delay_ms": 5}).delay_ms == 5
