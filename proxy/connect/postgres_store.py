"""The shared store: PostgreSQL through asyncpg, for connections every replica sees.

Every change bumps one generation counter and NOTIFYs it on ``freebusy_proxy_connections``
when its transaction commits; each process LISTENs on a connection of its own, and polls the
counter as a backstop (a listener can be cut). A refresh lease is a transaction holding
``pg_advisory_xact_lock`` on the connection's id: released on commit, rollback, or when the
holder's session dies, so a crashed replica cannot leave a connection locked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg

from proxy.connect.migrations import VERSIONS_TABLE, Migration, pending
from proxy.connect.sealing import SealBroken, Sealer
from proxy.connect.store import (
    COLUMNS,
    SealedRow,
    Snapshot,
    Stored,
    connection_from,
    row_values,
)
from proxy.core.connections import Connection, ConnectionStatus
from proxy.core.errors import ConfigError

log = logging.getLogger(__name__)

CHANNEL = "freebusy_proxy_connections"
# Any constant: migrations from several replicas starting at once run one after another.
_MIGRATION_LOCK = 0x46425058_4D494752
_PLACEHOLDERS = ", ".join(f"${n}" for n in range(1, 13))
_BUMP = (
    "WITH bumped AS (UPDATE store_generation SET generation = generation + 1 "  # noqa: S608
    f"RETURNING generation) SELECT pg_notify('{CHANNEL}', generation::text) FROM bumped"
)

MIGRATIONS = (
    Migration(
        version=1,
        summary="connections with encrypted msal token caches, revisions and a change counter",
        steps=(
            """CREATE TABLE connections (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                account TEXT NOT NULL,
                tenant_id TEXT NOT NULL,
                tenant_name TEXT NOT NULL,
                domains TEXT NOT NULL,
                scopes TEXT NOT NULL,
                status TEXT NOT NULL,
                public_client BOOLEAN NOT NULL,
                created TEXT NOT NULL,
                revision BIGINT NOT NULL DEFAULT 1,
                refreshed TEXT,
                token_cache BYTEA,
                UNIQUE (kind, tenant_id, account)
            )""",
            """CREATE TABLE store_generation (
                only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                generation BIGINT NOT NULL
            )""",
            "INSERT INTO store_generation (generation) VALUES (1)",
        ),
    ),
)


def _lock_key(connection_id: str) -> int:
    """The advisory lock's 64-bit key for a connection (signed, as PostgreSQL takes it)."""
    digest = hashlib.blake2b(f"freebusy-proxy:{connection_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _stored(row: Any) -> Stored:
    return Stored(
        connection=connection_from(row), revision=int(row["revision"]), refreshed=row["refreshed"]
    )


class _Lease:
    """A token cache read under the connection's advisory lock, in the lock's transaction."""

    def __init__(
        self,
        store: PostgresStore,
        db: Any,
        connection_id: str,
        revision: int,
        token_cache: str | None,
    ) -> None:
        self._store = store
        self._db = db
        self._id = connection_id
        self._revision = revision
        self._cache = token_cache

    @property
    def token_cache(self) -> str | None:
        """The cache as stored when the lock was taken."""
        return self._cache

    async def write(self, token_cache: str, *, refreshed: str) -> bool:
        """Store the refreshed cache unless the row changed since it was read."""
        status = await self._db.execute(
            "UPDATE connections SET token_cache = $1, refreshed = $4 "
            "WHERE id = $2 AND revision = $3 AND token_cache IS NOT NULL",
            self._store.sealer.seal(token_cache),
            self._id,
            self._revision,
            refreshed,
        )
        written = bool(status == "UPDATE 1")
        if written:
            await self._db.execute(_BUMP)  # every replica's listing shows the refresh
            self._cache = token_cache
        return written


class PostgresStore:
    """Connections in PostgreSQL: a pool for work, one more connection for LISTEN."""

    def __init__(self, pool: Any, *, url: str, password: str | None, sealer: Sealer) -> None:
        self.sealer = sealer
        self._pool = pool
        self._url = url
        self._password = password
        self._listener: Any = None
        self._changed = asyncio.Event()

    @classmethod
    async def open(
        cls, url: str, *, password: str | None, sealer: Sealer, pool_size: int
    ) -> PostgresStore:
        """Connect a pool and a listener; ConfigError (naming no secret) when that fails."""
        try:
            pool = await asyncpg.create_pool(url, password=password, min_size=1, max_size=pool_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(
                f"connect.storage_url: cannot open the PostgreSQL store ({type(exc).__name__})"
            ) from None
        store = cls(pool, url=url, password=password, sealer=sealer)
        await store._listen()
        return store

    async def _listen(self) -> None:
        """(Re)open the LISTEN connection; without it, polling alone finds changes."""
        try:
            listener = await asyncpg.connect(self._url, password=self._password, timeout=10)
            await listener.add_listener(CHANNEL, self._notified)
            listener.add_termination_listener(self._cut)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot LISTEN for connection changes (%s); polling", type(exc).__name__)
            return
        self._listener = listener

    def _notified(self, *_: Any) -> None:
        self._changed.set()

    def _cut(self, *_: Any) -> None:
        # Whatever changed while the listener was away is found by the next poll.
        self._listener = None
        self._changed.set()

    async def close(self) -> None:
        """Close the listener and the pool."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        await self._pool.close()

    # --- schema ------------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply the migrations not applied yet (one replica at a time); return the version."""
        async with self._pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await db.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} "
                "(version INTEGER PRIMARY KEY, summary TEXT NOT NULL)"
            )
            query = f"SELECT version FROM {VERSIONS_TABLE}"  # noqa: S608
            applied = {r["version"] for r in await db.fetch(query)}
            for migration in pending(MIGRATIONS, applied):
                for step in migration.steps:
                    assert isinstance(step, str)
                    await db.execute(step)
                await db.execute(
                    f"INSERT INTO {VERSIONS_TABLE} (version, summary) VALUES ($1, $2)",  # noqa: S608
                    migration.version,
                    migration.summary,
                )
        return MIGRATIONS[-1].version

    # --- reading -----------------------------------------------------------------------------

    async def generation(self) -> int:
        """The change counter."""
        return int(await self._pool.fetchval("SELECT generation FROM store_generation"))

    async def snapshot(self) -> Snapshot:
        """Every connection and the generation, read in one repeatable-read transaction."""
        async with self._pool.acquire() as db, db.transaction(isolation="repeatable_read"):
            generation = await db.fetchval("SELECT generation FROM store_generation")
            rows = await db.fetch(
                f"SELECT {COLUMNS}, revision, refreshed FROM connections "  # noqa: S608
                "ORDER BY created, id"
            )
        return Snapshot(generation=int(generation), connections=tuple(map(_stored, rows)))

    # --- writing -----------------------------------------------------------------------------

    async def save(self, connection: Connection, token_cache: str) -> Stored:
        """Insert a connection, or replace the one of the same kind, tenant and account."""
        c = connection
        sealed = self.sealer.seal(token_cache)
        async with self._pool.acquire() as db, db.transaction():
            # The conflict target keeps the first id: a repeated sign-in is the same connection.
            row = await db.fetchrow(
                f"INSERT INTO connections ({COLUMNS}, revision, token_cache) "  # noqa: S608
                f"VALUES ({_PLACEHOLDERS}) "
                "ON CONFLICT (kind, tenant_id, account) DO UPDATE SET "
                "tenant_name = EXCLUDED.tenant_name, domains = EXCLUDED.domains, "
                "scopes = EXCLUDED.scopes, status = EXCLUDED.status, "
                "public_client = EXCLUDED.public_client, created = EXCLUDED.created, "
                "token_cache = EXCLUDED.token_cache, refreshed = NULL, "
                "revision = connections.revision + 1 "
                "RETURNING id, revision",
                *row_values(c),
                1,
                sealed,
            )
            await db.execute(_BUMP)
        return Stored(connection=replace(c, id=row["id"]), revision=int(row["revision"]))

    async def set_status(
        self, connection_id: str, status: ConnectionStatus, scopes: tuple[str, ...]
    ) -> Stored | None:
        """Record a status (and granted scopes); the tokens go unless it is connected."""
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "UPDATE connections SET status = $1, scopes = $2, "  # noqa: S608
                "revision = CASE WHEN $1 = 'connected' THEN revision ELSE revision + 1 END, "
                "token_cache = CASE WHEN $1 = 'connected' THEN token_cache END "
                "WHERE id = $3 AND CASE $1 WHEN 'connected' THEN status = 'connected' "
                "WHEN 'revoked' THEN TRUE ELSE status <> 'revoked' END "
                f"RETURNING {COLUMNS}, revision, refreshed",
                status,
                json.dumps(scopes),
                connection_id,
            )
            if row is None:
                return None
            await db.execute(_BUMP)
        return _stored(row)

    async def delete(self, connection_id: str) -> bool:
        """Delete a connection and its tokens."""
        async with self._pool.acquire() as db, db.transaction():
            status = await db.execute("DELETE FROM connections WHERE id = $1", connection_id)
            deleted = bool(status == "DELETE 1")
            if deleted:
                await db.execute(_BUMP)
        return deleted

    # --- refresh leases ----------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, connection_id: str) -> AsyncIterator[_Lease]:
        """Hold the connection's advisory lock while its cache is read, refreshed, written."""
        async with self._pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(connection_id))
            row = await db.fetchrow(
                "SELECT revision, token_cache FROM connections WHERE id = $1", connection_id
            )
            sealed = None if row is None else row["token_cache"]
            cache = None if sealed is None else self.sealer.open(bytes(sealed))
            revision = 0 if row is None else int(row["revision"])
            yield _Lease(self, db, connection_id, revision, cache)

    async def wait_for_change(self, interval: float) -> None:
        """Return on a NOTIFY from any replica, or after ``interval`` seconds (the backstop)."""
        if self._listener is None:
            await self._listen()
        try:
            async with asyncio.timeout(interval):
                await self._changed.wait()
        except TimeoutError:
            return
        finally:
            self._changed.clear()

    # --- moving and re-encrypting ------------------------------------------------------------

    async def export(self) -> list[SealedRow]:
        """Every connection with its sealed cache."""
        rows = await self._pool.fetch(
            f"SELECT {COLUMNS}, token_cache FROM connections ORDER BY created, id"  # noqa: S608
        )
        return [
            SealedRow(
                connection=connection_from(r),
                sealed_cache=None if r["token_cache"] is None else bytes(r["token_cache"]),
            )
            for r in rows
        ]

    async def restore(self, rows: list[SealedRow]) -> int:
        """Insert exported rows, replacing any of the same id or of the same kind and account."""
        async with self._pool.acquire() as db, db.transaction():
            for row in rows:
                c = row.connection
                match = "WHERE id = $1 OR (kind = $2 AND tenant_id = $3 AND account = $4)"
                keys = (c.id, c.kind, c.tenant_id, c.account)
                previous = await db.fetchval(
                    f"SELECT max(revision) FROM connections {match}",  # noqa: S608
                    *keys,
                )
                await db.execute(f"DELETE FROM connections {match}", *keys)  # noqa: S608
                await db.execute(
                    f"INSERT INTO connections ({COLUMNS}, revision, token_cache) "  # noqa: S608
                    f"VALUES ({_PLACEHOLDERS})",
                    *row_values(c),
                    (previous or 0) + 1,
                    row.sealed_cache,
                )
            await db.execute(_BUMP)
        return len(rows)

    async def reseal(self) -> tuple[int, int]:
        """Encrypt every token cache again with the first key."""
        done = unreadable = 0
        async with self._pool.acquire() as db, db.transaction():
            rows = await db.fetch(
                "SELECT id, token_cache FROM connections WHERE token_cache IS NOT NULL FOR UPDATE"
            )
            for row in rows:
                try:
                    fresh = self.sealer.reseal(bytes(row["token_cache"]))
                except SealBroken:
                    unreadable += 1
                    continue
                await db.execute(
                    "UPDATE connections SET token_cache = $1 WHERE id = $2", fresh, row["id"]
                )
                done += 1
        return done, unreadable
