"""Proxy replicas as separate processes (`freebusy-proxy serve`), sharing one Redis."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from proxy.access.consumers import new_key
from proxy.config.schema import (
    AUDIT_KEY_ENV,
    CLIENT_SECRET_ENV,
    CLUSTER_KEY_ENV,
    ClusterSettings,
    Settings,
    ThrottleSettings,
)
from proxy.mock import MOCK_CLIENT_SECRET, MOCK_DOMAIN, RunningMock
from tests.support.leaks import assert_no_leak
from tests.support.paths import ROOT
from tests.support.proxies import AUDIT_KEY, KEY_ALL, KEY_ALL_SHA, proxy_settings

# What FREEBUSY_PROXY_CLUSTER_KEY holds for every replica under test.
CLUSTER_KEY = "test-cluster-key-" + "q" * 32
# A consumer allowed six requests a minute, across all replicas.
KEY_LIMITED, KEY_LIMITED_SHA = new_key()
LIMITED_RATE = 6
_SERVING = re.compile(r"serving on http://[^:]+:(\d+)")


def cluster_config(
    mock: RunningMock, redis_url: str, path: Path, *, graph: str = "", extra: str = ""
) -> Path:
    """A config for replicas in front of the mock, sharing through ``redis_url``; ``graph``:
    more [graph] lines, ``extra``: more sections."""
    path.write_text(
        f"""{mock.graph_config()}timeout_seconds = 5
{graph}
[cluster]
redis_url = "{redis_url}"
lease_seconds = 2
{extra}
[[consumers]]
name = "all"
key_sha256 = "{KEY_ALL_SHA}"
allow = ["*@{MOCK_DOMAIN}"]
# The tests' fixed dates may lie in the past of the real clock these processes read.
max_lookback_days = 3660
max_lookahead_days = 3660
rate_per_minute = 0

[[consumers]]
name = "limited"
key_sha256 = "{KEY_LIMITED_SHA}"
allow = ["*@{MOCK_DOMAIN}"]
max_lookback_days = 3660
rate_per_minute = {LIMITED_RATE}
"""
    )
    return path


@dataclass
class Replica:
    """One proxy process: where it listens, and what it has logged."""

    process: asyncio.subprocess.Process
    port: int = 0
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def records(self) -> list[dict[str, Any]]:
        """Its JSON log lines so far."""
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def kill(self) -> None:
        """SIGKILL: no clean-up, leases and locks left as they are."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)


async def _start(config: Path) -> Replica:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "serve", "--config", str(config), "--port", "0",
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), CLIENT_SECRET_ENV: MOCK_CLIENT_SECRET,
             AUDIT_KEY_ENV: AUDIT_KEY, CLUSTER_KEY_ENV: CLUSTER_KEY},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    replica = Replica(process)
    assert process.stderr is not None
    async with asyncio.timeout(60):
        while not replica.port:
            line = (await process.stderr.readline()).decode()
            assert line, "a replica exited before listening:\n" + "".join(replica.lines)
            replica.lines.append(line)
            if (found := _SERVING.search(line)) is not None:
                replica.port = int(found.group(1))
    replica.reader = asyncio.get_running_loop().create_task(_read(replica))
    return replica


async def _read(replica: Replica) -> None:
    """Keep reading its log, so the pipe never fills."""
    assert replica.process.stderr is not None
    while line := await replica.process.stderr.readline():
        replica.lines.append(line.decode())


@asynccontextmanager
async def running_replicas(config: Path, count: int = 3) -> AsyncIterator[list[Replica]]:
    """``count`` replicas on free ports; stopped after the block, their logs checked for
    leaks."""
    started = await asyncio.gather(*(_start(config) for _ in range(count)))
    try:
        yield list(started)
    finally:
        for replica in started:
            if replica.process.returncode is None:
                replica.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            for replica in started:
                await replica.process.wait()
                if replica.reader is not None:
                    await replica.reader
        for replica in started:
            assert_no_leak("".join(replica.lines))


async def ask_replica(
    session: aiohttp.ClientSession,
    replica: Replica,
    schedules: list[str],
    start: str,
    end: str,
    *,
    key: str = KEY_ALL,
) -> tuple[int, dict[str, Any]]:
    """POST /v1/availability to one replica; status and body, checked for leaks."""
    async with session.post(
        replica.base + "/v1/availability",
        json={"schedules": schedules, "start": start, "end": end},
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        text = await resp.text()
        assert_no_leak(text)
        return resp.status, json.loads(text)


async def metric(
    session: aiohttp.ClientSession, replica: Replica, name: str, **labels: str
) -> float:
    """One sample of a replica's /metrics (0 when absent)."""
    async with session.get(replica.base + "/metrics") as resp:
        text = await resp.text()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    sample = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cluster_settings(mock: RunningMock, redis_url: str, **fields: Any) -> Settings:
    """In-process proxy settings for the mock, sharing through ``redis_url`` ([cluster]
    fields given by name, [throttle] ones as ``throttle=``)."""
    throttle = fields.pop("throttle", ThrottleSettings())
    graph = fields.pop("graph", {})
    cluster = ClusterSettings(
        redis_url=redis_url, cluster_key=CLUSTER_KEY, lease_seconds=2.0, **fields
    )
    return replace(
        proxy_settings(mock, timeout_seconds=5.0, **graph), cluster=cluster, throttle=throttle
    )
