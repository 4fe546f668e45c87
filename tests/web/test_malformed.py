"""Malformed input gets a 4xx in the route's shape; clients that hang up or dawdle are not
errors; nothing of what a client sends reaches a log line through the HTTP parser."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.config.schema import AuditSettings, ServerSettings
from proxy.mock import MOCK_DOMAIN, RunningMock
from proxy.web.keys import METRICS
from tests.support.connect import connect_settings
from tests.support.dialects import ask_everywhere
from tests.support.mock_graph import schedule_body
from tests.support.proxies import (
    AUDIT_KEY,
    DAY,
    KEY_ALL,
    KEY_ALL_SHA,
    KEY_ONE,
    ONE_ADDRESS,
    ProxyFactory,
    auth,
    consumer,
    proxy_settings,
    serving,
)
from tests.support.waiting import until

ME = "/v1.0/me/calendar/getSchedule"


async def raw(port: int, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection; the answer: its head and Content-Length bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(20):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return head + await reader.readexactly(length)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    return int(answer.split(b" ", 2)[1])


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records at ERROR or above, or with a traceback."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]


@pytest.mark.parametrize("interval", ["²", "1" * 4301, "٣٠", "3\u200b0", "-30", "30.0"])
async def test_odd_interval_strings_are_400_in_graphs_shape(
    proxy: TestClient[Any, Any], interval: str, log_capture: pytest.LogCaptureFixture
) -> None:
    """ "²" (isdigit() but not int()), 4,301 digits (int() refuses), Arabic-Indic digits:
    a 400 invalid_request, never a 500 or a traceback, never read as a number."""
    body = schedule_body([ONE_ADDRESS], interval=interval)
    async with proxy.post(ME, json=body, headers=auth(KEY_ONE)) as resp:
        text = await resp.text()
    assert resp.status == 400, text
    assert json.loads(text)["error"]["innerError"]["code"] == "invalid_request"
    assert not errors_logged(log_capture)


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "posix/Europe/Paris"])
async def test_zone_names_outside_the_table_are_not_used(
    proxy: TestClient[Any, Any], zone: str
) -> None:
    """Names of the host's own zone (or files that are not zones) are never applied: the Graph
    drop-in answers in UTC, Google's freeBusy refuses the timeZone."""
    headers = {**auth(KEY_ONE), "Prefer": f'outlook.timezone="{zone}"'}
    async with proxy.post(ME, json=schedule_body([ONE_ADDRESS]), headers=headers) as resp:
        document = await resp.json()
    assert resp.status == 200
    assert "Preference-Applied" not in resp.headers
    for item in document["value"][0]["scheduleItems"]:
        assert item["start"]["timeZone"] == "UTC"
    body = {
        "timeMin": DAY["start"],
        "timeMax": DAY["end"],
        "timeZone": zone,
        "items": [{"id": ONE_ADDRESS}],
    }
    async with proxy.post("/calendar/v3/freeBusy", json=body, headers=auth(KEY_ALL)) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["errors"][0]["reason"] == "invalid"


async def test_windows_at_the_ends_of_the_calendar_are_400_on_every_route(
    make_proxy: ProxyFactory, mock_graph: RunningMock, log_capture: pytest.LogCaptureFixture
) -> None:
    """A window on the last (or first) day datetime can hold, which a granularity or a slot
    search's buffers widen past that end before any limit is judged: a 400 in the route's
    own shape on every route, never a 500 with a traceback."""
    coarse = consumer(
        "all", KEY_ALL_SHA, (f"*@{MOCK_DOMAIN}",), granularity_minutes=60,
        max_lookback_days=3660, max_lookahead_days=3660,
    )  # fmt: skip
    settings = replace(proxy_settings(mock_graph), consumers=(coarse,))
    proxy = await make_proxy(mock_graph, settings=settings)
    last_day = ("9999-12-31T00:00:00Z", "9999-12-31T23:30:00Z")
    statuses = await ask_everywhere(proxy, KEY_ALL, ONE_ADDRESS, last_day)
    assert set(statuses.values()) == {400}, statuses
    edges = (
        ({"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T23:00:00Z"}, "buffer_before_minutes"),
        (dict(zip(("start", "end"), last_day, strict=True)), "buffer_after_minutes"),
    )
    for window, buffer in edges:
        body = {"participants": [{"schedule": ONE_ADDRESS}], **window, "duration_minutes": 30}
        async with proxy.post("/v1/slots", json={**body, buffer: 60}, headers=auth()) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["code"] == "invalid_window"
    assert not errors_logged(log_capture)


async def test_connect_host_headers_are_never_trusted(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Any
) -> None:
    """Without [connect] redirect_uri (a loopback proxy), a sign-in's redirect URI is built only
    from a loopback Host: Host: evil.example or a non-ASCII Host is a 400, not a redirect to
    http://evil.example/connect/callback and not a 500."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    port = proxy.server.port
    for host in (b"evil.example", b"\xe9vil.example", "évil".encode(), b"127.0.0.1.evil.example"):
        answer = await raw(
            port,
            b"GET /connect/individual HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n",
        )
        assert status_of(answer) == 400, answer[:300]
        assert b"evil" not in answer.partition(b"\r\n\r\n")[0]
    answer = await raw(
        port, b"GET /connect/individual HTTP/1.1\r\nHost: localhost:1\r\nConnection: close\r\n\r\n"
    )
    assert status_of(answer) == 302
    assert b"redirect_uri=http://localhost:1/connect/callback" in answer


async def test_callback_bodies_that_are_not_a_form_are_400(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Any, log_capture: Any
) -> None:
    """Bytes that are not UTF-8 (or not a form at all, or a field twice) on /connect/callback:
    400, never a 500 with a traceback."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for body, headers in (
        (b"state=\xff\xfe&code=\xc3", form),
        (b"state=%ff%fe", form),
        (b"state=a&state=b", form),
        (b'{"state": "a"}', {"Content-Type": "application/json"}),
    ):
        async with proxy.post("/connect/callback", data=body, headers=headers) as resp:
            assert resp.status == 400, await resp.text()
    assert not errors_logged(log_capture)


async def test_admin_key_with_raw_bytes_is_401(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Any
) -> None:
    """An Authorization header of bytes that are not ASCII on /admin/*: 401."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    for key in (b"\xe9\xe9", "é".encode(), b"\xff\xfe"):
        answer = await raw(
            proxy.server.port,
            b"GET /admin/connections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + key
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert status_of(answer) == 401


async def test_clients_hanging_up_mid_body_are_not_errors(
    mock_graph: RunningMock, log_capture: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Twenty clients send half a body and close (a slowloris giving up): served as `serve`
    serves, each is counted 499, audited "cancelled", and logs no traceback (on main: 500 and
    a traceback each)."""
    audit = tmp_path / "audit.jsonl"
    settings = replace(
        proxy_settings(mock_graph), audit=AuditSettings(hmac_key=AUDIT_KEY, file=audit)
    )
    async with serving(settings) as (port, app):
        head = (
            b"POST /v1/availability HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + KEY_ALL.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        writers = []
        for _ in range(20):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + b'{"schedules": [')
            await writer.drain()
            writers.append(writer)
        metrics = app[METRICS]

        def counted(status: str) -> float:
            labels = {"route": "/v1/availability", "method": "POST", "status": status}
            return metrics.registry.get_sample_value("freebusy_http_requests_total", labels) or 0

        for writer in writers:
            writer.close()
        await until(lambda: counted("499") == 20)
        assert counted("500") == 0
    assert not errors_logged(log_capture)
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(line["status"], line["outcome"]) for line in lines] == [(499, "cancelled")] * 20


async def test_headers_must_arrive_in_time(mock_graph: RunningMock) -> None:
    """A client that never finishes its headers is cut off after server.header_timeout_seconds
    (aiohttp's default would wait an hour); others are served meanwhile."""
    settings = replace(
        proxy_settings(mock_graph), server=ServerSettings(header_timeout_seconds=0.2)
    )
    async with serving(settings) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        answer = await raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(answer) == 200
        async with asyncio.timeout(20):
            assert await reader.read() == b""  # closed, without an answer
        writer.close()


async def test_bodies_must_arrive_in_time(mock_graph: RunningMock) -> None:
    """A body still incomplete after server.body_timeout_seconds is answered 408 in the route's
    own shape (problem+json here, Graph's error document on the drop-in)."""
    settings = replace(proxy_settings(mock_graph), server=ServerSettings(body_timeout_seconds=0.2))
    async with serving(settings) as (port, _):
        for path, content_type in (
            (b"/v1/availability", b"application/problem+json"),
            (ME.encode(), b"application/json"),
        ):
            key = (KEY_ALL if path == b"/v1/availability" else KEY_ONE).encode()
            answer = await raw(
                port,
                b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key
                + b"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{",
            )  # fmt: skip
            head, _, body = answer.partition(b"\r\n\r\n")
            assert status_of(answer) == 408, answer[:300]
            assert b"Content-Type: " + content_type in head
            assert b"request_timeout" in body


async def test_parser_errors_log_no_authorization_of_any_scheme(
    proxy: TestClient[Any, Any], log_capture: pytest.LogCaptureFixture
) -> None:
    """An over-long Authorization header (any scheme, "Token" here) is refused by aiohttp's
    parser; the excerpt it logs is redacted, and the access log line for it does not crash."""
    secret = "tok_SECRET_VALUE_do_not_log"
    for value in (f"Token {secret}", f"Digest username={secret}", secret):
        answer = await raw(
            proxy.server.port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + value.encode()
            + b"a" * 9000
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert status_of(answer) == 400
    text = "\n".join(logging.Formatter().format(r) for r in log_capture.records)
    assert "SECRET_VALUE" not in text
    assert "Unhandled exception" not in text


async def test_bodies_that_are_not_what_their_headers_say_are_400(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path, log_capture: Any
) -> None:
    """Content-Encoding: gzip on bytes that are not gzip (found by the fuzzer: a 500 with a
    traceback on main): 400, on every route that reads a body."""
    proxy = await make_proxy(mock_graph, settings=connect_settings(mock_graph, tmp_path / "c.db"))
    body = b'{"state": "x"}'
    for path, key, content_type in (
        (b"/v1/availability", KEY_ALL, b"application/json"),
        (ME.encode(), KEY_ONE, b"application/json"),
        (b"/calendar/v3/freeBusy", KEY_ALL, b"application/json"),
        (b"/connect/callback", None, b"application/x-www-form-urlencoded"),
    ):
        authorization = b"Authorization: Bearer " + key.encode() + b"\r\n" if key else b""
        answer = await raw(
            proxy.server.port,
            b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + authorization
            + b"Content-Type: " + content_type + b"\r\nContent-Encoding: gzip\r\n"
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body,
        )  # fmt: skip
        assert status_of(answer) == 400, (path, answer[:300])
    assert not errors_logged(log_capture)
