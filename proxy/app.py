"""The app factory: wires settings, resources and routes; does no I/O itself."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from proxy.connect.setup import check_connect_config, connect_context, install_connect_routes
from proxy.consumers import ConsumerRegistry
from proxy.errors import ConfigError
from proxy.feeds import FeedRegistry
from proxy.graph import GraphScheduleSource, RetryPolicy
from proxy.limits import KeyedLimiter
from proxy.problems import problem_middleware
from proxy.readiness import Readiness
from proxy.routes import setup_routes
from proxy.settings import CLIENT_SECRET_ENV, Settings
from proxy.tls import client_ssl_context
from proxy.tokens import MsalAppTokens
from proxy.typedefs import CONSUMERS, FEEDS, GRAPH_SESSION, READINESS, SETTINGS, SOURCE, TOKENS

SERVER_HEADER = "freebusy-proxy"


def init_app(settings: Settings) -> web.Application:
    """Build the proxy application from validated settings."""
    if settings.graph.client_secret is None:
        raise ConfigError(f"set {CLIENT_SECRET_ENV} to the app registration's client secret")
    app = web.Application(
        middlewares=[problem_middleware], client_max_size=settings.server.client_max_size
    )
    app[SETTINGS] = settings
    app[CONSUMERS] = ConsumerRegistry(settings.consumers)
    app[FEEDS] = FeedRegistry(settings.feeds, app[CONSUMERS])
    app.cleanup_ctx.append(_graph_session)
    app.cleanup_ctx.append(_tokens)
    app.cleanup_ctx.append(_schedule_source)
    if settings.connect.kinds:
        check_connect_config(settings)
        app.cleanup_ctx.append(connect_context)
        install_connect_routes(app)
    app.on_response_prepare.append(_server_header)
    setup_routes(app)
    return app


async def _graph_session(app: web.Application) -> AsyncIterator[None]:
    """One ClientSession for all Graph traffic, closed on shutdown."""
    graph = app[SETTINGS].graph
    connector = aiohttp.TCPConnector(
        ssl=client_ssl_context(graph.ca_file), limit=100, limit_per_host=100
    )
    timeout = aiohttp.ClientTimeout(total=graph.timeout_seconds, connect=5)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, raise_for_status=False
    ) as session:
        app[GRAPH_SESSION] = session
        yield


async def _tokens(app: web.Application) -> AsyncIterator[None]:
    """The msal-backed token provider (client credentials)."""
    graph = app[SETTINGS].graph
    assert graph.client_secret is not None
    tokens = MsalAppTokens(
        authority=graph.authority,
        tenant_id=graph.tenant_id,
        client_id=graph.client_id,
        client_secret=graph.client_secret,
        ca_file=graph.ca_file,
        timeout_seconds=graph.timeout_seconds,
    )
    app[TOKENS] = tokens
    yield
    await tokens.close()


async def _schedule_source(app: web.Application) -> AsyncIterator[None]:
    """Where availability comes from, and the readiness probe that watches it."""
    graph = app[SETTINGS].graph
    app[SOURCE] = GraphScheduleSource(
        session=app[GRAPH_SESSION],
        tokens=app[TOKENS],
        base_url=graph.base_url,
        retry=RetryPolicy(max_retries=graph.max_retries, deadline_s=graph.timeout_seconds),
        mailbox_limiter=KeyedLimiter(graph.mailbox_concurrency),
    )
    app[READINESS] = Readiness(
        tokens=app[TOKENS], session=app[GRAPH_SESSION], base_url=graph.base_url
    )
    yield


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # No framework or Python version in the banner: it only helps an attacker.
    response.headers["Server"] = SERVER_HEADER


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without query string, status, duration.

    Query strings carry addresses and keys could appear in headers, so neither is logged.
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the access line."""
        self.logger.info(
            "%s %s %d %.1fms", request.method, request.path, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        """Log only when INFO is on."""
        return self.logger.isEnabledFor(logging.INFO)


def run_kwargs() -> dict[str, Any]:
    """Keyword arguments for web.run_app / AppRunner that every entry point shares."""
    return {"access_log_class": AccessLogger}
