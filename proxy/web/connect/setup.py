"""Wiring of delegated connections into the app: store, registry, router, routes, readiness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from proxy.config.schema import Settings
from proxy.connect.flows import PendingFlows
from proxy.connect.registry import Connections
from proxy.connect.runtime import ConnectRuntime
from proxy.connect.store import ConnectionStore, fernet_from_key
from proxy.sources.readiness import Readiness
from proxy.sources.router import RoutingScheduleSource
from proxy.sources.tls import requests_session
from proxy.web.connect.views import setup_connect_routes
from proxy.web.envelope import Envelope
from proxy.web.keys import (
    CONNECT,
    CONNECTION_REMOVED,
    GATE,
    GRAPH_SESSION,
    READINESS,
    SETTINGS,
    SOURCE,
    TOKENS,
)


def check_connect_config(settings: Settings) -> None:
    """Refuse to start delegated connections without a valid token key (raises ConfigError)."""
    fernet_from_key(settings.connect.token_key)


def install_connect_routes(app: web.Application, envelope: Envelope) -> None:
    """Add the /connect and /admin routes and the (empty) connection-removed hook list."""
    app[CONNECTION_REMOVED] = []
    setup_connect_routes(app, envelope)


async def connect_context(app: web.Application) -> AsyncIterator[None]:
    """Open the store, load connections and put the router in front of Graph."""
    settings = app[SETTINGS]
    store = await asyncio.to_thread(
        ConnectionStore, settings.connect.storage_path, fernet_from_key(settings.connect.token_key)
    )
    http = requests_session(settings.graph.ca_file)
    connections = Connections(
        settings=settings,
        store=store,
        session=app[GRAPH_SESSION],
        http=http,
        on_removed=app[CONNECTION_REMOVED],
        gate=app[GATE],
    )
    try:
        await connections.load()
        app[CONNECT] = ConnectRuntime(
            connections=connections,
            flows=PendingFlows(timeout_s=settings.connect.flow_timeout_seconds),
            session=app[GRAPH_SESSION],
            http=http,
        )
        application = app[SOURCE] if settings.connect.application_permissions else None
        app[SOURCE] = RoutingScheduleSource(connections=connections, application=application)
        app[READINESS] = Readiness(
            tokens=app[TOKENS] if settings.connect.application_permissions else None,
            session=app[GRAPH_SESSION],
            base_url=settings.graph.base_url,
            details=lambda: {"connections": connections.summary()},
        )
        yield
    finally:
        await asyncio.to_thread(http.close)
        await asyncio.to_thread(store.close)
