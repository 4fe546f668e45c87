"""Live connections: their token providers, statuses and Graph sources, backed by the store.

Every process keeps the connections in memory and follows the store: a change made anywhere
(another replica, another worker, the CLI) bumps the store's generation, and ``watch()``
reloads when it moves. Access tokens are refreshed under the store's lease, a lock across
processes: reload the sealed msal cache, let msal refresh, write it back. Two processes can
then never redeem the same refresh token, which single-use refresh tokens would punish with
``invalid_grant``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import msal
import requests

from proxy.config.schema import Settings
from proxy.connect.msal_apps import CONSENT_ERRORS, build_app, error_code
from proxy.connect.scopes import REQUESTED_SCOPES, excess_scopes, granted_scopes, token_claims
from proxy.connect.sealing import SealBroken
from proxy.connect.store import ConnectionStore, Snapshot, Stored
from proxy.core.clock import Clock, WallClock
from proxy.core.connections import Connection, ConnectionStatus
from proxy.core.errors import TokenError
from proxy.core.timefmt import format_utc
from proxy.sources.credentials import PLATFORM_ERRORS, platform_token_error

log = logging.getLogger(__name__)

ConnectionRemoved = Callable[[Connection], Awaitable[None]]
"""Called after a connection is deleted, or found no longer connected in a change made by
another process, so caches can forget what it fetched."""

# msal treats an access token with less than five minutes left as expired and refreshes it.
_MSAL_EXPIRY_MARGIN_S = 300.0


class ConnectionTokens:
    """A TokenProvider for one connection: msal's silent refresh under the store's lease.

    An access token msal would still hand out is kept in memory and returned without a lock;
    only when it is due does one caller per process take the lease, which serialises the
    refresh with every other process.
    """

    def __init__(self, registry: Connections, connection_id: str) -> None:
        self._registry = registry
        self._id = connection_id
        self._app: Any = None
        self._cache = msal.SerializableTokenCache()
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._good_until = float("-inf")

    async def token(self) -> str:
        """Return an access token (refreshed when due) or raise TokenError."""
        connection = self._usable()
        if self._token is not None and self._registry.clock() < self._good_until:
            return self._token
        async with self._lock:
            connection = self._usable()
            if self._token is not None and self._registry.clock() < self._good_until:
                return self._token
            result = await self._acquire_under_lease(connection)
            if "access_token" not in result:
                code = error_code(result)
                if code == "no_token" or code in CONSENT_ERRORS:
                    log.warning("connection %s needs consent again (%s)", self._id, code)
                    await self._registry.set_status(connection, "needs_consent")
                    raise TokenError("needs_consent")
                raise TokenError(code)
            access_token = str(result["access_token"])
            granted = tuple(sorted(granted_scopes(token_claims(access_token))))
            excess = excess_scopes(frozenset(granted))
            if excess:
                log.warning(
                    "connection %s holds more than the Free/Busy permissions: %s",
                    self._id,
                    " ".join(sorted(excess)),
                )
            if excess and self._registry.settings.connect.strict_scopes:
                await self._registry.set_status(connection, "over_privileged", granted)
                raise TokenError("over_privileged")
            if granted != connection.scopes:
                await self._registry.set_status(connection, "connected", granted)
            expires_in = float(result.get("expires_in") or 0)
            self._token = access_token
            self._good_until = self._registry.clock() + expires_in - _MSAL_EXPIRY_MARGIN_S
            return access_token

    def _usable(self) -> Connection:
        connection = self._registry.get(self._id)
        if connection is None or connection.status != "connected":
            self._token = None
            raise TokenError("needs_consent")
        return connection

    async def _acquire_under_lease(self, connection: Connection) -> dict[str, Any]:
        """Reload the stored cache, let msal answer from it or refresh, store what changed.

        Status changes wait until the lease is released: in PostgreSQL the lease's transaction
        holds the row, and a second transaction on it would wait for the first.
        """
        try:
            async with self._registry.store.lease(self._id) as lease:
                if lease.token_cache is None:
                    # Removed, or lost its grant, in another process: follow the store.
                    self._registry.stale()
                    raise TokenError("needs_consent")
                self._cache.deserialize(lease.token_cache)
                result = await asyncio.to_thread(self._acquire, connection)
                if self._cache.has_state_changed:
                    when = format_utc(self._registry.wall_clock.now().replace(microsecond=0))
                    if not await lease.write(self._cache.serialize(), refreshed=when):
                        self._registry.stale()
                        raise TokenError("needs_consent")
                    self._cache.has_state_changed = False
                    self._registry.note_refreshed(self._id, when)
                return result
        except SealBroken:
            # Not the person's fault: the operator's key changed. The tokens stay untouched.
            log.error("connection %s: no key in the token key variable opens its tokens", self._id)
            raise TokenError("token_key_mismatch") from None

    def _acquire(self, connection: Connection) -> dict[str, Any]:
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
                return {"error": "no_token"}
            result: dict[str, Any] | None = self._app.acquire_token_silent_with_error(
                list(REQUESTED_SCOPES), accounts[0]
            )
            return {"error": "no_token"} if result is None else result
        except PLATFORM_ERRORS as exc:
            raise platform_token_error(exc) from None


class Connections:
    """Every delegated connection, in memory, following the store."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ConnectionStore,
        session: aiohttp.ClientSession,
        http: requests.Session,
        clock: Clock,
        wall_clock: WallClock,
        on_removed: list[ConnectionRemoved] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.wall_clock = wall_clock
        self.store = store
        self.http = http
        self._session = session
        self._connections: dict[str, Stored] = {}
        self._ordered: list[Connection] | None = None
        self._tokens: dict[str, ConnectionTokens] = {}
        self._generation: int | None = None
        self._sync_lock = asyncio.Lock()
        self._stale = asyncio.Event()
        self.on_removed: list[ConnectionRemoved] = [] if on_removed is None else on_removed

    async def load(self) -> None:
        """Read every stored connection."""
        await self.sync()

    async def sync(self) -> None:
        """Reload when the store changed since the last look; tell on_removed what went or
        stopped being connected (revoked on another replica: its cached days go here too)."""
        async with self._sync_lock:
            generation = await self.store.generation()
            if generation == self._generation:
                return
            removed = self._apply(await self.store.snapshot())
        for connection in removed:
            for hook in self.on_removed:
                await hook(connection)

    def _apply(self, snapshot: Snapshot) -> list[Connection]:
        """Take a snapshot; drop the token providers of rows that changed; return what went,
        and what was connected and is no longer."""
        fresh = {stored.connection.id: stored for stored in snapshot.connections}
        removed = [
            s.connection
            for i, s in self._connections.items()
            if i not in fresh
            or (s.connection.status == "connected" and fresh[i].connection.status != "connected")
        ]
        for connection_id, stored in self._connections.items():
            now = fresh.get(connection_id)
            if now is None or now.revision != stored.revision:
                self._tokens.pop(connection_id, None)
        self._connections = fresh
        self._ordered = None
        self._generation = snapshot.generation
        return removed

    def stale(self) -> None:
        """Ask the watcher for a reload now (a lease found the store ahead of memory)."""
        self._stale.set()

    async def watch(self) -> None:
        """Follow the store until cancelled: on each change notice, or every poll interval."""
        interval = self.settings.connect.changes_poll_seconds
        while True:
            wait_store = asyncio.ensure_future(self.store.wait_for_change(interval))
            wait_stale = asyncio.ensure_future(self._stale.wait())
            try:
                await asyncio.wait({wait_store, wait_stale}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wait_store.cancel()
                wait_stale.cancel()
            self._stale.clear()
            try:
                await self.sync()
            except Exception as exc:
                # A store that is briefly away must not end the watch; the next round retries.
                log.warning("cannot read the connection store (%s)", type(exc).__name__)

    def all(self) -> list[Connection]:
        """Return every connection, oldest first (ties by id): the same order in every process."""
        if self._ordered is None:
            connections = [stored.connection for stored in self._connections.values()]
            self._ordered = sorted(connections, key=lambda c: (c.created, c.id))
        return list(self._ordered)

    def get(self, connection_id: str) -> Connection | None:
        """Return a connection by id."""
        stored = self._connections.get(connection_id)
        return None if stored is None else stored.connection

    async def add(self, connection: Connection, token_cache: str) -> Connection:
        """Store a fresh sign-in; it replaces one of the same kind and account (keeping its id)."""
        async with self._sync_lock:
            stored = await self.store.save(connection, token_cache)
            self._remember(stored)
        return stored.connection

    async def remove(self, connection_id: str) -> Connection | None:
        """Delete a connection and its tokens, then tell every on_removed hook."""
        if connection_id not in self._connections:
            await self.sync()  # made elsewhere a moment ago?
        async with self._sync_lock:
            stored = self._connections.pop(connection_id, None)
            self._ordered = None
            self._tokens.pop(connection_id, None)
            deleted = await self.store.delete(connection_id)
        if stored is None or not deleted:
            return None
        for hook in self.on_removed:
            await hook(stored.connection)
        return stored.connection

    async def set_status(
        self,
        connection: Connection,
        status: ConnectionStatus,
        scopes: tuple[str, ...] | None = None,
    ) -> None:
        """Record a connection's new status; any but connected deletes its tokens at once.

        A revoked connection stays revoked (the store holds to that across processes too): a
        refresh that was in flight cannot revive it.
        """
        async with self._sync_lock:
            current = self._connections.get(connection.id)
            if current is None or (current.connection.status == "revoked" and status != "revoked"):
                return
            chosen = connection.scopes if scopes is None else scopes
            stored = await self.store.set_status(connection.id, status, chosen)
            if stored is None:
                # Gone, or revoked, in another process: follow the store.
                self.stale()
                return
            tokens = self._tokens.get(connection.id)
            self._remember(stored)
            if tokens is not None and status == "connected":
                # Only the recorded scopes changed (same revision): the provider stays.
                self._tokens[connection.id] = tokens

    def note_refreshed(self, connection_id: str, when: str) -> None:
        """Record that this process just stored a refreshed cache (the store has it too)."""
        stored = self._connections.get(connection_id)
        if stored is not None:
            self._connections[connection_id] = replace(stored, refreshed=when)

    def last_refresh(self, connection_id: str) -> str | None:
        """When any process last stored a refreshed token cache for the connection (RFC 3339)."""
        stored = self._connections.get(connection_id)
        return None if stored is None else stored.refreshed

    def _remember(self, stored: Stored) -> None:
        """Take a row this process just wrote; its old token provider goes."""
        self._connections[stored.connection.id] = stored
        self._ordered = None
        self._tokens.pop(stored.connection.id, None)

    def route(self, address: str) -> Connection | None:
        """Return the connection that covers ``address``: individual first, then enterprise."""
        folded = address.casefold()
        connections = self._ordered if self._ordered is not None else self.all()
        for kind in ("individual", "enterprise"):
            for connection in connections:
                usable = connection.kind == kind and connection.status == "connected"
                if usable and connection.covers(folded):
                    return connection
        for connection in connections:
            if connection.covers(folded):
                return connection  # covers it but is unusable: the caller reports why
        return None

    def tokens(self, connection: Connection) -> ConnectionTokens:
        """The token provider acting as this connection (one per connection while it lasts)."""
        tokens = self._tokens.get(connection.id)
        if tokens is None:
            tokens = self._tokens[connection.id] = ConnectionTokens(self, connection.id)
        return tokens
