"""Failures stay where they belong: one room's error, one mailbox's refusal or one failed
token request never cuts everyone else off, and the identity platform's words go nowhere."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from proxy.config.schema import ConnectSettings, ThrottleSettings
from proxy.core.clock import ManualClock
from proxy.mock import Fault, RunningMock
from tests.support.connect import ADMIN_KEY_SHA, admin
from tests.support.proxies import ProxyFactory, ask, proxy_settings, sample


def people(mock: RunningMock, count: int, skip: int = 0) -> list[str]:
    """``count`` mailboxes of the mock organisation after the first ``skip``."""
    return mock.graph.organisation.addresses()[skip : skip + count]


def token_calls(mock: RunningMock) -> int:
    """Requests the mock's token endpoint has received."""
    return int(mock.graph.stats()["calls"]["token"])


def breaker_state(client: TestClient[Any, Any]) -> float:
    """The breaker gauge as /metrics shows it: 0 closed, 1 half-open, 2 open."""
    return sample(client, "freebusy_breaker_state")


async def test_an_error_inside_a_200_for_one_room_does_not_open_the_breaker(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """The reproduction: Graph answers 200 with a per-schedule error for one room (say
    ErrorProxyRequestNotAllowed). Asked about it ten times (the breaker opens at five
    failures), the room reports upstream_error; everyone else is still answered."""
    room, *others = people(mock_graph, 3)
    refusal = {
        "value": [
            {
                "scheduleId": room,
                "error": {
                    "message": "CANARY-error-proxy-request-not-allowed",
                    "responseCode": "ErrorProxyRequestNotAllowed",
                },
            }
        ]
    }
    mock_graph.graph.add_fault(Fault(kind="body", schedule=room, body=refusal, count=None))
    for _ in range(10):
        status, body = await ask(proxy, [room])
        assert status == 200
        assert body["schedules"][0]["error"] == {"code": "upstream_error"}
    assert breaker_state(proxy) == 0
    status, body = await ask(proxy, others)
    assert status == 200
    assert [entry["error"] for entry in body["schedules"]] == [None, None]


async def test_a_mailbox_graph_refuses_to_be_asked_as_does_not_open_the_breaker(
    proxy: TestClient[Any, Any], mock_graph: RunningMock
) -> None:
    """A 403 for one mailbox in the URL (an application access policy leaving it out) fails
    the requests about that mailbox alone: Graph answered, it is not down."""
    restricted, other = people(mock_graph, 2)
    mock_graph.graph.add_fault(Fault(kind="status", status=403, mailbox=restricted, count=None))
    for _ in range(10):
        status, body = await ask(proxy, [restricted])
        assert (status, body["code"]) == (502, "upstream_error")
    assert breaker_state(proxy) == 0
    status, body = await ask(proxy, [other])
    assert status == 200
    assert body["schedules"][0]["error"] is None


async def test_a_refused_token_request_is_retried_promptly_and_never_opens_the_breaker(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """The reproduction: one 400 from the token endpoint. msal would answer the next 60 s from
    its memory of it and the upstream_auth failures opened the Graph breaker (a 35 s outage).
    Now the next request after a second's backoff reaches the token endpoint and succeeds,
    even with a breaker that opens at the first failure."""
    clock = ManualClock()
    settings = replace(proxy_settings(mock_graph), throttle=ThrottleSettings(breaker_failures=1))
    client = await make_proxy(mock_graph, settings=settings, clock=clock)
    a, b, c = ([x] for x in people(mock_graph, 3))
    mock_graph.graph.add_fault(Fault(endpoint="token", kind="status", status=400, count=1))
    status, body = await ask(client, a)
    assert (status, body["code"]) == (502, "upstream_auth")
    calls = token_calls(mock_graph)
    # Within the backoff: refused at once, the token endpoint is not hammered.
    status, body = await ask(client, b)
    assert (status, body["code"]) == (502, "upstream_auth")
    assert token_calls(mock_graph) == calls
    assert breaker_state(client) == 0
    clock.advance(1.0)
    status, body = await ask(client, c)
    assert status == 200, body
    assert token_calls(mock_graph) > calls


async def test_the_identity_platforms_error_text_goes_nowhere(
    make_proxy: ProxyFactory, mock_graph: RunningMock
) -> None:
    """A token answer whose "error" is free text (any length): no log line, no response and
    no readiness report carries it; the admin reads "token_error". (The suite's log guard
    fails the test if the canary reaches a log line.)"""
    settings = replace(
        proxy_settings(mock_graph), connect=ConnectSettings(admin_key_sha256=ADMIN_KEY_SHA)
    )
    client = await make_proxy(mock_graph, settings=settings)
    text = "CANARY_identity_platform_text_" + "x" * 3000
    mock_graph.graph.add_fault(
        Fault(endpoint="token", kind="body", body={"error": text}, count=None)
    )
    status, body = await ask(client, people(mock_graph, 1))
    assert (status, body["code"]) == (502, "upstream_auth")
    async with client.get("/readyz") as resp:
        public = await resp.text()
    async with client.get("/readyz", headers=admin()) as resp:
        report = await resp.json()
    assert "CANARY" not in public
    assert report["checks"]["token"] == "failed"
    assert report["problems"] == {"token": "token_error"}
