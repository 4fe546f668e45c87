"""Live connections: their token providers, statuses and Graph sources, backed by the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msal
import requests

from proxy.config.schema import Settings
from proxy.connect.msal_apps import CONSENT_ERRORS, build_app, error_code
from proxy.connect.scopes import REQUESTED_SCOPES, excess_scopes, granted_scopes, token_claims
from proxy.connect.store import ConnectionStore
from proxy.core.clock import WallClock
from proxy.core.connections import Connection, ConnectionStatus
from proxy.core.errors import TokenError
from proxy.core.timefmt import format_utc
from proxy.sources.credentials import PLATFORM_ERRORS, platform_token_error

log = logging.getLogger(__name__)

ConnectionRemoved = Callable[[Connection], Awaitable[None]]
"""Called after a connection is deleted, so caches can forget what it fetched."""


class ConnectionTokens:
    """A TokenProvider for one connection: msal's silent refresh over its own token cache."""

    def __init__(self, registry: Connections, connection_id: str) -> None:
        self._registry = registry
        self._id = connection_id
        self._app: Any = None
        self._cache: Any = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """Return an access token (msal refreshes it when due) or raise TokenError."""
        async with self._lock:
            connection = self._registry.get(self._id)
            if connection is None or connection.status != "connected":
                raise TokenError("needs_consent")
            if self._app is None:
                serialized = await asyncio.to_thread(self._registry.store.token_cache, self._id)
                self._cache = msal.SerializableTokenCache()
                if serialized:
                    self._cache.deserialize(serialized)
            result = await asyncio.to_thread(self._acquire, connection)
            if self._cache.has_state_changed:
                await self._registry.persist(connection, self._cache.serialize())
                self._cache.has_state_changed = False
            if result is None or "access_token" not in result:
                code = "no_token" if result is None else error_code(result)
                if result is None or code in CONSENT_ERRORS:
                    log.warning("connection %s needs consent again (%s)", self._id, code)
                    await self._registry.set_status(connection, "needs_consent")
                    raise TokenError("needs_consent")
                raise TokenError(code)
            access_token = str(result["access_token"])
            granted = granted_scopes(token_claims(access_token))
            excess = excess_scopes(granted)
            if excess:
                log.warning(
                    "connection %s holds more than the Free/Busy permissions: %s",
                    self._id,
                    " ".join(sorted(excess)),
                )
            if excess and self._registry.settings.connect.strict_scopes:
                await self._registry.set_status(
                    connection, "over_privileged", tuple(sorted(granted))
                )
                raise TokenError("over_privileged")
            if tuple(sorted(granted)) != connection.scopes:
                await self._registry.set_status(connection, "connected", tuple(sorted(granted)))
            return access_token

    def _acquire(self, connection: Connection) -> dict[str, Any] | None:
        """Run in a worker thread: msal returns the cached token or refreshes it."""
        try:
            if self._app is None:
                self._app = build_app(
                    self._registry.settings.graph,
                    self._registry.http,
                    public=connection.public_client,
                    cache=self._cache,
                )
            accounts = self._app.get_accounts()
            if not accounts:
                return None
            result: dict[str, Any] | None = self._app.acquire_token_silent_with_error(
                list(REQUESTED_SCOPES), accounts[0]
            )
            return result
        except PLATFORM_ERRORS as exc:
            raise platform_token_error(exc) from None


class Connections:
    """Every delegated connection of this proxy, in memory and in the store."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ConnectionStore,
        session: aiohttp.ClientSession,
        http: requests.Session,
        wall_clock: WallClock,
        on_removed: list[ConnectionRemoved] | None = None,
    ) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        self.store = store
        self.http = http
        self._session = session
        self._connections: dict[str, Connection] = {}
        self._tokens: dict[str, ConnectionTokens] = {}
        # When this process last stored a refreshed token cache, by connection id.
        self._refreshed: dict[str, str] = {}
        self.on_removed: list[ConnectionRemoved] = [] if on_removed is None else on_removed

    async def load(self) -> None:
        """Read every stored connection."""
        for connection in await asyncio.to_thread(self.store.all):
            self._connections[connection.id] = connection

    def all(self) -> list[Connection]:
        """Return every connection, oldest first."""
        return list(self._connections.values())

    def get(self, connection_id: str) -> Connection | None:
        """Return a connection by id."""
        return self._connections.get(connection_id)

    async def add(self, connection: Connection, token_cache: str) -> None:
        """Store a new (or renewed) connection; it replaces one with the same id."""
        await asyncio.to_thread(self.store.save, connection, token_cache)
        self._connections[connection.id] = connection
        self._tokens.pop(connection.id, None)

    async def remove(self, connection_id: str) -> Connection | None:
        """Delete a connection and its tokens, then tell every on_removed hook."""
        connection = self._connections.pop(connection_id, None)
        self._tokens.pop(connection_id, None)
        self._refreshed.pop(connection_id, None)
        deleted = await asyncio.to_thread(self.store.delete, connection_id)
        if connection is None or not deleted:
            return None
        for hook in self.on_removed:
            await hook(connection)
        return connection

    async def set_status(
        self,
        connection: Connection,
        status: ConnectionStatus,
        scopes: tuple[str, ...] | None = None,
    ) -> None:
        """Record a connection's new status (needs_consent, over_privileged, connected, revoked).

        A revoked connection stays revoked: a refresh that was in flight cannot revive it.
        """
        current = self._connections.get(connection.id)
        if current is None or (current.status == "revoked" and status != "revoked"):
            return
        updated = connection.with_status(status, scopes)
        self._connections[connection.id] = updated
        await asyncio.to_thread(self.store.update, updated)

    async def persist(self, connection: Connection, token_cache: str) -> None:
        """Write a connection's refreshed token cache (encrypted by the store).

        A revoked connection's cache may only be emptied, never filled again.
        """
        current = self._connections.get(connection.id)
        if current is None or (current.status == "revoked" and token_cache):
            return
        await asyncio.to_thread(self.store.update, current, token_cache)
        if token_cache:
            now = self.wall_clock.now().replace(microsecond=0)
            self._refreshed[connection.id] = format_utc(now)

    def last_refresh(self, connection_id: str) -> str | None:
        """When this process last stored a refreshed token cache for the connection (RFC 3339)."""
        return self._refreshed.get(connection_id)

    def route(self, address: str) -> Connection | None:
        """Return the connection that covers ``address``: individual first, then enterprise."""
        folded = address.casefold()
        for kind in ("individual", "enterprise"):
            for connection in self._connections.values():
                usable = connection.kind == kind and connection.status == "connected"
                if usable and connection.covers(folded):
                    return connection
        for connection in self._connections.values():
            if connection.covers(folded):
                return connection  # covers it but is unusable: the caller reports why
        return None

    def tokens(self, connection: Connection) -> ConnectionTokens:
        """The token provider acting as this connection (one per connection while it lasts)."""
        tokens = self._tokens.get(connection.id)
        if tokens is None:
            tokens = self._tokens[connection.id] = ConnectionTokens(self, connection.id)
        return tokens

    def summary(self) -> dict[str, Any]:
        """Return counts and the ids of connections that need attention (for /readyz)."""
        by_status: dict[str, list[str]] = {"needs_consent": [], "over_privileged": []}
        for connection in self._connections.values():
            if connection.status == "needs_consent":
                by_status["needs_consent"].append(connection.id)
            # Reported whether refused (strict_scopes) or only flagged.
            if connection.status == "over_privileged" or excess_scopes(
                frozenset(connection.scopes)
            ):
                by_status["over_privileged"].append(connection.id)
        return {
            "connected": sum(c.status == "connected" for c in self._connections.values()),
            **by_status,
        }
