"""The README's first command: `freebusy-proxy serve` with no config runs a working demo."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.support.leaks import assert_no_leak
from tests.support.paths import ROOT


@pytest.fixture
def port_8080_busy() -> Iterator[None]:
    """Port 8080 taken while the test runs: by this fixture, or by a demo already running."""
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 8080))
            holder.listen()
        except OSError as exc:
            # Already taken (the README's demo from command one, say): busy either way.
            if exc.errno != errno.EADDRINUSE:
                raise
        yield


async def test_demo_serves_minimized_availability(tmp_path: Path, port_8080_busy: None) -> None:
    """With 8080 taken, `serve --port 0` picks a free port; the printed curl line works as
    printed and returns minimized data; Ctrl+C stops cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        banner: list[str] = []
        async with asyncio.timeout(60):
            while not any(line.lstrip().startswith("curl ") for line in banner):
                line = await process.stdout.readline()
                assert line, "the demo exited before printing its curl line"
                banner.append(line.decode())
        proxy_url = next(line for line in banner if line.strip().startswith("proxy:")).split()[-1]
        assert urlsplit(proxy_url).port not in (None, 8080), proxy_url
        curl = next(line for line in banner if line.lstrip().startswith("curl "))
        words = shlex.split(curl)
        header = words[words.index("-H") + 1]
        url = words[-1]
        name, _, value = header.partition(": ")
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers={name: value}) as resp,
        ):
            text = await resp.text()
        assert resp.status == 200, text
        body = json.loads(text)
        assert len(body["schedules"]) == 3
        assert any(entry["items"] for entry in body["schedules"])
        assert_no_leak(text)
        # The connect flows are enabled and printed; the first leg redirects to the mock.
        while not any("Connections:" in line for line in banner):
            line = await process.stdout.readline()
            assert line, "the demo exited before printing its connect links"
            banner.append(line.decode())
        # The week view's link carries the demo key in its fragment, which no server sees.
        view = urlsplit(next(line for line in banner if "Week view:" in line).split()[-1])
        assert (view.path, view.query) == ("/view", "")
        assert parse_qs(view.fragment)["key"] == [value.removeprefix("Bearer ")]
        async with (
            aiohttp.ClientSession() as session,
            session.get(view._replace(fragment="").geturl()) as resp,
        ):
            assert resp.status == 200
            assert resp.content_type == "text/html"
        start = next(line for line in banner if "Individual Connect:" in line).split()[-1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(start, allow_redirects=False) as resp,
        ):
            assert resp.status == 302
            assert "/oauth2/v2.0/authorize?" in resp.headers["Location"]
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "CANARY" not in stderr.decode()


EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (what a container's demo listens on)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_demo_on_every_interface_prints_links_that_work(tmp_path: Path) -> None:
    """`serve --host 0.0.0.0 --mock-port P` (the image's default): the links name loopback,
    and the sign-in the connect flow redirects to is the mock on P, beside the proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    mock_port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", "--host", EVERY_INTERFACE, "--port", "0",
        "--mock-port", str(mock_port),
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        banner: list[str] = []
        async with asyncio.timeout(60):
            while not any("Connections:" in line for line in banner):
                line = await process.stdout.readline()
                assert line, "the demo exited before printing its links"
                banner.append(line.decode())
        text = "".join(banner)
        assert EVERY_INTERFACE not in text
        proxy_url = next(line for line in banner if line.strip().startswith("proxy:")).split()[-1]
        assert urlsplit(proxy_url).hostname == "127.0.0.1"
        assert f"mock Graph: https://127.0.0.1:{mock_port}" in text
        start = next(line for line in banner if "Individual Connect:" in line).split()[-1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(start, allow_redirects=False) as resp,
        ):
            assert resp.status == 302
            assert resp.headers["Location"].startswith(f"https://127.0.0.1:{mock_port}/")
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
