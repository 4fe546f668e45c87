"""What the connect routes share at run time: the connections, pending flows, msal transport."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msal
import requests

from proxy.connect.flows import PendingFlows
from proxy.connect.msal_apps import build_app
from proxy.connect.registry import Connections


@dataclass(kw_only=True)
class ConnectRuntime:
    """One per app, built in a cleanup context."""

    connections: Connections
    flows: PendingFlows
    session: aiohttp.ClientSession
    http: requests.Session
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
