"""`freebusy-proxy connect enterprise` (device code) against the mock, then a colleague's query."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN
from tests.support.connect import TOKEN_KEY, connect_settings
from tests.support.mock_graph import MockFactory
from tests.support.paths import ROOT
from tests.support.proxies import AUDIT_KEY, ProxyFactory, auth

MEGAN = f"megan.bowen@{MOCK_DOMAIN}"
ALEX = f"alex.wilber@{MOCK_DOMAIN}"


async def test_device_code_connects_an_enterprise(
    make_mock: MockFactory, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    """The CLI prints msal's message; once the admin approves, the connection serves queries."""
    mock = await make_mock(device_poll_interval_s=1)
    db = tmp_path / "c.db"
    config = tmp_path / "proxy.toml"
    config.write_text(
        mock.graph_config() + f'[connect]\nkinds = ["enterprise"]\nstorage_path = "{db}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "connect",
        "enterprise",
        "--config",
        str(config),
        env={
            **env,
            "PYTHONPATH": str(ROOT),
            "FREEBUSY_PROXY_CLIENT_SECRET": MOCK_CLIENT_SECRET,
            "FREEBUSY_PROXY_TOKEN_KEY": TOKEN_KEY,
            "FREEBUSY_PROXY_AUDIT_KEY": AUDIT_KEY,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        message = (await process.stdout.readline()).decode()
        match = re.search(r"enter the code (\w+)", message)
        assert match, message
        assert mock.graph.approve_device_code(match.group(1), MEGAN)
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    assert MEGAN in out.decode()
    assert "eyJ" not in out.decode() + err.decode()
    proxy = await make_proxy(mock, settings=connect_settings(mock, db))
    body = {"schedules": [ALEX], "start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}
    async with proxy.post("/v1/availability", json=body, headers=auth()) as resp:
        text = await resp.text()
    assert resp.status == 200, text
    assert '"error":null' in text
