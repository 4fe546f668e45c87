"""Serving an app until SIGINT/SIGTERM, with our request-handler settings on every aiohttp.

``web.run_app`` passes request-handler arguments (parser limits, the redacted logger) only
from aiohttp 3.14 on, and an argument aiohttp does not take is dropped silently (it falls
back to defaults with a warning). An AppRunner takes them on every supported version.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
from typing import Any

from aiohttp import web

from proxy.web.cluster_api import listening
from proxy.web.keys import LOOP_LAG

log = logging.getLogger(__name__)

_HINTS = {
    errno.EADDRINUSE: (
        "address already in use: another program listens there; stop it, or choose another "
        "{option} ({option} 0 picks any free one)"
    ),
    errno.EADDRNOTAVAIL: (
        "address not available: no network interface of this machine has it; use 127.0.0.1, "
        "0.0.0.0 for every interface, or one of this machine's own addresses"
    ),
    errno.EACCES: "permission denied: ports below 1024 need privileges; use {option} 1024 or above",
}


class BindFailure(Exception):
    """The server could not listen where it was asked to; the message is one line."""


def listen_problem(
    exc: OSError, host: str, port: int, *, what: str = "", option: str = "--port"
) -> str:
    """One line saying where listening failed (for ``what``), why, and what to do about it."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if what:
        where += f" ({what})"
    if isinstance(exc, socket.gaierror):
        why = "unknown host: the name does not resolve; use an IP address such as 127.0.0.1"
    else:
        hint = _HINTS.get(exc.errno or 0)
        why = hint.format(option=option) if hint else (exc.strerror or str(exc)).lower()
    return f"freebusy-proxy: cannot listen on {where}: {why}"


async def start_site(
    runner: web.AppRunner, host: str, port: int, *, reuse_port: bool = False
) -> int:
    """Listen on host:port (0: any free port) and return the port bound; BindFailure if not."""
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        raise BindFailure(listen_problem(exc, host, port)) from None
    return int(runner.addresses[0][1])


def serve_until_signalled(
    app: web.Application,
    *,
    host: str,
    port: int,
    runner_kwargs: dict[str, Any],
    reuse_port: bool = False,
) -> None:
    """Serve ``app`` on host:port until SIGINT/SIGTERM, then shut down cleanly."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve(app, host=host, port=port, runner_kwargs=runner_kwargs, reuse_port=reuse_port)
        )


async def _serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    runner_kwargs: dict[str, Any],
    reuse_port: bool,
) -> None:
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    try:
        bound = await start_site(runner, host, port, reuse_port=reuse_port)
        listening(app, host, bound)
        # What start-up made (modules, the app, its settings) lives as long as the process:
        # out of the collector's generations, a full collection walks only what requests
        # made since (see bench/NOTES.md).
        gc.collect()
        gc.freeze()
        lag = app.get(LOOP_LAG)
        if lag is not None:
            lag.restart()
        log.info("worker %d serving on http://%s:%d", os.getpid(), host, bound)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
