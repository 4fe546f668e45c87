"""serve --workers N: several processes answer on one port and stop cleanly together."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from proxy.config.schema import AUDIT_KEY_ENV, CLIENT_SECRET_ENV
from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN, RunningMock
from tests.support.leaks import assert_no_leak
from tests.support.proxies import AUDIT_KEY, DAY, KEY_ALL, KEY_ALL_SHA


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_for(mock: RunningMock, path: Path) -> Path:
    """A config file pointing at the mock with one consumer."""
    path.write_text(
        f"""
{mock.graph_config()}[[consumers]]
name = "all"
key_sha256 = "{KEY_ALL_SHA}"
allow = ["*@{MOCK_DOMAIN}"]
# The test's fixed dates are in the past of the real clock these processes read.
max_lookback_days = 3660
"""
    )
    return path


async def test_two_workers_serve_one_port(mock_graph: RunningMock, tmp_path: Path) -> None:
    """Two worker processes start on one port, answer requests, and stop on SIGTERM with 0."""
    port = free_port()
    config = config_for(mock_graph, tmp_path / "proxy.toml")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--workers",
        "2",
        env={**os.environ, CLIENT_SECRET_ENV: MOCK_CLIENT_SECRET, AUDIT_KEY_ENV: AUDIT_KEY},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while sum("serving on" in line for line in lines) < 2:
                lines.append((await process.stderr.readline()).decode())
                assert lines[-1], "the server exited early:\n" + "".join(lines)
        pids = {
            re.search(r"worker (\d+) serving", line).group(1)
            for line in lines
            if "serving on" in line
        }  # type: ignore[union-attr]
        assert len(pids) == 2
        body = {"schedules": mock_graph.graph.organisation.addresses()[:2], **DAY}
        async with aiohttp.ClientSession() as session:
            for _ in range(6):
                # Each request on a new connection, so the kernel may pick either worker.
                async with session.post(
                    f"http://127.0.0.1:{port}/v1/availability",
                    json=body,
                    headers={"Authorization": f"Bearer {KEY_ALL}", "Connection": "close"},
                ) as resp:
                    assert resp.status == 200
                    assert_no_leak(await resp.text())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest = await process.stderr.read()
            code = await process.wait()
    assert code == 0
    assert_no_leak("".join(lines), rest.decode())
