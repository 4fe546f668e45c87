"""`freebusy-proxy mock-graph` configures the proxy: its printed commands work as printed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from proxy.mock import MOCK_DOMAIN
from tests.support.leaks import assert_no_leak

MEGAN = f"megan.bowen@{MOCK_DOMAIN}"  # the mock's administrator
ALEX = f"alex.wilber@{MOCK_DOMAIN}"
Process = asyncio.subprocess.Process


def shell_environment() -> dict[str, str]:
    """The environment a user's shell has: freebusy-proxy on PATH, none of its variables set."""
    scripts = Path(sys.executable).parent
    if shutil.which("freebusy-proxy", path=str(scripts)) is None:
        pytest.fail(f"freebusy-proxy is not installed next to {sys.executable} (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    return {**env, "PATH": f"{scripts}{os.pathsep}{env.get('PATH', '')}"}


async def read_until(stream: asyncio.StreamReader, done: Callable[[list[str]], bool]) -> list[str]:
    """Lines of ``stream`` until ``done(lines)`` holds (60 s at most)."""
    lines: list[str] = []
    async with asyncio.timeout(60):
        while not done(lines):
            line = await stream.readline()
            assert line, "the process ended early:\n" + "".join(lines)
            lines.append(line.decode())
    return lines


@dataclass
class Printed:
    """What mock-graph printed, picked out as a user would."""

    lines: list[str]

    def after(self, heading: str) -> str:
        """The line after the one that starts with ``heading``."""
        index = next(i for i, line in enumerate(self.lines) if line.startswith(heading))
        return self.lines[index + 1].strip()

    def value(self, label: str) -> str:
        """The last word of the line containing ``label``."""
        return next(line for line in self.lines if label in line).split()[-1]


@contextlib.asynccontextmanager
async def shell(command: str, env: dict[str, str]) -> AsyncIterator[Process]:
    """Run a printed command line in bash; interrupt it (Ctrl+C) when the block ends."""
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", command,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await process.communicate()


@pytest.fixture
async def mock_graph_command(tmp_path: Path) -> AsyncIterator[Printed]:
    """`freebusy-proxy mock-graph` running on a free port, and what it printed."""
    env = shell_environment()
    command = f"freebusy-proxy mock-graph --port 0 --proxy-port 0 --cert-dir {tmp_path / 'certs'}"
    async with shell(command, env) as process:
        assert process.stdout is not None
        lines = await read_until(process.stdout, lambda seen: "connect enterprise" in "".join(seen))
        yield Printed(lines)


async def serving_port(process: Process) -> int:
    """The port `serve` logs that it bound."""
    assert process.stderr is not None
    lines = await read_until(process.stderr, lambda seen: any("serving on" in s for s in seen))
    match = re.search(r"serving on http://127\.0\.0\.1:(\d+)", "".join(lines))
    assert match, lines
    return int(match.group(1))


async def test_mock_graph_then_serve_then_curl(mock_graph_command: Printed) -> None:
    """The printed serve line runs the proxy; the printed curl answers 200 with availability."""
    printed = mock_graph_command
    env = shell_environment()
    serve = printed.after("Run the proxy with it")
    assert serve.startswith("FREEBUSY_PROXY_CLIENT_SECRET=")
    assert " freebusy-proxy serve --config " in serve
    async with shell(serve, env) as proxy:
        port = await serving_port(proxy)
        curl = printed.after("Then ask it").replace("PORT", str(port))
        async with shell(curl + " -w '\\n%{http_code}'", env) as request:
            out, err = await request.communicate()
        body, _, status = out.decode().rpartition("\n")
        assert (request.returncode, status) == (0, "200"), (body, err)
        schedules = json.loads(body)["schedules"]
        assert len(schedules) == 3
        assert all(entry["error"] is None for entry in schedules)
        assert any(entry["items"] for entry in schedules)
        assert_no_leak(body)


async def test_mock_graph_device_code_connects_through_its_page(
    mock_graph_command: Printed,
) -> None:
    """The printed connect line, the mock's /devicelogin page (code, Accept), then serve:
    the enterprise connection is listed with every permission the consent asked for."""
    printed = mock_graph_command
    env = shell_environment()
    ca = ssl.create_default_context(cafile=printed.value("CA certificate:"))
    async with (
        shell(printed.after("Connect Enterprise Free/Busy"), env) as connect,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ca)) as browser,
    ):
        assert connect.stdout is not None
        message = (await read_until(connect.stdout, lambda seen: bool(seen)))[0]
        found = re.search(
            r"open the page (https://\S+/devicelogin) and enter the code (\w+)", message
        )
        assert found, message
        page, code = found.groups()
        async with browser.get(page) as resp:
            assert resp.status == 200
            assert 'name="user_code"' in await resp.text()
        async with browser.post(page, data={"user_code": code.lower()}) as resp:
            consent = await resp.text()
            assert resp.status == 200, consent
        for permission in ("Calendars.ReadBasic", "User.Read", "offline_access"):
            assert permission in consent
        decision = {"user_code": code, "user": MEGAN, "decision": "accept"}
        async with browser.post(page, data=decision) as resp:
            assert resp.status == 200
            assert "You are signed in" in await resp.text()
        async with asyncio.timeout(60):
            out, err = await connect.communicate()
    assert connect.returncode == 0, err.decode()[-2000:]
    assert f"Connected (enterprise): {MEGAN}" in out.decode()

    async with shell(printed.after("Run the proxy with it"), env) as proxy:
        base = f"http://127.0.0.1:{await serving_port(proxy)}"
        admin = {"Authorization": f"Bearer {printed.value('admin key')}"}
        key = {"Authorization": f"Bearer {printed.value('API key of its consumer')}"}
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
        window = {"start": f"{tomorrow}T09:00:00Z", "end": f"{tomorrow}T17:00:00Z"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/admin/connections", headers=admin) as resp:
                (connection,) = (await resp.json())["connections"]
            body = {"schedules": [ALEX], **window}
            async with session.post(f"{base}/v1/availability", json=body, headers=key) as resp:
                answer = await resp.text()
                assert resp.status == 200, answer
    assert connection["account"] == MEGAN
    assert connection["status"] == "connected"
    assert {"Calendars.ReadBasic", "User.Read", "offline_access"} <= set(connection["scopes"])
    assert json.loads(answer)["schedules"][0]["error"] is None


async def test_a_device_code_that_is_wrong_or_declined(mock_graph_command: Printed) -> None:
    """An unknown code is refused on the page (400); Decline ends the sign-in as declined."""
    printed = mock_graph_command
    env = shell_environment()
    ca = ssl.create_default_context(cafile=printed.value("CA certificate:"))
    async with (
        shell(printed.after("Connect Enterprise Free/Busy"), env) as connect,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ca)) as browser,
    ):
        assert connect.stdout is not None
        message = (await read_until(connect.stdout, lambda seen: bool(seen)))[0]
        found = re.search(r"open the page (\S+) and enter the code (\w+)", message)
        assert found, message
        page, code = found.groups()
        async with browser.post(page, data={"user_code": "NOT-A-CODE"}) as resp:
            assert resp.status == 400
            assert "That code is not valid" in await resp.text()
        async with browser.post(page, data={"user_code": code, "decision": "decline"}) as resp:
            assert "Sign-in declined" in await resp.text()
        async with asyncio.timeout(60):
            out, _ = await connect.communicate()
    assert connect.returncode == 1
    assert "sign-in failed (authorization_declined)" in out.decode()
