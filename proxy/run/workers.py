"""serve --workers N: N processes sharing one listening port through SO_REUSEPORT.

Each worker is a whole proxy with its own Graph session, token cache, availability cache,
throttle and metrics: the kernel spreads connections across them. Graph's per-mailbox limits
are shared out: each worker gets 1/N of graph.mailbox_concurrency and throttle.mailbox_budget
(at least 1 each), so together they stay within what one process would use. With [cluster]
set, the workers share the limits (and the cache and rates) through Redis as replicas do.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType

from proxy.config.load import load_settings
from proxy.config.schema import Settings
from proxy.core.errors import ConfigError
from proxy.observability.logs import configure_logging
from proxy.run.serving import BindFailure, listen_problem, serve_until_signalled
from proxy.web.app import init_app, runner_kwargs

log = logging.getLogger("proxy")
# A worker's exit status when it could not listen (as the CLI's for a refused configuration).
BIND_FAILED = 2


def serve_workers(
    *, config: Path, host: str | None, port: int | None, workers: int, log_level: str
) -> int:
    """Run ``workers`` proxy processes on one port until signalled; 0 on a clean stop."""
    # Fail here, once, on a bad file (judged with the --host it will serve on).
    settings = load_settings(config, environ=os.environ, host=host)
    bound_port = port if port is not None else settings.server.port
    if bound_port == 0:
        raise ConfigError("server.port: --workers needs a fixed port (0 would differ per worker)")
    host = host or settings.server.host
    # Refused here, once, rather than by every worker (and then reported as a crash).
    asyncio.run(_can_listen(host, bound_port))
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker,
            args=(config, host, bound_port, log_level, workers),
            name=f"freebusy-proxy-worker-{n}",
        )
        for n in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    refused = False
    try:
        for process in processes:
            process.start()
        log.info("started %d workers on port %d", workers, bound_port)
        multiprocessing.connection.wait([p.sentinel for p in processes])
        refused = any(p.exitcode == BIND_FAILED for p in processes)
        if not stopping:
            # A worker died on its own: take the rest down rather than run short-handed.
            if not refused:  # a bind failure was already said in one line
                log.error("a worker exited unexpectedly; stopping the others")
            stop(signal.SIGTERM, None)
        for process in processes:
            process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if refused:
        return BIND_FAILED
    clean = stopping and all(p.exitcode == 0 for p in processes)
    return 0 if clean else 1


async def _can_listen(host: str, port: int) -> None:
    """Bind host:port as a worker would (without listening); BindFailure if that fails."""
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            asyncio.Protocol, host, port, reuse_port=True, start_serving=False
        )
    except OSError as exc:
        raise BindFailure(listen_problem(exc, host, port)) from None
    server.close()
    await server.wait_closed()


def share_limits(settings: Settings, workers: int) -> Settings:
    """Settings for one of ``workers`` processes: Graph's per-mailbox limits split between them."""
    graph = replace(
        settings.graph, mailbox_concurrency=max(1, settings.graph.mailbox_concurrency // workers)
    )
    throttle = replace(
        settings.throttle, mailbox_budget=max(1, settings.throttle.mailbox_budget // workers)
    )
    return replace(settings, graph=graph, throttle=throttle)


def worker_settings(settings: Settings, workers: int) -> Settings:
    """A worker's settings: shared through Redis with [cluster], else split 1/N (share_limits)."""
    if settings.cluster.redis_url is not None:
        return settings
    return share_limits(settings, workers)


def _worker(config: Path, host: str, port: int, log_level: str, workers: int) -> None:
    """One worker process: load the config and serve on the shared port."""
    settings = load_settings(config, environ=os.environ, host=host)
    configure_logging(log_level, secrets=settings.secrets())
    app = init_app(worker_settings(settings, workers))
    try:
        serve_until_signalled(
            app,
            host=host,
            port=port,
            runner_kwargs=runner_kwargs(settings.server),
            reuse_port=True,
        )
    except BindFailure as failure:
        print(failure, file=sys.stderr, flush=True)
        raise SystemExit(BIND_FAILED) from None
