"""The benchmark: throughput (cached, sliding windows, workers), Graph economy, event-loop lag,
cold-path overhead, the largest request, memory, slots, and three replicas sharing one Redis.

Run from the repository root:   python bench/run.py
Needs the package (pip install -e .) and wrk (Debian/Ubuntu: apt-get install -y wrk);
figure 6 needs redis-server (apt-get install -y redis-server).
Options: --duration SECONDS per throughput run (default 10), --requests for the mixed
workload (default 5000), --lag-seconds and --lag-rate for the event-loop figure (default
75 s, past one purge of the full cache, at 1,000 requests a second), --min-fetch-days N
for the proxy's fetch blocks (default: its own default, 8), --quick for a smoke run.

Everything runs on this machine: the mock Graph (500 mailboxes) and the load generators in
this process, the proxy (`serve --config`, as a deployment runs it) and the bare aiohttp
baseline as separate processes. Beside each throughput, the CPU time each server process
spent per request (from /proc): unlike requests per second, it holds up on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
# Import (and run in subprocesses) the proxy of this checkout, whatever else is installed.
sys.path.insert(0, str(ROOT))

from bench.passthrough import TOKEN_ENV as PASSTHROUGH_TOKEN_ENV
from proxy.access.consumers import new_key
from proxy.config.schema import AUDIT_KEY_ENV, CLIENT_SECRET_ENV, CacheSettings
from proxy.core.clock import MONOTONIC
from proxy.core.model import Window
from proxy.core.timefmt import format_graph_local, format_utc
from proxy.mock import (
    MOCK_CLIENT_SECRET,
    MOCK_DOMAIN,
    Fault,
    MockSettings,
    RunningMock,
    start_mock,
)
from proxy.observability.metrics import Metrics
from proxy.sources.cache import CachedScheduleSource
from proxy.sources.credentials import MsalAppTokens
from proxy.sources.gate import Throttle
from proxy.sources.graph import GraphScheduleSource, RetryPolicy
from proxy.sources.tls import client_ssl_context

ORG_SIZE = 500
# What the mixed workload's Graph takes to answer; real Graph is slower still.
MOCK_LATENCY_MS = 30
KEY, KEY_SHA = new_key()
# The proxy writes its audit trail (to standard output, discarded) as a deployment would.
PROXY_ENV = {CLIENT_SECRET_ENV: MOCK_CLIENT_SECRET, AUDIT_KEY_ENV: "bench-" + "0" * 40}
# The days the benchmark asks about: a Monday in March 2026 and after.
T0 = datetime(2026, 3, 16, 6, 0, tzinfo=UTC)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(mock: RunningMock, directory: Path, min_fetch_days: int) -> Path:
    """The proxy's config for the benchmark: defaults, pointed at the mock."""
    path = directory / "bench.toml"
    path.write_text(
        f"""
{mock.graph_config()}[[consumers]]
name = "bench"
key_sha256 = "{KEY_SHA}"
allow = ["*@{MOCK_DOMAIN}"]
# The benchmark's fixed March 2026 days lie in the past; wrk sends thousands a second
# (0: the bucket is not consulted; the limiter's take() costs about 2 µs a request).
max_lookback_days = 3660
rate_per_minute = 0

[cache]
min_fetch_days = {min_fetch_days}
"""
    )
    return path


@asynccontextmanager
async def server(
    argv: list[str], port: int, *, env: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """Run a server process until the block ends; yield its base URL once it answers."""
    log = Path(tempfile.gettempdir()) / f"freebusy-bench-{port}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            # `python -m` puts the working folder first on sys.path: it must be ROOT, or the
            # checkout the benchmark was started from is what runs.
            cwd=str(ROOT),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    PIDS[base] = process.pid
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(base + "/healthz"):
                        break
                except aiohttp.ClientError:
                    if process.returncode is not None:
                        raise RuntimeError(f"{argv[:4]} exited; see {log}") from None
                    await asyncio.sleep(0.05)
        yield base
    finally:
        PIDS.pop(base, None)
        process.terminate()
        await process.wait()


# Base URL -> process id of each server() running (for its CPU time and memory).
PIDS: dict[str, int] = {}
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process and its children (workers) used so far."""
    total = 0.0
    for each in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _children(pid: int) -> list[int]:
    """Process ids of the process's children (every thread's)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (the peak so far) of a process, in kB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def proxy_argv(config: Path, port: int) -> list[str]:
    """The proxy as a deployment runs it: `serve --config`, defaults (access log included)."""
    return [
        sys.executable, "-m", "proxy", "serve", "--config", str(config), "--port", str(port),
    ]  # fmt: skip


async def post(
    session: aiohttp.ClientSession,
    base: str,
    body: dict[str, Any],
    *,
    path: str = "/v1/availability",
) -> bytes:
    """POST /v1/availability (or ``path``); return the body (and fail on anything but 200)."""
    async with session.post(
        base + path, json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"proxy answered {resp.status}: {data[:200]!r}")
        return data


# --- 1. cached path ---------------------------------------------------------------------


# In a body sent by wrk(..., vary_end=True): replaced per request by an instant between
# 12:00:00.000 and 23:59:59.999 of 2026-03-22, from a random place each run (and stepping
# by a prime), so no request repeats one of this run or of an earlier run the response
# memo may still hold.
END_MARK = "__END__"
_VARY_END = f"""
local template = wrk.body
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local sent = math.random(0, 43199999)
request = function()
  sent = (sent + 7919) % 43200000
  local s = math.floor(sent / 1000)
  local stamp = string.format("2026-03-22T%02d:%02d:%02d.%03dZ", 12 + math.floor(s / 3600),
                              math.floor(s / 60) % 60, s % 60, sent % 1000)
  return wrk.format(nil, nil, nil, (template:gsub("{END_MARK}", stamp)))
end
"""


class Throughput(NamedTuple):
    """One wrk run: requests per second, requests answered, and the server's CPU per request
    (microseconds; None when its process is not known)."""

    rps: float
    requests: int
    cpu_us: float | None


async def wrk_run(
    url: str,
    body: str,
    duration: int,
    directory: Path,
    *,
    vary_end: bool = False,
    threads: int = 1,
    connections: int = 50,
) -> Throughput:
    """A wrk run against ``url`` (a server() of this process, whose CPU is read from /proc);
    with ``vary_end``, every request differs in the window's end (see END_MARK)."""
    script = directory / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n' + (_VARY_END if vary_end else "")
    )
    pid = next((pid for base, pid in PIDS.items() if url.startswith(base + "/")), None)
    before = cpu_seconds(pid) if pid is not None else 0.0
    process = await asyncio.create_subprocess_exec(
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out = (await process.communicate())[0].decode()
    spent = cpu_seconds(pid) - before if pid is not None else None
    if "Non-2xx" in out:
        raise RuntimeError("wrk saw error responses:\n" + out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError("cannot read wrk's output:\n" + out)
    requests = int(count.group(1))
    cpu_us = None if spent is None else 1e6 * spent / max(1, requests)
    return Throughput(float(rate.group(1)), requests, cpu_us)


async def wrk(
    url: str, body: str, duration: int, directory: Path, *, vary_end: bool = False
) -> float:
    """Requests per second wrk reaches against ``url`` (1 thread, 50 connections)."""
    return (await wrk_run(url, body, duration, directory, vary_end=vary_end)).rps


async def cached_path(
    mock: RunningMock, config: Path, directory: Path, duration: int
) -> dict[str, Any]:
    """Throughput of cached 3-address POSTs against a bare handler, alternating: the same
    one-day body repeated (the response memo answers), and sliding windows of 1 and 7 days,
    every body different (the memo misses, the cache answers)."""
    people = mock.graph.organisation.addresses()[:3]
    shapes = {
        "same": {"schedules": people, "start": "2026-03-16T00:00:00Z",
                 "end": "2026-03-17T00:00:00Z"},
        "slide_1": {"schedules": people, "start": "2026-03-22T00:00:00Z", "end": END_MARK},
        "slide_7": {"schedules": people, "start": "2026-03-16T00:00:00Z", "end": END_MARK},
    }  # fmt: skip
    # What warms each shape's days: its window to the end of the day END_MARK falls on.
    warm = {name: {**body, "end": "2026-03-23T00:00:00Z"} if body["end"] == END_MARK else body
            for name, body in shapes.items()}  # fmt: skip
    proxy_port, bare_port, floor_port = free_port(), free_port(), free_port()
    runs: dict[str, list[Throughput]] = {name: [] for name in (*shapes, "bare", "floor")}
    async with server(proxy_argv(config, proxy_port), proxy_port, env=PROXY_ENV) as base:
        async with aiohttp.ClientSession() as session:
            answer = await post(session, base, shapes["same"])
        (directory / "answer.json").write_bytes(answer)
        bare_argv = [
            sys.executable,
            str(ROOT / "bench" / "bare.py"),
            str(bare_port),
            str(directory / "answer.json"),
        ]
        (directory / "request.json").write_text(json.dumps(shapes["same"]))
        floor_argv = [
            sys.executable, str(ROOT / "bench" / "floor.py"), str(floor_port),
            str(directory / "answer.json"), KEY, str(directory / "request.json"),
            str(directory / "floor-audit.jsonl"),
        ]  # fmt: skip
        async with server(bare_argv, bare_port) as bare, server(floor_argv, floor_port) as floor:
            for _ in range(2):
                runs["bare"].append(
                    await wrk_run(bare + "/v1/availability", json.dumps(shapes["same"]),
                                  duration, directory)
                )  # fmt: skip
                runs["floor"].append(
                    await wrk_run(floor + "/v1/availability", json.dumps(shapes["same"]),
                                  duration, directory)
                )  # fmt: skip
                for name, body in shapes.items():
                    async with aiohttp.ClientSession() as session:
                        # Cached already, or again past the TTL: the run measures hits.
                        await post(session, base, warm[name])
                    runs[name].append(
                        await wrk_run(base + "/v1/availability", json.dumps(body), duration,
                                      directory, vary_end=name != "same")
                    )  # fmt: skip
    bare_mean = statistics.mean(run.rps for run in runs["bare"])
    result: dict[str, Any] = {"bare_rps": bare_mean, "bare_cpu_us": _mean_cpu(runs["bare"])}
    for name in (*shapes, "floor"):
        mean = statistics.mean(run.rps for run in runs[name])
        result[f"{name}_rps"] = mean
        result[f"{name}_ratio"] = mean / bare_mean
        result[f"{name}_cpu_us"] = _mean_cpu(runs[name])
    result["bytes"] = len(answer)
    return result


def _mean_cpu(runs: list[Throughput]) -> float:
    """CPU microseconds per request over several runs (weighted by their requests)."""
    spent = sum((run.cpu_us or 0.0) * run.requests for run in runs)
    return spent / max(1, sum(run.requests for run in runs))


# --- 2. upstream economy ----------------------------------------------------------------


def mixed_workload(addresses: list[str], count: int, seed: int = 4) -> list[dict[str, Any]]:
    """Requests a scheduling app makes: sliding "next 7 days", "today", single days ahead.

    Simulated time advances 6 s per request (5,000 requests ~ 8 hours of a working day),
    so sliding windows move; 1 to 5 addresses per request, chosen uniformly.
    """
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        now = T0 + timedelta(seconds=6 * i)
        kind = rng.random()
        if kind < 0.6:
            start, end = now, now + timedelta(days=7)
        elif kind < 0.85:
            start = now
            end = now.replace(hour=0, minute=0, second=0) + timedelta(days=1)
        else:
            day = now.replace(hour=0, minute=0, second=0) + timedelta(days=rng.randint(1, 14))
            start, end = day, day + timedelta(days=1)
        requests.append(
            {
                "schedules": rng.sample(addresses, rng.randint(1, 5)),
                "start": format_utc(start),
                "end": format_utc(end),
            }
        )
    return requests


def naive_calls(request: dict[str, Any]) -> int:
    """Calls a pass-through makes: one per 20 addresses per sub-62-day slice of the window."""
    start = datetime.fromisoformat(request["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(request["end"].replace("Z", "+00:00"))
    slices = math.ceil((end - start) / timedelta(days=61))
    return math.ceil(len(request["schedules"]) / 20) * slices


async def economy(mock: RunningMock, config: Path, requests: int) -> dict[str, Any]:
    """Graph calls for the mixed workload from 50 concurrent clients, against a pass-through."""
    workload = mixed_workload(mock.graph.organisation.addresses(), requests)
    port = free_port()
    async with server(proxy_argv(config, port), port, env=PROXY_ENV) as base:
        mock.graph.reset()
        mock.graph.add_fault(Fault(kind="latency", delay_ms=MOCK_LATENCY_MS, count=None))
        queue = iter(workload)
        started = time.perf_counter()
        connector = aiohttp.TCPConnector(limit=50)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                for body in queue:
                    await post(session, base, body)

            await asyncio.gather(*(client() for _ in range(50)))
        elapsed = time.perf_counter() - started
        mock.graph.clear_faults()
        stats = mock.graph.stats()
    naive = sum(naive_calls(r) for r in workload)
    return {
        "requests": len(workload),
        "naive_calls": naive,
        "graph_calls": stats["calls"]["getSchedule"],
        "factor": naive / max(1, stats["calls"]["getSchedule"]),
        "breaches": stats["breaches"],
        "max_concurrent_per_mailbox": stats["max_concurrent_per_mailbox"],
        "seconds": elapsed,
    }


# --- 3. cold path -----------------------------------------------------------------------


async def cold_path(
    mock: RunningMock, config: Path, samples: int, min_fetch_days: int
) -> dict[str, Any]:
    """Latency of uncached one-mailbox, one-day requests through the proxy vs to the mock.

    Two direct baselines: the consumer's own question (one day), and the call the proxy
    really makes on a miss (``cache.min_fetch_days`` days), to tell the proxy's own overhead
    from the cost of fetching the whole block of days. And the floor: the same question
    through a bare pass-through making that call (bench/passthrough.py), what the hop costs.
    """
    addresses = mock.graph.organisation.addresses()
    if samples + 20 > len(addresses):
        raise ValueError(f"at most {len(addresses) - 20} cold-path samples (one per mailbox)")
    reach = timedelta(days=min_fetch_days)
    tokens = MsalAppTokens(**mock.client_credentials(), timeout_seconds=10, clock=MONOTONIC)
    port, floor_port = free_port(), free_port()
    timings: dict[str, list[float]] = {"day": [], "reach": [], "proxy": [], "floor": []}
    try:
        token = await tokens.token()
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(mock.ca_file))
        floor_argv = [
            sys.executable, str(ROOT / "bench" / "passthrough.py"), str(floor_port),
            mock.graph_base_url, str(mock.ca_file), str(reach.days),
        ]  # fmt: skip
        async with (
            server(proxy_argv(config, port), port, env=PROXY_ENV) as base,
            server(floor_argv, floor_port, env={PASSTHROUGH_TOKEN_ENV: token}) as floor,
            aiohttp.ClientSession(connector=connector) as graph,
            aiohttp.ClientSession() as session,
        ):

            async def direct(address: str, start: datetime, end: datetime) -> float:
                body = {
                    "schedules": [address],
                    "startTime": {"dateTime": format_graph_local(start), "timeZone": "UTC"},
                    "endTime": {"dateTime": format_graph_local(end), "timeZone": "UTC"},
                    "availabilityViewInterval": 1440,
                }
                t = time.perf_counter()
                async with graph.post(
                    f"{mock.graph_base_url}/users/{address}/calendar/getSchedule",
                    json=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Prefer": 'outlook.timezone="UTC"',
                    },
                ) as resp:
                    await resp.read()
                    assert resp.status == 200
                return time.perf_counter() - t

            mock.graph.reset()
            day = T0.replace(hour=0)
            proxy_cpu = 0.0
            for i in range(samples + 20):
                address = addresses[i]
                # The mock memoizes each mailbox's calendar: warm it first, so all three
                # measured calls find it equally warm whichever order they come in.
                await direct(address, day, day + reach)
                one_day = await direct(address, day, day + timedelta(days=1))
                reaching = await direct(address, day, day + reach)
                body = {"schedules": [address], "start": format_utc(day),
                        "end": format_utc(day + timedelta(days=1))}  # fmt: skip
                if i == 20:  # the first few warm up connections and the token
                    # Read once over all samples: /proc counts in ticks of 10 ms. The
                    # proxy is idle while the bench calls the mock directly.
                    proxy_cpu = cpu_seconds(PIDS[base])
                t = time.perf_counter()
                await post(session, base, body)
                proxied = time.perf_counter() - t
                t = time.perf_counter()
                await post(session, floor, body)
                floored = time.perf_counter() - t
                if i >= 20:
                    timings["day"].append(one_day)
                    timings["reach"].append(reaching)
                    timings["proxy"].append(proxied)
                    timings["floor"].append(floored)
            proxy_cpu = cpu_seconds(PIDS[base]) - proxy_cpu
            calls = mock.graph.stats()["calls"]["getSchedule"]
    finally:
        await tokens.close()
    assert calls == 5 * (samples + 20), "every proxy request must have been a cache miss"
    result: dict[str, Any] = {
        "samples": samples,
        "reach_days": reach.days,
        "cpu_ms": 1000 * proxy_cpu / samples,
    }
    for name, values in timings.items():
        for p in (50, 99):
            result[f"{name}_p{p}_ms"] = percentile(values, p) * 1000
    for p in (50, 99):
        result[f"added_p{p}_ms"] = result[f"proxy_p{p}_ms"] - result[f"day_p{p}_ms"]
        result[f"overhead_p{p}_ms"] = result[f"proxy_p{p}_ms"] - result[f"reach_p{p}_ms"]
        result[f"floor_overhead_p{p}_ms"] = result[f"floor_p{p}_ms"] - result[f"reach_p{p}_ms"]
    return result


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


# --- 4. memory ----------------------------------------------------------------------------


async def memory(mock: RunningMock, days: int = 14) -> dict[str, Any]:
    """Bytes the cache holds per mailbox-day, filled from the mock (see held_bytes)."""
    addresses = mock.graph.organisation.addresses()
    tokens = MsalAppTokens(**mock.client_credentials(), timeout_seconds=10, clock=MONOTONIC)
    try:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(mock.ca_file))
        async with aiohttp.ClientSession(connector=connector) as session:
            gate = Throttle(
                mailbox_concurrency=4, max_concurrency=32, mailbox_budget=9000,
                clock=MONOTONIC, metrics=Metrics(),
            )  # fmt: skip
            graph = GraphScheduleSource(
                session=session, tokens=tokens, base_url=mock.graph_base_url,
                retry=RetryPolicy(), gate=gate, clock=MONOTONIC,
            )  # fmt: skip
            cache = CachedScheduleSource(
                graph, ttl_s=3600, max_entries=10**7, clock=MONOTONIC, metrics=Metrics()
            )
            window = Window(start=T0.replace(hour=0), end=T0.replace(hour=0) + timedelta(days=days))
            await cache.get_schedules(addresses, window)
            entries = cache.entries()
            held = held_bytes(entries)
            count = len(entries)
            items = sum(len(entry.items) for _, entry in entries)
    finally:
        await tokens.close()
    return {
        "entries": count,
        "items_per_entry": items / count,
        "bytes_per_entry": held / count,
    }


def held_bytes(entries: list[tuple[Any, Any]]) -> int:
    """Bytes of every object the cache's days hold (each counted once, however shared): the
    days, their item tuples, the items, their instants, and a dict slot and day number each.

    Counted by walking them, not by tracemalloc: a fill also leaves connections' buffers and
    the mock's answers behind, which tracemalloc would count as the cache's.
    """
    seen: set[int] = set()
    total = 0

    def count(thing: object) -> None:
        nonlocal total
        if id(thing) not in seen:
            seen.add(id(thing))
            total += sys.getsizeof(thing)

    for (_, day), entry in entries:
        # A slot of the mailbox's dict of days (hash, key, value), and its key.
        total += 24
        count(day)
        count(entry)
        count(entry.items)
        for item in entry.items:
            count(item)
            count(item.start)
            count(item.end)
    return total


# --- 5. slots -----------------------------------------------------------------------------


async def slots_path(
    mock: RunningMock, config: Path, directory: Path, duration: int
) -> dict[str, Any]:
    """Throughput of /v1/slots against /v1/availability for the same 5 addresses and 7 days,
    from a warm cache, alternating (wrk -t1 -c50): the same request again and again (both
    answered by the response memo), and every request new (both computed from the cache)."""
    people = mock.graph.organisation.addresses()[5:10]
    availability = {"schedules": people, "start": "2026-03-16T00:00:00Z", "end": END_MARK}
    slots = {
        "participants": [{"schedule": address} for address in people],
        "start": "2026-03-16T00:00:00Z",
        "end": END_MARK,
        "duration_minutes": 30,
        "open_hours": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00",
             "time_zone": "Europe/Berlin"}
        ],
    }  # fmt: skip
    week = "2026-03-23T00:00:00Z"
    port = free_port()
    rates: dict[tuple[str, bool], list[float]] = {}
    async with (
        server(proxy_argv(config, port), port, env=PROXY_ENV) as base,
        aiohttp.ClientSession() as session,
    ):
        for _ in range(2):
            for vary in (False, True):
                for path, body in (("/v1/availability", availability), ("/v1/slots", slots)):
                    # Warm (or re-warm past the TTL) the days, and check there is work to do.
                    answer = json.loads(await post(session, base, {**body, "end": week}, path=path))
                    if path == "/v1/slots" and not answer["slots"]:
                        raise RuntimeError("the slots benchmark found no slot to measure")
                    text = json.dumps(body if vary else {**body, "end": week})
                    rate = await wrk(base + path, text, duration, directory, vary_end=vary)
                    rates.setdefault((path, vary), []).append(rate)
    mean = {key: statistics.mean(values) for key, values in rates.items()}
    result: dict[str, Any] = {}
    for vary, name in ((False, "repeated"), (True, "new")):
        result[f"{name}_slots_rps"] = mean[("/v1/slots", vary)]
        result[f"{name}_availability_rps"] = mean[("/v1/availability", vary)]
        result[f"{name}_ratio"] = mean[("/v1/slots", vary)] / mean[("/v1/availability", vary)]
    return result


# --- 6. cluster ---------------------------------------------------------------------------

CLUSTER_ENV = {**PROXY_ENV, "FREEBUSY_PROXY_CLUSTER_KEY": "bench-cluster-" + "0" * 40}


@asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """A redis-server without persistence on a free port; yield its URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        shutil.which("redis-server") or "redis-server", "--port", str(port),
        "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
            else:
                writer.close()
                await writer.wait_closed()
                break
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        await process.wait()


async def round_trips(session: aiohttp.ClientSession, base: str) -> float:
    """Redis round trips a replica has made for requests, from its /metrics (not its
    once-a-second membership beat, which no request makes)."""
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("freebusy_cluster_round_trips_total{")
        and 'purpose="membership"' not in line
    )


async def mixed_run(
    mock: RunningMock, bases: list[str], workload: list[dict[str, Any]]
) -> dict[str, Any]:
    """The mixed workload from 50 clients, spread round robin over ``bases``; Graph's view."""
    mock.graph.reset()
    mock.graph.add_fault(Fault(kind="latency", delay_ms=MOCK_LATENCY_MS, count=None))
    queue = iter(enumerate(workload))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:

        async def client() -> None:
            for n, body in queue:
                await post(session, bases[n % len(bases)], body)

        await asyncio.gather(*(client() for _ in range(50)))
    mock.graph.clear_faults()
    return mock.graph.stats()


def write_cluster_config(config: Path, redis_url: str) -> Path:
    """The benchmark's config with [cluster] set to ``redis_url``, beside it."""
    shared = config.with_name("cluster.toml")
    shared.write_text(config.read_text() + f'\n[cluster]\nredis_url = "{redis_url}"\n')
    return shared


async def cluster(mock: RunningMock, config: Path, requests: int) -> dict[str, Any]:
    """Three replicas sharing one Redis against one process, on the mixed workload: Graph
    calls, breaches, and Redis round trips per cached request (in-process and second-tier
    hits)."""
    workload = mixed_workload(mock.graph.organisation.addresses(), requests)
    port = free_port()
    async with server(proxy_argv(config, port), port, env=PROXY_ENV) as base:
        single = await mixed_run(mock, [base], workload)
    async with redis_server() as url:
        shared = write_cluster_config(config, url)
        ports = [free_port() for _ in range(3)]
        async with (
            server(proxy_argv(shared, ports[0]), ports[0], env=CLUSTER_ENV) as a,
            server(proxy_argv(shared, ports[1]), ports[1], env=CLUSTER_ENV) as b,
            server(proxy_argv(shared, ports[2]), ports[2], env=CLUSTER_ENV) as c,
        ):
            three = await mixed_run(mock, [a, b, c], workload)
            people = mock.graph.organisation.addresses()[-100:]
            day = {"start": "2026-09-07T00:00:00Z", "end": "2026-09-08T00:00:00Z"}
            async with aiohttp.ClientSession() as session:
                for person in people:
                    await post(session, a, {"schedules": [person], **day})
                # In-process hits: A's own days, every body new (no response memo).
                before = await round_trips(session, a)
                for n in range(100):
                    end = f"2026-09-07T12:{n // 60:02d}:{n % 60:02d}Z"
                    await post(session, a, {"schedules": people[:3], "start": day["start"],
                                            "end": end})  # fmt: skip
                local = (await round_trips(session, a) - before) / 100
                # Second-tier hits: the days A fetched, asked of B.
                before = await round_trips(session, b)
                for person in people:
                    await post(session, b, {"schedules": [person], **day})
                tier = (await round_trips(session, b) - before) / len(people)
    return {
        "requests": len(workload),
        "single_calls": single["calls"]["getSchedule"],
        "cluster_calls": three["calls"]["getSchedule"],
        "ratio": three["calls"]["getSchedule"] / max(1, single["calls"]["getSchedule"]),
        "single_schedules": single["schedules_requested"],
        "cluster_schedules": three["schedules_requested"],
        "breaches": sum(three["breaches"].values()),
        "max_concurrent_per_mailbox": three["max_concurrent_per_mailbox"],
        "local_round_trips": local,
        "tier_round_trips": tier,
    }


# --- 7. event-loop lag -----------------------------------------------------------------

FILL_DAYS = 100


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The proxy's /metrics as sample name (with labels) -> value."""
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def lag_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """p99 and worst event-loop lag (ms) observed between two scrapes.

    p99 is the upper bound of the histogram bucket holding it. The worst is the gauge when it
    rose in between (the longest since start happened then), else the upper bound of the
    highest bucket that counted anything in between.
    """
    prefix = "freebusy_event_loop_lag_seconds_bucket{le="
    cumulative = sorted(
        (float(name[len(prefix) + 1 : -2]), after[name] - before.get(name, 0.0))
        for name in after
        if name.startswith(prefix)
    )
    name = "freebusy_event_loop_lag_seconds_count"
    total = after[name] - before.get(name, 0.0)
    p99 = next(bound for bound, counted in cumulative if counted >= 0.99 * total)
    highest = next(bound for bound, counted in cumulative if counted >= total)
    gauge = "freebusy_event_loop_lag_max_seconds"
    worst = after[gauge] if after[gauge] > before.get(gauge, 0.0) else highest
    return {"p99_ms": p99 * 1000, "worst_ms": worst * 1000, "ticks": total}


async def loop_lag(mock: RunningMock, config: Path, seconds: int, rate: int) -> dict[str, Any]:
    """Event-loop lag under the mixed workload once the cache holds its default max_entries
    (50,000 mailbox-days: 500 mailboxes x 100 days), for ``seconds`` (by default long enough
    for the filled days to expire and be purged), at ``rate`` requests a second from 50
    clients, each sending on a schedule of its own: a stall shows as lag, not as a slower
    sender (a closed loop at full speed would measure queueing: one turn of a saturated loop
    serves every connection ready)."""
    addresses = mock.graph.organisation.addresses()
    start = T0.replace(hour=0)
    fill = {"start": format_utc(start), "end": format_utc(start + timedelta(days=FILL_DAYS))}
    workload = mixed_workload(addresses, rate * seconds)
    port = free_port()
    async with (
        server(proxy_argv(config, port), port, env=PROXY_ENV) as base,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session,
    ):
        mock.graph.reset()
        # Half as the days people ask about (the main segment), half as sweeps (probation).
        for i in range(0, len(addresses) // 2, 5):
            await post(session, base, {"schedules": addresses[i : i + 5], **fill})
        for i in range(len(addresses) // 2, len(addresses), 50):
            await post(session, base, {"schedules": addresses[i : i + 50], **fill})
        before = await scrape(session, base)
        entries = before["freebusy_cache_entries"]
        mock.graph.add_fault(Fault(kind="latency", delay_ms=MOCK_LATENCY_MS, count=None))
        began = time.perf_counter()

        async def client(offset: int) -> int:
            late = 0
            for n in range(offset, len(workload), 50):
                # Request n is due at n / rate: the clients' sends interleave evenly.
                wait = began + n / rate - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    late += 1
                await post(session, base, workload[n])
            return late

        late = sum(await asyncio.gather(*(client(i) for i in range(50))))
        elapsed = time.perf_counter() - began
        after = await scrape(session, base)
        mock.graph.clear_faults()
    return {"entries": entries, "requests": len(workload), "seconds": elapsed, "rate": rate,
            "late": late, **lag_between(before, after)}  # fmt: skip


# --- 8. the largest request ---------------------------------------------------------------


async def largest(mock: RunningMock, config: Path) -> dict[str, Any]:
    """One request for 100 addresses x 180 days, uncached, then again cached: the proxy's
    CPU for each, its peak RSS above what it held before, the answer's size, and the
    event loop's worst lag meanwhile."""
    people = mock.graph.organisation.addresses()[:100]
    start = T0.replace(hour=0)
    body = {"schedules": people, "start": format_utc(start),
            "end": format_utc(start + timedelta(days=180))}  # fmt: skip
    port = free_port()
    async with (
        server(proxy_argv(config, port), port, env=PROXY_ENV) as base,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session,
    ):
        pid = PIDS[base]
        await post(session, base, {**body, "schedules": people[:1],
                                   "end": format_utc(start + timedelta(days=1))})  # fmt: skip
        before = await scrape(session, base)
        rss = memory_kb(pid)
        used = cpu_seconds(pid)
        answer = await post(session, base, body)
        cold_cpu = cpu_seconds(pid) - used
        peak = memory_kb(pid)["VmHWM"]
        # Varied by a microsecond: the response memo must not answer it.
        used = cpu_seconds(pid)
        await post(
            session,
            base,
            {**body, "end": format_utc(start + timedelta(days=180) - timedelta(microseconds=1))},
        )
        hit_cpu = cpu_seconds(pid) - used
        after = await scrape(session, base)
    gauge = "freebusy_event_loop_lag_max_seconds"
    return {
        "cold_cpu_s": cold_cpu,
        "hit_cpu_s": hit_cpu,
        "peak_rise_mb": (peak - rss["VmRSS"]) / 1024,
        "answer_mb": len(answer) / 1e6,
        "worst_lag_ms": after[gauge] * 1000 if after[gauge] > before[gauge] else 0.0,
    }


# --- 9. workers -----------------------------------------------------------------------------


async def listening(port: int, sockets: int) -> None:
    """Wait until ``sockets`` sockets listen on ``port`` (processes sharing it by
    SO_REUSEPORT each have their own): one answering says nothing of the others, and a run
    started before they all listen measures fewer processes."""
    for _ in range(200):
        if (found := listening_sockets(port)) >= sockets:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{found} of {sockets} sockets listen on port {port}")


def listening_sockets(port: int) -> int:
    """How many sockets listen on ``port``, from the kernel's tables."""
    suffix, found = f":{port:04X}", 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        with contextlib.suppress(FileNotFoundError):
            for row in table.read_text().splitlines()[1:]:
                fields = row.split()
                found += fields[1].endswith(suffix) and fields[3] == "0A"  # 0A: LISTEN
    return found


async def workers(
    mock: RunningMock, config: Path, directory: Path, duration: int
) -> dict[str, Any]:
    """`serve --workers 2` against two bare processes sharing a port, the cached one-day
    POST repeated (wrk -t2 -c64), alternating; and two floor processes (bench/floor.py)."""
    body = {"schedules": mock.graph.organisation.addresses()[:3],
            "start": "2026-03-16T00:00:00Z", "end": "2026-03-17T00:00:00Z"}  # fmt: skip
    text = json.dumps(body)
    proxy_port, bare_port, floor_port = free_port(), free_port(), free_port()
    rates: dict[str, list[Throughput]] = {"proxy": [], "bare": [], "floor": []}
    argv = [*proxy_argv(config, proxy_port), "--workers", "2"]
    async with server(argv, proxy_port, env=PROXY_ENV) as base:
        async with aiohttp.ClientSession() as session:
            answer = await post(session, base, body)
        (directory / "answer.json").write_bytes(answer)
        (directory / "request.json").write_text(text)
        bare_argv = [sys.executable, str(ROOT / "bench" / "bare.py"), str(bare_port),
                     str(directory / "answer.json"), "--reuse-port"]  # fmt: skip
        floor_argv = [
            sys.executable, str(ROOT / "bench" / "floor.py"), str(floor_port),
            str(directory / "answer.json"), KEY, str(directory / "request.json"),
            str(directory / "floor-audit.jsonl"), "--reuse-port",
        ]  # fmt: skip
        async with (
            server(bare_argv, bare_port) as bare,
            server(bare_argv, bare_port),
            server(floor_argv, floor_port) as floor,
            server(floor_argv, floor_port),
        ):
            for port in (proxy_port, bare_port, floor_port):
                await listening(port, 2)
            for _ in range(2):
                rates["bare"].append(
                    await wrk_run(bare + "/v1/availability", text, duration, directory,
                                  threads=2, connections=64)
                )  # fmt: skip
                rates["floor"].append(
                    await wrk_run(floor + "/v1/availability", text, duration, directory,
                                  threads=2, connections=64)
                )  # fmt: skip
                # Each worker has its own cache: warm both (connections spread over them).
                async with aiohttp.ClientSession() as session:
                    await asyncio.gather(*(post(session, base, body) for _ in range(32)))
                rates["proxy"].append(
                    await wrk_run(base + "/v1/availability", text, duration, directory,
                                  threads=2, connections=64)
                )  # fmt: skip
    proxy, bare_rps, floor = (statistics.mean(run.rps for run in rates[name])
                              for name in ("proxy", "bare", "floor"))  # fmt: skip
    return {"proxy_rps": proxy, "bare_rps": bare_rps, "ratio": proxy / bare_rps,
            "floor_rps": floor, "floor_ratio": floor / bare_rps}  # fmt: skip


# --- report -------------------------------------------------------------------------------


def cluster_rows(six: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """The cluster figure's rows (or why it is missing)."""
    if six is None:
        return [("6. cluster (3 replicas sharing Redis)", "not measured: no redis-server "
                 "(Debian/Ubuntu: apt-get install -y redis-server)", "-", "-")]  # fmt: skip
    return [
        (f"6. cluster: Graph calls, {six['requests']:,} mixed requests, 3 replicas vs 1",
         f"{six['cluster_calls']:,} vs {six['single_calls']:,}; breaches {six['breaches']}"
         f" (max {six['max_concurrent_per_mailbox']} in flight per mailbox)",
         f"{six['ratio']:.2f}x", "<= 1.2x, 0 breaches"),
        ("   schedules asked of Graph (a mailbox in a call), 3 replicas vs 1",
         f"{six['cluster_schedules']:,} vs {six['single_schedules']:,}",
         f"{six['cluster_schedules'] / max(1, six['single_schedules']):.2f}x", "-"),
        ("   Redis round trips per cached request",
         f"in-process hit {six['local_round_trips']:.2f}, "
         f"second-tier hit {six['tier_round_trips']:.2f}",
         f"{six['local_round_trips']:.2f} / {six['tier_round_trips']:.2f}", "0 / 1"),
    ]  # fmt: skip


def machine() -> str:
    """CPU model, cores, OS, Python, aiohttp and wrk versions."""
    model = "unknown CPU"
    with Path("/proc/cpuinfo").open() as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = shutil.which("wrk") or "wrk"
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout  # noqa: S603
    wrk_version = wrk_version.split("[")[0].strip()
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, {wrk_version}"
    )


async def main() -> int:
    """Run the nine measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--requests", type=int, default=5000, help="mixed workload size")
    parser.add_argument("--samples", type=int, default=480, help="cold-path samples (<= 480)")
    parser.add_argument(
        "--lag-seconds", type=int, default=75, help="event-loop figure: seconds of load"
    )
    parser.add_argument(
        "--lag-rate", type=int, default=1000, help="event-loop figure: requests a second"
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--min-fetch-days",
        type=int,
        default=CacheSettings().min_fetch_days,
        help="the proxy's [cache] min_fetch_days (default: the proxy's default)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.requests, args.samples, args.lag_seconds = 2, 500, 100, 10
    if shutil.which("wrk") is None:
        print("bench: wrk is needed (Debian/Ubuntu: apt-get install -y wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="freebusy-bench-") as tmp:
        directory = Path(tmp)
        mock = await start_mock(settings=MockSettings(org_size=ORG_SIZE), cert_dir=directory)
        try:
            config = write_config(mock, directory, args.min_fetch_days)
            print(f"machine: {machine()}", flush=True)
            # Latency first, while this process is fresh; then the rest.
            three = await cold_path(mock, config, args.samples, args.min_fetch_days)
            print("measured 3. cold path", flush=True)
            gc.collect()
            one = await cached_path(mock, config, directory, args.duration)
            print("measured 1. cached path", flush=True)
            five = await slots_path(mock, config, directory, args.duration)
            print("measured 5. slots", flush=True)
            two = await economy(mock, config, args.requests)
            print("measured 2. upstream economy", flush=True)
            seven = await loop_lag(mock, config, args.lag_seconds, args.lag_rate)
            print("measured 7. event-loop lag", flush=True)
            eight = await largest(mock, config)
            print("measured 8. the largest request", flush=True)
            nine = await workers(mock, config, directory, args.duration)
            print("measured 9. --workers 2", flush=True)
            gc.collect()
            four = await memory(mock)
            six = None
            if shutil.which("redis-server") is not None:
                six = await cluster(mock, config, args.requests)
                print("measured 6. cluster", flush=True)
        finally:
            await mock.close()
    breaches = sum(two["breaches"].values())
    rows = [
        ("1. cached path, POST 3 addresses x 1 day, the same body (wrk -t1 -c50)",
         f"proxy {one['same_rps']:,.0f} req/s ({one['same_cpu_us']:.0f} us CPU) vs bare "
         f"aiohttp {one['bare_rps']:,.0f} req/s ({one['bare_cpu_us']:.0f} us)",
         f"{one['same_ratio']:.2f}x", ">= 0.8x"),
        ("   the floor: bare + the duties every request owes, nothing else (bench/floor.py)",
         f"{one['floor_rps']:,.0f} req/s ({one['floor_cpu_us']:.0f} us CPU)",
         f"{one['floor_ratio']:.2f}x", "(reference)"),
        ("   sliding windows, 3 addresses x 1 day, every body new",
         f"proxy {one['slide_1_rps']:,.0f} req/s ({one['slide_1_cpu_us']:.0f} us CPU)",
         f"{one['slide_1_ratio']:.2f}x", ">= 0.7x"),
        ("   sliding windows, 3 addresses x 7 days, every body new",
         f"proxy {one['slide_7_rps']:,.0f} req/s ({one['slide_7_cpu_us']:.0f} us CPU)",
         f"{one['slide_7_ratio']:.2f}x", ">= 0.5x"),
        (f"2. Graph calls, {two['requests']:,} mixed requests, 500 mailboxes, 50 clients",
         f"{two['graph_calls']:,} vs naive {two['naive_calls']:,}; breaches {breaches}"
         f" (max {two['max_concurrent_per_mailbox']} in flight per mailbox)",
         f"{two['factor']:.1f}x fewer", ">= 10x, 0 breaches"),
        (f"3. cold path, added latency ({three['samples']} uncached requests, 1 day)",
         f"proxy p50 {three['proxy_p50_ms']:.2f} / p99 {three['proxy_p99_ms']:.2f} ms; "
         f"mock direct, 1 day: {three['day_p50_ms']:.2f} / {three['day_p99_ms']:.2f} ms",
         f"+{three['added_p50_ms']:.2f} ms p50, +{three['added_p99_ms']:.2f} ms p99",
         "<= 1 ms p50"),
        ("   CPU per cold request (the proxy process, from /proc)",
         f"{three['samples']} uncached 1-day requests, each a {three['reach_days']}-day "
         "Graph call", f"{three['cpu_ms']:.2f} ms", "<= 1.5 ms"),
        (f"   the same, over the {three['reach_days']}-day call the proxy makes on a miss",
         f"mock direct, {three['reach_days']} day{'s' if three['reach_days'] != 1 else ''}: "
         f"{three['reach_p50_ms']:.2f} / {three['reach_p99_ms']:.2f} ms",
         f"+{three['overhead_p50_ms']:.2f} ms p50, +{three['overhead_p99_ms']:.2f} ms p99",
         "-"),
        ("   the floor: a bare pass-through making that call (bench/passthrough.py)",
         f"p50 {three['floor_p50_ms']:.2f} / p99 {three['floor_p99_ms']:.2f} ms",
         f"+{three['floor_overhead_p50_ms']:.2f} ms p50, "
         f"+{three['floor_overhead_p99_ms']:.2f} ms p99", "(reference)"),
        (f"4. memory per cached mailbox-day ({four['entries']:,} entries)",
         f"{four['items_per_entry']:.1f} items per mailbox-day on average",
         f"{four['bytes_per_entry']:,.0f} bytes", "<= 400 B"),
        ("5. /v1/slots vs /v1/availability, 5 addresses x 7 days, warm cache (wrk -t1 -c50)",
         f"slots {five['repeated_slots_rps']:,.0f} req/s vs availability "
         f"{five['repeated_availability_rps']:,.0f} req/s",
         f"{five['repeated_ratio']:.2f}x", ">= 0.8x"),
        ("   the same, every request new (no memo: computed from the cache)",
         f"slots {five['new_slots_rps']:,.0f} req/s vs availability "
         f"{five['new_availability_rps']:,.0f} req/s",
         f"{five['new_ratio']:.2f}x", "-"),
    ]  # fmt: skip
    rows += cluster_rows(six)
    rows += [
        (f"7. event-loop lag, mixed workload at {seven['rate']:,} req/s, "
         f"{seven['entries']:,.0f} cached entries",
         f"{seven['requests']:,} requests in {seven['seconds']:.0f} s ({seven['late']:,} sent "
         f"late); p99 {seven['p99_ms']:.1f} ms (bucket bound), worst {seven['worst_ms']:.1f} ms",
         f"{seven['p99_ms']:.1f} / {seven['worst_ms']:.1f} ms", "p99 <= 10 ms, worst <= 25 ms"),
        ("8. one request, 100 addresses x 180 days, uncached",
         f"answer {eight['answer_mb']:.1f} MB; peak RSS +{eight['peak_rise_mb']:.0f} MB; "
         f"loop held at most {eight['worst_lag_ms']:.0f} ms; cached again: "
         f"{eight['hit_cpu_s']:.2f} s CPU",
         f"{eight['cold_cpu_s']:.2f} s CPU, +{eight['peak_rise_mb']:.0f} MB",
         "<= 0.7 s, <= +30 MB"),
        ("9. serve --workers 2 vs two bare processes (wrk -t2 -c64)",
         f"proxy {nine['proxy_rps']:,.0f} req/s vs bare {nine['bare_rps']:,.0f} req/s",
         f"{nine['ratio']:.2f}x", ">= 0.9x"),
        ("   the floor, two processes sharing the port (bench/floor.py)",
         f"{nine['floor_rps']:,.0f} req/s", f"{nine['floor_ratio']:.2f}x", "(reference)"),
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    header = ("figure", "measured", "result", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
