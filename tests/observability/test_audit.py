"""The audit trail: one JSON line per consumer request, pseudonymous addresses, no leaks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import socket
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from proxy.config.load import parse_settings
from proxy.config.schema import (
    AUDIT_KEY_ENV,
    CLIENT_SECRET_ENV,
    AuditSettings,
    CorsSettings,
    Settings,
)
from proxy.core.errors import ConfigError
from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN, Fault, RunningMock
from tests.support.leaks import assert_no_leak
from tests.support.paths import ROOT
from tests.support.proxies import (
    AUDIT_KEY,
    KEY_ONE,
    ONE_ADDRESS,
    ProxyFactory,
    auth,
    proxy_settings,
)

DAY = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z"}
OTHER = f"alex.wilber@{MOCK_DOMAIN}"


def audited(mock: RunningMock, path: Path, **audit: Any) -> Settings:
    """Test settings whose audit trail goes to ``path``."""
    fields: dict[str, Any] = {"hmac_key": AUDIT_KEY, "file": path, **audit}
    return replace(proxy_settings(mock), audit=AuditSettings(**fields))


def lines(path: Path) -> list[dict[str, Any]]:
    """The audit file's lines, parsed, after checking none holds a forbidden marker."""
    text = path.read_text()
    assert_no_leak(text)
    return [json.loads(line) for line in text.splitlines()]


def pseudonym(address: str) -> str:
    """What the trail writes for an address with the test key."""
    return hmac.new(AUDIT_KEY.encode(), address.casefold().encode(), hashlib.sha256).hexdigest()


async def test_one_line_per_request_with_every_outcome(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """ok, 401, 403, 400, 502 and 404 each give exactly one line with the documented fields."""
    path = tmp_path / "audit.jsonl"
    client = await make_proxy(mock_graph, settings=audited(mock_graph, path))
    mock_graph.graph.add_fault(Fault(kind="body", body={"value": "CANARY-x"}, count=1))
    requests: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"schedules": [ONE_ADDRESS.upper(), OTHER], **DAY}, auth()),
        ({"schedules": [ONE_ADDRESS], **DAY}, {"Authorization": "Bearer wrong"}),
        ({"schedules": [ONE_ADDRESS, OTHER], **DAY}, auth(KEY_ONE)),
        ({"schedules": [ONE_ADDRESS], "start": "yesterday", "end": DAY["end"]}, auth()),
    ]
    for body, headers in requests:
        async with client.post("/v1/availability", json=body, headers=headers) as resp:
            await resp.read()
    mock_graph.graph.add_fault(Fault(kind="status", status=500, count=None))
    async with client.post(
        "/v1/availability", json={"schedules": [ONE_ADDRESS], **DAY}, headers=auth()
    ) as resp:
        assert resp.status == 502
    async with client.get("/nothing/here?CANARY=1", headers=auth()) as resp:
        assert resp.status == 404
    async with client.get("/healthz") as resp:
        assert resp.status == 200

    ok, unauthorized, forbidden, invalid, failed, missing = lines(path)
    assert set(ok) == {
        "time", "consumer", "route", "addresses", "schedules", "window", "status", "outcome",
        "upstream_calls",
    }  # fmt: skip
    assert ok == {
        "time": "2026-01-01T00:00:00Z",
        "consumer": "all",
        "route": "POST /v1/availability",
        "addresses": 2,
        "schedules": [pseudonym(ONE_ADDRESS), pseudonym(OTHER)],
        "window": {"start": DAY["start"], "end": DAY["end"]},
        "status": 200,
        "outcome": "ok",
        "upstream_calls": 1,
    }
    assert (unauthorized["consumer"], unauthorized["status"], unauthorized["outcome"]) == (
        None,
        401,
        "unauthorized",
    )
    assert unauthorized["schedules"] == []
    assert (forbidden["consumer"], forbidden["outcome"], forbidden["upstream_calls"]) == (
        "one",
        "schedule_not_allowed",
        0,
    )
    assert forbidden["addresses"] == 2
    assert (invalid["status"], invalid["outcome"], invalid["window"]) == (400, "invalid_time", None)
    # 500 is not retried: one call, and the whole request failed.
    assert (failed["status"], failed["outcome"], failed["upstream_calls"]) == (
        502,
        "upstream_error",
        1,
    )
    assert missing["route"] == "GET unmatched"
    assert (missing["status"], missing["outcome"]) == (404, "not_found")


async def test_preflights_and_probes_are_not_audited(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """CORS preflights and probe paths (any method) leave no line; other misses do."""
    path = tmp_path / "audit.jsonl"
    origin = "https://scheduler.example"
    settings = replace(
        audited(mock_graph, path), cors=CorsSettings(allow_origins=(origin,), max_age_seconds=60)
    )
    client = await make_proxy(mock_graph, settings=settings)
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    for target in ("/v1/availability", "/calendar/v3/freeBusy"):
        async with client.options(target, headers=preflight) as resp:
            assert resp.status == 204
    async with client.post("/healthz") as resp:
        assert resp.status == 405
    async with client.get("/metrics") as resp:
        assert resp.status == 200
    async with client.options("/nothing", headers=preflight) as resp:
        assert resp.status == 404
    async with client.delete("/v1/availability", headers=auth()) as resp:
        assert resp.status == 405

    missing, refused = lines(path)
    assert (missing["route"], missing["status"], missing["outcome"]) == (
        "OPTIONS unmatched",
        404,
        "not_found",
    )
    assert (refused["route"], refused["status"], refused["outcome"]) == (
        "DELETE unmatched",
        405,
        "method_not_allowed",
    )


async def test_retries_count_as_upstream_calls(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Two 503s then success: three Graph calls on the request's line."""
    path = tmp_path / "audit.jsonl"
    client = await make_proxy(mock_graph, settings=audited(mock_graph, path))
    mock_graph.graph.add_fault(Fault(kind="status", status=503, retry_after="0", count=2))
    async with client.post(
        "/v1/availability", json={"schedules": [ONE_ADDRESS], **DAY}, headers=auth()
    ) as resp:
        assert resp.status == 200
    (line,) = lines(path)
    assert line["upstream_calls"] == 3


async def test_concurrent_requests_each_get_their_line_before_their_answer(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """Lines are written once per turn of the loop, yet every answer finds its line written."""
    path = tmp_path / "audit.jsonl"
    client = await make_proxy(mock_graph, settings=audited(mock_graph, path))
    others = [f"user{i}@{MOCK_DOMAIN}" for i in range(12)]

    async def ask(address: str) -> int:
        async with client.post(
            "/v1/availability", json={"schedules": [address], **DAY}, headers=auth()
        ) as resp:
            await resp.read()
        # Its own line is in the file already, whatever the other requests are doing.
        return sum(line["schedules"] == [pseudonym(address)] for line in lines(path))

    assert await asyncio.gather(*(ask(address) for address in others)) == [1] * len(others)
    assert len(lines(path)) == len(others)


async def test_a_busy_turn_is_written_in_whole_lines_a_pipe_takes_at_once() -> None:
    """Lines of one turn go out in writes of whole lines, none over PIPE_BUF, in order."""
    from proxy.core.clock import FixedWallClock
    from proxy.core.model import Window
    from proxy.core.timefmt import parse_rfc3339
    from proxy.observability.audit import ATOMIC_WRITE, AuditTrail
    from proxy.observability.audit_record import AuditRecord

    # A datagram socket keeps each write apart, so the test sees every write the trail made.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs, ours.makefile("w", encoding="ascii") as stream:
        trail = AuditTrail(
            AuditSettings(hmac_key=AUDIT_KEY),
            FixedWallClock(parse_rfc3339("2026-01-05T08:00:00Z")),
            stream=stream,
        )
        trail.open()
        window = Window(start=parse_rfc3339(DAY["start"]), end=parse_rfc3339(DAY["end"]))
        for i in range(60):
            record = AuditRecord(
                consumer="all", addresses=(f"user{i}@{MOCK_DOMAIN}",), window=window
            )
            trail.write(record, route="POST /v1/availability", status=200, outcome="ok")
        trail.flush()  # what the turn's end does (write() scheduled it)
        theirs.setblocking(False)
        writes = []
        with contextlib.suppress(BlockingIOError):
            while True:
                writes.append(theirs.recv(65536).decode())
    assert 1 < len(writes) < 60
    assert all(len(w) <= ATOMIC_WRITE and w.endswith("\n") for w in writes)
    written = [json.loads(line) for w in writes for line in w.splitlines()]
    assert [line["schedules"] for line in written] == [
        [pseudonym(f"user{i}@{MOCK_DOMAIN}")] for i in range(60)
    ]


async def test_addresses_in_clear_only_when_configured(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """audit_addresses = true writes the addresses (lower case) instead of HMACs."""
    path = tmp_path / "audit.jsonl"
    settings = audited(mock_graph, path, audit_addresses=True, hmac_key=None)
    client = await make_proxy(mock_graph, settings=settings)
    async with client.post(
        "/v1/availability", json={"schedules": [ONE_ADDRESS.upper()], **DAY}, headers=auth()
    ) as resp:
        assert resp.status == 200
    assert lines(path)[0]["schedules"] == [ONE_ADDRESS]


async def test_audit_file_is_private(
    make_proxy: ProxyFactory, mock_graph: RunningMock, tmp_path: Path
) -> None:
    """The audit file is created readable and writable by its owner only."""
    path = tmp_path / "audit.jsonl"
    await make_proxy(mock_graph, settings=audited(mock_graph, path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    """Hashing addresses needs FREEBUSY_PROXY_AUDIT_KEY; a short key is refused too."""
    graph = {"tenant_id": "t", "client_id": "c"}
    secret = {CLIENT_SECRET_ENV: "s"}
    for environ in (secret, {**secret, AUDIT_KEY_ENV: "short"}):
        with pytest.raises(ConfigError, match=AUDIT_KEY_ENV):
            parse_settings({"graph": graph}, environ=environ, base_dir=tmp_path)
    # Either explicit alternative starts.
    for audit in ({"audit_addresses": True}, {"enabled": False}):
        parse_settings({"graph": graph, "audit": audit}, environ=secret, base_dir=tmp_path)


def test_serve_exits_2_naming_the_variable(tmp_path: Path) -> None:
    """`serve` with a config but no audit key stops with status 2 and says what to set."""
    config = tmp_path / "proxy.toml"
    config.write_text('[graph]\ntenant_id = "t"\nclient_id = "c"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    result = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--port", "0"],
        cwd=ROOT,
        env={**env, CLIENT_SECRET_ENV: MOCK_CLIENT_SECRET, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert AUDIT_KEY_ENV in result.stderr
    assert MOCK_CLIENT_SECRET not in result.stderr


@pytest.mark.parametrize(
    ("consumer", "addresses", "window", "audit_addresses"),
    [
        ("all", ("A@x.example", "b@x.example"), True, False),
        ('quo"te\\ünï ☃', ("Ünï@x.example",), True, True),
        (None, (), False, False),
    ],
)
def test_line_is_what_json_dumps_writes(
    consumer: str | None, addresses: tuple[str, ...], window: bool, audit_addresses: bool
) -> None:
    """The line is exactly the documented fields in order, as compact UTF-8 JSON."""
    from datetime import UTC, datetime, timedelta

    from proxy.core.clock import FixedWallClock
    from proxy.core.model import Window
    from proxy.observability.audit import AuditTrail
    from proxy.observability.audit_record import AuditRecord

    now = datetime(2026, 3, 16, 9, 30, 0, 1234, tzinfo=UTC)
    trail = AuditTrail(
        AuditSettings(hmac_key=AUDIT_KEY, audit_addresses=audit_addresses), FixedWallClock(now)
    )
    span = Window(start=now, end=now + timedelta(days=1)) if window else None
    record = AuditRecord(consumer=consumer, addresses=addresses, window=span, upstream_calls=2)
    line = trail.line(record, route="POST /v1/availability", status=200, outcome="ok")
    expected = {
        "time": "2026-03-16T09:30:00.001234Z",
        "consumer": consumer,
        "route": "POST /v1/availability",
        "addresses": len(addresses),
        "schedules": [a.casefold() if audit_addresses else pseudonym(a) for a in addresses],
        "window": None
        if span is None
        else {"start": "2026-03-16T09:30:00.001234Z", "end": "2026-03-17T09:30:00.001234Z"},
        "status": 200,
        "outcome": "ok",
        "upstream_calls": 2,
    }
    assert line == json.dumps(expected, separators=(",", ":"), ensure_ascii=False)


def test_an_audit_file_that_cannot_be_opened_is_a_configuration_error(tmp_path: Path) -> None:
    """Opening the trail where no file can be made is a ConfigError naming audit.file, which
    serve reports in one line (the configuration check finds a missing folder earlier)."""
    from proxy.core.clock import SystemWallClock
    from proxy.observability.audit import AuditTrail

    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    settings = AuditSettings(hmac_key=AUDIT_KEY, file=tmp_path / "notes.txt" / "audit.jsonl")
    with pytest.raises(ConfigError) as caught:
        AuditTrail(settings, SystemWallClock()).open()
    assert caught.value.problems[0].startswith("audit.file: cannot open ")
