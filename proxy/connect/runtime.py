"""What the connect routes share at run time: the connections, pending flows, msal transport."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msal
import requests

from proxy.access.rate import TokenBuckets
from proxy.config.schema import Settings
from proxy.connect.backends import open_store
from proxy.connect.flows import PendingFlows
from proxy.connect.msal_apps import build_app
from proxy.connect.registry import Connections
from proxy.core.clock import Clock, WallClock
from proxy.sources.tls import requests_session

# Client addresses whose sign-in starts are counted (the least recent go first).
_CLIENTS_TRACKED = 4096


@dataclass(kw_only=True)
class ConnectRuntime:
    """One per app, opened by open_connect() for the app's lifetime."""

    connections: Connections
    flows: PendingFlows
    session: aiohttp.ClientSession
    http: requests.Session
    starts: TokenBuckets
    """Sign-ins started, per client address."""
    _starter: Any = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def starter(self) -> Any:
        """Return the long-lived confidential msal app that starts auth-code flows."""
        async with self._lock:
            if self._starter is None:
                graph = self.connections.settings.graph
                self._starter = await asyncio.to_thread(build_app, graph, self.http, public=False)
            return self._starter

    async def finisher(self) -> tuple[Any, Any]:
        """Return a fresh confidential msal app and its empty cache, for one callback."""
        cache = msal.SerializableTokenCache()
        graph = self.connections.settings.graph
        app = await asyncio.to_thread(build_app, graph, self.http, public=False, cache=cache)
        return app, cache


@asynccontextmanager
async def open_connect(
    settings: Settings,
    session: aiohttp.ClientSession,
    *,
    clock: Clock,
    wall_clock: WallClock,
) -> AsyncIterator[ConnectRuntime]:
    """Open and migrate the store, load every connection and follow the store's changes.

    Everything is closed when the block ends.
    """
    store = await open_store(settings.connect)
    http = requests_session(settings.graph.ca_file)
    watcher: asyncio.Task[None] | None = None
    try:
        await store.migrate()
        connections = Connections(
            settings=settings,
            store=store,
            session=session,
            http=http,
            clock=clock,
            wall_clock=wall_clock,
        )
        await connections.load()
        watcher = asyncio.create_task(connections.watch(), name="connection-store-watch")
        yield ConnectRuntime(
            connections=connections,
            flows=PendingFlows(timeout_s=settings.connect.flow_timeout_seconds, clock=clock),
            session=session,
            http=http,
            starts=TokenBuckets(clock, max_keys=_CLIENTS_TRACKED),
        )
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await asyncio.to_thread(http.close)
        await store.close()
