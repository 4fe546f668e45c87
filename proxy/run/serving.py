"""Serving an app until SIGINT/SIGTERM, with our request-handler settings on every aiohttp.

``web.run_app`` passes request-handler arguments (parser limits, the redacted logger) only
from aiohttp 3.14 on, and an argument aiohttp does not take is dropped silently (it falls
back to defaults with a warning). An AppRunner takes them on every supported version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


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
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        # Port 0 asks the OS for a free port; report the one actually bound.
        bound = runner.addresses[0][1]
        log.info("worker %d serving on http://%s:%d", os.getpid(), host, bound)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
