"""Logs: JSON lines, and no key, token or secret at any level, in messages or tracebacks."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.core.clock import MONOTONIC
from proxy.mock import MOCK_CLIENT_SECRET, RunningMock
from proxy.observability.logs import (
    REDACTED,
    JsonFormatter,
    ProxyLogHandler,
    RedactingFilter,
    Redactor,
    configure_logging,
    direct_lines,
)
from proxy.sources.credentials import MsalAppTokens
from tests.support.leaks import assert_no_leak
from tests.support.proxies import KEY_ALL, KEY_ONE

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {KEY_ALL}",
        f"headers={{'Authorization': 'Bearer {JWT}'}}",
        f"got {KEY_ONE} from somewhere",
        f"token {JWT} expired",
        f"client_id=x&client_secret={MOCK_CLIENT_SECRET}&grant_type=client_credentials",
        f'{{"refresh_token": "{MOCK_CLIENT_SECRET}", "access_token": "{JWT}"}}',
        f"refresh_token={MOCK_CLIENT_SECRET}",
        f"b'Authorization: bearer {KEY_ALL[:40]}...'",
    ],
)
def test_redactor_removes_secrets(text: str) -> None:
    """Bearer values, JWTs, consumer keys and OAuth secret fields are replaced."""
    redacted = Redactor()(text)
    assert REDACTED in redacted
    assert_no_leak(redacted)
    assert MOCK_CLIENT_SECRET not in redacted


def test_redactor_removes_registered_literals() -> None:
    """A secret with no recognisable shape is redacted once registered."""
    assert Redactor(["hunter2-but-longer"])("pw was hunter2-but-longer!") == f"pw was {REDACTED}!"


def test_filter_redacts_arguments_and_tracebacks() -> None:
    """Arguments and exception text are rendered, redacted and kept as text only."""
    record: logging.LogRecord
    try:
        raise RuntimeError(f"POST failed with Authorization: Bearer {JWT}")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "proxy.sources.graph",
            logging.ERROR,
            __file__,
            1,
            "call with %s",
            (KEY_ALL,),
            sys.exc_info(),
        )
    assert RedactingFilter().filter(record)
    assert record.exc_info is None
    assert record.getMessage() == f"call with {REDACTED}"
    assert record.exc_text is not None
    assert "RuntimeError" in record.exc_text
    assert_no_leak(record.getMessage(), record.exc_text)
    line = json.loads(JsonFormatter().format(record))
    assert {"time", "level", "logger", "message", "exception"} <= set(line)
    assert line["level"] == "ERROR"


@pytest.fixture
def production_logging() -> Iterator[io.StringIO]:
    """configure_logging as `serve` does, writing to a buffer; the test's logging is restored."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    loggers = [logging.getLogger(name) for name in ("msal", "urllib3")]
    saved = {lg.name: lg.level for lg in loggers}
    for existing in saved_handlers:  # as in production: nobody configured logging before
        root.removeHandler(existing)
    buffer = io.StringIO()
    configure_logging("DEBUG", secrets=[MOCK_CLIENT_SECRET])
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for existing in list(root.handlers):
            root.removeHandler(existing)
        for kept in saved_handlers:
            root.addHandler(kept)
        root.setLevel(saved_level)
        for lg in loggers:
            lg.setLevel(saved[lg.name])


async def test_msal_debug_and_failed_upstream_tracebacks_are_clean(
    production_logging: io.StringIO, mock_graph: RunningMock
) -> None:
    """With msal turned up to DEBUG, a real token request and a logged traceback holding a
    token leave only JSON lines without secret, token or key."""
    logging.getLogger("msal").setLevel(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    tokens = MsalAppTokens(**mock_graph.client_credentials(), timeout_seconds=10.0, clock=MONOTONIC)
    try:
        token = await tokens.token()
    finally:
        await tokens.close()
    log = logging.getLogger("proxy.sources.graph")
    try:
        raise ConnectionError(f"upstream said no to Bearer {token} / {MOCK_CLIENT_SECRET}")
    except ConnectionError:
        log.exception("getSchedule failed for %s", f"Authorization: Bearer {token}")
    log.debug("consumer key %s", KEY_ALL)
    await asyncio.sleep(0)
    text = production_logging.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert any(line["logger"].startswith("msal") for line in lines), "msal logged nothing"
    assert any(line["logger"].startswith("urllib3") for line in lines), "urllib3 logged nothing"
    assert any("exception" in line for line in lines)
    assert token not in text
    assert MOCK_CLIENT_SECRET not in text
    assert_no_leak(text)


async def test_oversized_authorization_header_is_not_logged(
    proxy: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp logs the start of an over-long header; with a key in it, the key is redacted."""
    assert proxy.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.port)
    try:
        writer.write(
            b"GET /v1/availability HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + KEY_ALL.encode()
            + b"x" * 9000
            + b"\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400")
    assert KEY_ALL not in caplog.text
    assert REDACTED in caplog.text


async def test_the_access_line_names_unknown_methods_other(
    proxy: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Any token is an HTTP method: one of a client's choosing is logged (and counted) as
    "other", so nobody writes words of their own into the logs or grows the label sets."""
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    async with proxy.request("PROPFIND", "/v1/availability") as resp:
        assert resp.status == 405
    async with proxy.get("/healthz") as resp:
        assert resp.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any(line.startswith("other unmatched 405 ") for line in lines), lines
    assert any(line.startswith("GET /healthz 200 ") for line in lines), lines
    assert "PROPFIND" not in caplog.text
    async with proxy.get("/metrics") as resp:
        assert "PROPFIND" not in await resp.text()


def test_a_direct_line_reads_as_the_record_would() -> None:
    """The access log's finished lines (no LogRecord) are what the record path writes for the
    same message: the same JSON fields and values but the time, a registered secret
    redacted, and a time in UTC with milliseconds and ``Z``."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.direct_lines")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = ProxyLogHandler(stream, Redactor(["literal-secret-1"]))
    logger.addHandler(handler)
    try:
        direct = direct_lines(logger)
        assert direct is not None
        direct.info("POST /v1/{x} literal-secret-1 200", " 1.5ms")
        logger.info("%s %s %d %.1fms", "POST", "/v1/{x} literal-secret-1", 200, 1.5)
        handler.flush()
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    written, recorded = (json.loads(line) for line in lines)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", written.pop("time"))
    recorded.pop("time")
    assert written == recorded
    assert written["message"] == f"POST /v1/{{x}} {REDACTED} 200 1.5ms"
