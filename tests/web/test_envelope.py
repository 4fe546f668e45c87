"""Hostile or odd requests: clear problems, no banner, no caching, CORS only when allowed."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from proxy.config.schema import AuditSettings, CorsSettings
from proxy.core.clock import SystemWallClock
from proxy.mock import RunningMock
from proxy.observability.audit import AuditTrail
from proxy.observability.metrics import Metrics
from proxy.web.envelope import Envelope
from tests.support.connect import connect_settings
from tests.support.leaks import assert_no_leak
from tests.support.proxies import ONE_ADDRESS, ProxyFactory, auth, proxy_settings

DAY = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}
APP_ORIGIN = "https://scheduler.example"


async def raw_request(
    client: TestClient[Any, Any], data: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a fresh connection; return the status, headers and body."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/v1/availability", {"json": {"schedules": [ONE_ADDRESS], **DAY}}, 200),
        ("GET", "/healthz", {}, 200),
        ("GET", "/nope", {}, 404),
        ("DELETE", "/v1/availability", {}, 405),
        (
            "POST",
            "/v1/availability",
            {"json": {"schedules": [ONE_ADDRESS], **DAY}, "auth": None},
            401,
        ),
        ("POST", "/v1/availability", {"json": {"schedules": "x"}}, 400),
        ("POST", "/v1/availability", {"data": b"{" + b" " * 70_000 + b"}"}, 413),
    ],
)
async def test_every_answer_has_only_the_product_banner_and_no_store(
    proxy: TestClient[Any, Any], method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    """Success, 401, 400, 404, 405 and 413 all say Server: freebusy-proxy, no-store, nosniff."""
    headers = {} if kwargs.pop("auth", True) is None else auth()
    if "data" in kwargs:
        headers["Content-Type"] = "application/json"
    async with proxy.request(method, path, headers=headers, **kwargs) as resp:
        await resp.read()
        assert resp.status == status
        assert resp.headers["Server"] == "freebusy-proxy"
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def served_routes(app: web.Application, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route registered in ``app`` and its sub-apps, "*" included."""
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:
            yield from served_routes(info["app"])
            continue
        # A concrete path for a template: each {variable} filled in.
        path = re.sub(r"\{[^}]*\}", "x", resource.canonical) or "/"
        for route in resource:
            yield route.method, path


@pytest.mark.parametrize("connect", [False, True])
async def test_every_route_answers_inside_the_envelope(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path, connect: bool
) -> None:
    """Every route the app registers, whatever it answers, carries the standard headers.

    A route registered around the envelope (proxy.web.envelope) would answer without them.
    """
    settings = connect_settings(mock_graph, tmp_path / "c.db") if connect else None
    client = await make_proxy(mock_graph, settings=settings)
    routes = sorted(set(served_routes(client.server.app)))
    assert ("POST", "/v1/availability") in routes
    assert ("POST", "/calendar/v3/freeBusy") in routes
    assert any(path.startswith("/connect") for _, path in routes) is connect
    for method, path in routes:
        async with client.request(
            "PATCH" if method == "*" else method, path, allow_redirects=False
        ) as resp:
            await resp.read()
            assert resp.status < 500, (method, path)
            assert resp.headers["Server"] == "freebusy-proxy", (method, path)
            assert resp.headers["X-Content-Type-Options"] == "nosniff", (method, path)


@pytest.mark.parametrize(
    ("target", "status", "content_type"),
    [
        (b"OPTIONS * HTTP/1.1", 404, "application/problem+json"),
        (b"GET /v1/availabilityx HTTP/1.1", 404, "application/problem+json"),
        (b"PUT /v1/availability HTTP/1.1", 405, "application/problem+json"),
        # A dialect's bare prefix, and what its sub-app does not serve: the dialect's shape.
        (b"GET /v1.0 HTTP/1.1", 404, "application/json"),
        (b"GET /calendar/v3 HTTP/1.1", 404, "application/json"),
        (b"GET /calendar/v3/nothing HTTP/1.1", 404, "application/json"),
        (b"PATCH /v1.0/me/calendar/getSchedule HTTP/1.1", 405, "application/json"),
    ],
)
async def test_what_no_route_serves_is_answered_by_us(
    proxy: TestClient[Any, Any], target: bytes, status: int, content_type: str
) -> None:
    """Any request target no route serves, "*" included, gets our error document."""
    got, headers, body = await raw_request(
        proxy, target + b"\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert got == status
    assert headers["content-type"].startswith(content_type)
    assert headers["server"] == "freebusy-proxy"
    document = json.loads(body)
    assert "code" in document if content_type == "application/problem+json" else "error" in document
    if status == 405:
        assert headers["allow"] in ("GET,POST", "POST")


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # before datetime's range once in UTC
        "9999-12-31T23:59:59-01:00",  # after it
        "2026-02-30T00:00:00Z",
        "2026-03-16T24:00:00Z",
        "2026-03-16T23:59:60Z",
        "2026-03-16T10:00:00+24:00",
        "2026-03-16T10:00:00.1234567890Z",
        "\uff12\uff10\uff12\uff16-03-16T10:00:00Z",
        "2026-03-16T10:00:00Z\n",
        "2026-03-16T10:00:00",
        "1773655200",
    ],
)
async def test_odd_time_formats_are_400(proxy: TestClient[Any, Any], value: str) -> None:
    """Times out of range, invalid or without offset are 400 invalid_time, never a 500."""
    body = {"schedules": [ONE_ADDRESS], "start": value, "end": "2026-01-06T00:00:00Z"}
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        problem = json.loads(await resp.text())
        assert resp.status == 400, problem
    assert problem["code"] in ("invalid_time", "invalid_window")


async def test_far_future_window_is_refused_before_any_arithmetic(
    proxy: TestClient[Any, Any],
) -> None:
    """A window at the end of datetime's range is 400 invalid_window, not an overflow."""
    body = {
        "schedules": [ONE_ADDRESS],
        "start": "9999-12-30T00:00:00Z",
        "end": "9999-12-31T23:00:00Z",
    }
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        assert resp.status == 400
        assert (await resp.json(content_type=None))["code"] == "invalid_window"


async def test_long_query_string_is_414_problem(proxy: TestClient[Any, Any]) -> None:
    """A query string past 4096 characters (inside the parser's limit) is 414 problem+json."""
    schedules = ",".join(f"person{i}@contoso.example" for i in range(200))
    url = f"/v1/availability?schedules={schedules}&start={DAY['start']}&end={DAY['end']}"
    assert 4096 < len(url) < 8000
    async with proxy.get(url, headers=auth()) as resp:
        assert resp.status == 414
        assert resp.content_type == "application/problem+json"
        assert (await resp.json(content_type=None))["code"] == "uri_too_long"
    async with proxy.get(url[:4000], headers=auth()) as resp:
        assert resp.status != 414


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1.0/users/adele.vance@contoso.example/calendar/getSchedule", "uri_too_long"),
        ("/calendar/v3/freeBusy", "INVALID_ARGUMENT"),
    ],
)
async def test_long_query_string_is_414_in_the_dialect_shape(
    proxy: TestClient[Any, Any], path: str, code: str
) -> None:
    """Under a dialect's prefix the same 414 comes in that dialect's error shape (JSON)."""
    async with proxy.get(f"{path}?pad={'p' * 5000}", headers=auth()) as resp:
        assert resp.status == 414
        assert resp.content_type == "application/json"
        error = (await resp.json())["error"]
        assert code in json.dumps(error)


@pytest.mark.parametrize(
    "data",
    [
        # Request line (query string) longer than server.max_line_size.
        b"GET /v1/availability?schedules=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        # One header longer than server.max_field_size.
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 9000 + b"\r\n\r\n",
        # More headers than server.max_headers.
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 100 + b"\r\n",
        # Not HTTP at all.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
    ],
)
async def test_parser_limits_answer_400_before_the_app(
    proxy: TestClient[Any, Any], data: bytes
) -> None:
    """aiohttp refuses these while parsing, before any route: a plain-text 400.

    It cannot be problem+json (nor carry our Server header) without replacing aiohttp's
    request handler; the limits are configurable ([server] max_line_size, max_field_size,
    max_headers) and documented.
    """
    status, headers, body = await raw_request(proxy, data)
    assert status == 400
    assert headers["content-type"].startswith("text/plain")
    assert_no_leak(body.decode("latin-1"))


@pytest.mark.parametrize(
    "target", [b"CONNECT example.com:443 HTTP/1.1", b"GET http://example.com?a=1 HTTP/1.1"]
)
async def test_a_target_without_a_path_is_refused_by_aiohttp(
    proxy: TestClient[Any, Any], target: bytes
) -> None:
    """No path, no route: aiohttp's router answers a plain 404 before our fallback is asked.

    Documented (README, threat model) next to the parser's plain 400s; this pins it, so a
    change (to problem+json, or to anything else) is noticed and documented too.
    """
    status, headers, body = await raw_request(
        proxy, target + b"\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 404
    assert headers["content-type"].startswith("text/plain")
    assert body == b"404: Not Found"


async def test_undecodable_key_bytes_are_401(proxy: TestClient[Any, Any]) -> None:
    """An Authorization header with bytes that are not UTF-8 is refused, not a crash."""
    status, headers, _ = await raw_request(
        proxy,
        b"GET /v1/availability?schedules=a@contoso.example HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer fbp_\xff\xfe\xc0\r\nConnection: close\r\n\r\n",
    )
    assert status == 401
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["server"] == "freebusy-proxy"


# --- CORS ---------------------------------------------------------------------------------


def preflight(method: str = "POST", headers: str = "authorization, content-type") -> dict[str, str]:
    """Headers of a browser's CORS preflight from APP_ORIGIN."""
    return {
        "Origin": APP_ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_cors_is_off_by_default(proxy: TestClient[Any, Any]) -> None:
    """Without an allowlist: no CORS headers, and a preflight is an ordinary 405."""
    async with proxy.options("/v1/availability", headers=preflight()) as resp:
        assert resp.status == 405
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with proxy.post(
        "/v1/availability",
        json={"schedules": [ONE_ADDRESS], **DAY},
        headers={**auth(), "Origin": APP_ORIGIN},
    ) as resp:
        assert resp.status == 200
        assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.fixture
async def cors_proxy(make_proxy: ProxyFactory, mock_graph: RunningMock) -> TestClient[Any, Any]:
    """The proxy with one allowed browser origin."""
    settings = replace(
        proxy_settings(mock_graph),
        cors=CorsSettings(allow_origins=(APP_ORIGIN,), max_age_seconds=60),
    )
    return await make_proxy(mock_graph, settings=settings)


async def test_cors_preflight_for_an_allowed_origin(cors_proxy: TestClient[Any, Any]) -> None:
    """An allowed origin's preflight gets 204 with the methods and headers it may use."""
    async with cors_proxy.options("/v1/availability", headers=preflight()) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert resp.headers["Access-Control-Allow-Methods"] == "GET, POST"
        assert resp.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
        assert resp.headers["Access-Control-Max-Age"] == "60"
        assert resp.headers["Vary"] == "Origin"
        assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize(
    "headers",
    [
        {**preflight(), "Origin": "https://evil.example"},
        {**preflight(), "Origin": APP_ORIGIN + ".evil.example"},
        preflight(method="DELETE"),
        preflight(headers="authorization, x-forwarded-for"),
    ],
)
async def test_cors_preflight_refusals(
    cors_proxy: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    """Other origins, methods or headers: 403 cors_not_allowed without a grant."""
    async with cors_proxy.options("/v1/availability", headers=headers) as resp:
        assert resp.status == 403
        assert resp.content_type == "application/problem+json"
        assert (await resp.json(content_type=None))["code"] == "cors_not_allowed"
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_actual_requests(cors_proxy: TestClient[Any, Any]) -> None:
    """Answers (errors too) are readable by the allowed origin only; preflight to 404 is 404."""
    body = {"schedules": [ONE_ADDRESS], **DAY}
    async with cors_proxy.post(
        "/v1/availability", json=body, headers={**auth(), "Origin": APP_ORIGIN}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]
        assert resp.headers["Vary"] == "Origin"
    async with cors_proxy.post(
        "/v1/availability", json=body, headers={"Origin": APP_ORIGIN}
    ) as resp:
        assert resp.status == 401
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    async with cors_proxy.post(
        "/v1/availability", json=body, headers={**auth(), "Origin": "https://evil.example"}
    ) as resp:
        assert resp.status == 200
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with cors_proxy.options("/nothing", headers=preflight()) as resp:
        assert resp.status == 404


@pytest.mark.parametrize("path", ["/calendar/v3/freeBusy", "/v1.0/me/calendar/getSchedule"])
async def test_cors_preflight_under_a_dialect(cors_proxy: TestClient[Any, Any], path: str) -> None:
    """A dialect's routes are preflighted like the rest: POST is what they serve."""
    async with cors_proxy.options(path, headers=preflight()) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Methods"] == "POST"
    async with cors_proxy.options(path, headers=preflight(method="GET")) as resp:
        assert resp.status == 403


async def test_a_bug_is_logged_by_its_route_template_not_its_path(
    aiohttp_client: Any, log_capture: pytest.LogCaptureFixture
) -> None:
    """A handler that fails unexpectedly is a 500 in the route's shape and one ERROR line that
    names the route template and where it failed: not the path (it names an address, as the
    feed's and the Graph drop-in's do) nor the exception's own words (here the address)."""
    envelope = Envelope(
        trail=AuditTrail(AuditSettings(enabled=False), SystemWallClock()),
        metrics=Metrics(),
        cors=None,
    )

    async def failing(request: web.Request) -> web.Response:
        raise KeyError(request.match_info["address"])

    app = web.Application()
    envelope.add_get(app.router, "/v1/schedules/{address}/freebusy.ics", failing)
    client = await aiohttp_client(app)
    async with client.get(f"/v1/schedules/{ONE_ADDRESS}/freebusy.ics") as resp:
        assert resp.status == 500
        assert (await resp.json(content_type=None))["code"] == "internal_error"
    errors = [r for r in log_capture.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    text = logging.Formatter().format(errors[0])
    assert "/v1/schedules/{address}/freebusy.ics" in text
    assert "KeyError" in text
    assert "in failing" in text  # the frame it failed in
    assert ONE_ADDRESS not in text
