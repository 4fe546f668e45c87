"""`serve --config`: the real entry point, with its parser limits, JSON logs and audit trail."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from proxy.config.schema import AUDIT_KEY_ENV, CLIENT_SECRET_ENV
from proxy.core.timefmt import format_utc
from proxy.mock import MOCK_CLIENT_SECRET, RunningMock
from tests.support.leaks import assert_no_leak
from tests.support.paths import ROOT
from tests.support.proxies import AUDIT_KEY, KEY_ALL, KEY_ALL_SHA, ONE_ADDRESS


async def test_serve_applies_limits_and_writes_json_logs(
    mock_graph: RunningMock, tmp_path: Path
) -> None:
    """A configured proxy serves, refuses an over-long header with its own redacted logger,
    logs JSON lines without secrets, audits, and stops cleanly on SIGINT."""
    config = tmp_path / "proxy.toml"
    config.write_text(
        "[server]\nmax_field_size = 2048\n"
        + mock_graph.graph_config()
        + f'[[consumers]]\nname = "app"\nkey_sha256 = "{KEY_ALL_SHA}"\n'
        f'allow = ["{ONE_ADDRESS}"]\n[audit]\nfile = "audit.jsonl"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        cwd=ROOT,
        env={
            **env,
            "PYTHONPATH": str(ROOT),
            CLIENT_SECRET_ENV: MOCK_CLIENT_SECRET,
            AUDIT_KEY_ENV: AUDIT_KEY,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any("serving on" in line for line in lines):
                line = await process.stderr.readline()
                assert line, "serve exited before listening: " + "".join(lines)
                lines.append(line.decode())
        port = int(lines[-1].rsplit(":", 1)[1].split('"')[0])  # "... serving on http://h:PORT"
        base = f"http://127.0.0.1:{port}"
        day = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        day = day.replace(microsecond=0)
        params = {
            "schedules": ONE_ADDRESS,
            "start": format_utc(day),
            "end": format_utc(day + timedelta(days=1)),
        }
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"{base}/v1/availability",
                params=params,
                headers={"Authorization": f"Bearer {KEY_ALL}"},
            ) as resp:
                text = await resp.text()
                assert resp.status == 200, text
            async with session.get(
                f"{base}/healthz", headers={"Authorization": f"Bearer {KEY_ALL}" + "x" * 3000}
            ) as resp:
                assert resp.status == 400  # over max_field_size = 2048
        assert_no_leak(text)
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _, rest = await process.communicate()
    assert process.returncode == 0
    stderr = "".join(lines) + rest.decode()
    assert_no_leak(stderr)
    assert MOCK_CLIENT_SECRET not in stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    # The limits reached aiohttp (it silently falls back to defaults when it cannot take them).
    assert not any("Failed to create request handler" in r["message"] for r in records)
    assert any(r["logger"] == "proxy.http" for r in records), "parser error not on proxy.http"
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [a["status"] for a in audit] == [200]
    assert audit[0]["consumer"] == "app"
