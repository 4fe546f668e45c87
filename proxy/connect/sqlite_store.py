"""The embedded store: one SQLite file, shared safely by every process on one host.

Writes take SQLite's write lock (BEGIN IMMEDIATE, waiting up to a busy timeout). A refresh
lease is an flock(2) on one of 256 lock files beside the database, chosen by a hash of the
connection id: it excludes other processes (``--workers``, the CLI) and other leases of this
process alike, and it is never held inside a database transaction, so the slow part of a
refresh (the identity platform) blocks no other reader or writer.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path

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

_BUSY_TIMEOUT_MS = 15_000
_LOCK_BUCKETS = 256
_LOCK_POLL_S = (0.002, 0.05)


def _rekey(db: sqlite3.Connection) -> None:
    """Give every connection a random id: the old ones were derived from tenant and account."""
    for (old,) in db.execute("SELECT id FROM connections").fetchall():
        db.execute("UPDATE connections SET id = ? WHERE id = ?", (str(uuid.uuid4()), old))


MIGRATIONS = (
    Migration(
        version=1,
        summary="connections with encrypted msal token caches",
        steps=(
            """CREATE TABLE IF NOT EXISTS connections (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                account TEXT NOT NULL,
                tenant_id TEXT NOT NULL,
                tenant_name TEXT NOT NULL,
                domains TEXT NOT NULL,
                scopes TEXT NOT NULL,
                status TEXT NOT NULL,
                public_client INTEGER NOT NULL,
                created TEXT NOT NULL,
                token_cache BLOB NOT NULL
            )""",
        ),
    ),
    Migration(
        version=2,
        summary="random ids, one connection per kind and account, revisions, a change counter; "
        "connections that lost their grant keep no tokens",
        steps=(
            """CREATE TABLE connections_next (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                account TEXT NOT NULL,
                tenant_id TEXT NOT NULL,
                tenant_name TEXT NOT NULL,
                domains TEXT NOT NULL,
                scopes TEXT NOT NULL,
                status TEXT NOT NULL,
                public_client INTEGER NOT NULL,
                created TEXT NOT NULL,
                revision INTEGER NOT NULL DEFAULT 1,
                refreshed TEXT,
                token_cache BLOB,
                UNIQUE (kind, tenant_id, account)
            )""",
            f"INSERT INTO connections_next ({COLUMNS}, token_cache) "  # noqa: S608
            f"SELECT {COLUMNS}, CASE WHEN status = 'connected' THEN token_cache END "
            "FROM connections",
            "DROP TABLE connections",
            "ALTER TABLE connections_next RENAME TO connections",
            _rekey,
            """CREATE TABLE store_generation (
                only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
                generation INTEGER NOT NULL
            )""",
            "INSERT INTO store_generation VALUES (1, 1)",
        ),
    ),
)


class _Lease:
    """A token cache read under the connection's lock file; written back only if unchanged."""

    def __init__(
        self, store: SqliteStore, connection_id: str, revision: int, token_cache: str | None
    ) -> None:
        self._store = store
        self._id = connection_id
        self._revision = revision
        self._cache = token_cache

    @property
    def token_cache(self) -> str | None:
        """The cache as stored when the lock was taken."""
        return self._cache

    async def write(self, token_cache: str, *, refreshed: str) -> bool:
        """Store the refreshed cache unless the row changed since it was read."""
        sealed = self._store.sealer.seal(token_cache)
        written = await asyncio.to_thread(
            self._store.write_cache_sync, self._id, self._revision, sealed, refreshed
        )
        if written:
            self._cache = token_cache
        return written


class SqliteStore:
    """Connections in one SQLite file; blocking work runs in threads, off the event loop."""

    def __init__(self, path: Path, sealer: Sealer) -> None:
        self.sealer = sealer
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Readable by this user only, before SQLite writes a byte (the tokens are encrypted,
        # the accounts and domains are not).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._locks = path.with_name(path.name + ".locks")
        self._locks.mkdir(mode=0o700, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Deleted rows are overwritten with zeros, so a removed token cache leaves no bytes.
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")

    @classmethod
    async def open(cls, path: Path, *, sealer: Sealer) -> SqliteStore:
        """Open (and create, owner-only) the database file; ConfigError when it cannot be."""
        try:
            return await asyncio.to_thread(cls, path, sealer)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"connect.storage_path: cannot open {path} ({_reason(exc)})"
            ) from None

    async def close(self) -> None:
        """Close the database."""
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    # --- schema ------------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply the migrations not applied yet (one process at a time); return the version.

        ConfigError when the file is not an SQLite database (the path names another file).
        """
        try:
            return await asyncio.to_thread(self._migrate_sync)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"connect.storage_path: {self._path} is not a connection store ({_reason(exc)})"
            ) from None

    def _migrate_sync(self) -> int:
        with self._transaction() as db:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} "
                "(version INTEGER PRIMARY KEY, summary TEXT NOT NULL)"
            )
            applied = {v for (v,) in db.execute(f"SELECT version FROM {VERSIONS_TABLE}")}  # noqa: S608
            for migration in pending(MIGRATIONS, applied):
                for step in migration.steps:
                    if isinstance(step, str):
                        db.execute(step)
                    else:
                        step(db)
                db.execute(
                    f"INSERT INTO {VERSIONS_TABLE} (version, summary) VALUES (?, ?)",  # noqa: S608
                    (migration.version, migration.summary),
                )
            return MIGRATIONS[-1].version

    # --- reading -----------------------------------------------------------------------------

    async def generation(self) -> int:
        """The change counter."""
        return await asyncio.to_thread(self._generation_sync)

    def _generation_sync(self) -> int:
        with self._lock:
            (value,) = self._db.execute("SELECT generation FROM store_generation").fetchone()
        return int(value)

    async def snapshot(self) -> Snapshot:
        """Every connection and the generation, read in one transaction."""
        return await asyncio.to_thread(self._snapshot_sync)

    def _snapshot_sync(self) -> Snapshot:
        with self._reading() as db:
            (generation,) = db.execute("SELECT generation FROM store_generation").fetchone()
            rows = db.execute(
                f"SELECT {COLUMNS}, revision, refreshed FROM connections "  # noqa: S608
                "ORDER BY created, id"
            ).fetchall()
        return Snapshot(
            generation=int(generation),
            connections=tuple(
                Stored(connection=connection_from(row), revision=int(row[10]), refreshed=row[11])
                for row in rows
            ),
        )

    # --- writing -----------------------------------------------------------------------------

    async def save(self, connection: Connection, token_cache: str) -> Stored:
        """Insert a connection, or replace the one of the same kind, tenant and account."""
        return await asyncio.to_thread(self._save_sync, connection, self.sealer.seal(token_cache))

    def _save_sync(self, connection: Connection, sealed: bytes) -> Stored:
        c = connection
        with self._transaction() as db:
            existing = db.execute(
                "SELECT id, revision FROM connections "
                "WHERE kind = ? AND tenant_id = ? AND account = ?",
                (c.kind, c.tenant_id, c.account),
            ).fetchone()
            if existing is not None:
                stored = Stored(
                    connection=replace(c, id=existing[0]), revision=int(existing[1]) + 1
                )
                db.execute("DELETE FROM connections WHERE id = ?", (existing[0],))
            else:
                stored = Stored(connection=c, revision=1)
            db.execute(
                f"INSERT INTO connections ({COLUMNS}, revision, token_cache) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row_values(stored.connection), stored.revision, sealed),
            )
            _bump(db)
        return stored

    async def set_status(
        self, connection_id: str, status: ConnectionStatus, scopes: tuple[str, ...]
    ) -> Stored | None:
        """Record a status (and granted scopes); the tokens go unless it is connected."""
        return await asyncio.to_thread(self._set_status_sync, connection_id, status, scopes)

    def _set_status_sync(
        self, connection_id: str, status: ConnectionStatus, scopes: tuple[str, ...]
    ) -> Stored | None:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE connections SET status = :status, scopes = :scopes, "
                "revision = CASE WHEN :status = 'connected' THEN revision ELSE revision + 1 END, "
                "token_cache = CASE WHEN :status = 'connected' THEN token_cache END "
                "WHERE id = :id AND CASE :status WHEN 'connected' THEN status = 'connected' "
                "WHEN 'revoked' THEN 1 ELSE status <> 'revoked' END",
                {"status": status, "scopes": json.dumps(scopes), "id": connection_id},
            )
            if changed.rowcount == 0:
                return None
            row = db.execute(
                f"SELECT {COLUMNS}, revision, refreshed FROM connections WHERE id = ?",  # noqa: S608
                (connection_id,),
            ).fetchone()
            _bump(db)
        return Stored(connection=connection_from(row), revision=int(row[10]), refreshed=row[11])

    async def delete(self, connection_id: str) -> bool:
        """Delete a connection and its tokens."""
        return await asyncio.to_thread(self._delete_sync, connection_id)

    def _delete_sync(self, connection_id: str) -> bool:
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM connections WHERE id = ?", (connection_id,))
            if deleted.rowcount > 0:
                _bump(db)
            return deleted.rowcount > 0

    # --- refresh leases ----------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, connection_id: str) -> AsyncIterator[_Lease]:
        """Hold the connection's lock file while its cache is read, refreshed and written."""
        bucket = hashlib.blake2b(connection_id.encode(), digest_size=2).digest()[0]
        fd = os.open(self._locks / f"{bucket % _LOCK_BUCKETS:02x}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await _flock(fd)
            revision, sealed = await asyncio.to_thread(self._read_cache_sync, connection_id)
            cache = None if sealed is None else self.sealer.open(sealed)
            yield _Lease(self, connection_id, revision, cache)
        finally:
            # Closing the only descriptor of the open file releases the flock.
            os.close(fd)

    def _read_cache_sync(self, connection_id: str) -> tuple[int, bytes | None]:
        with self._lock:
            row = self._db.execute(
                "SELECT revision, token_cache FROM connections WHERE id = ?", (connection_id,)
            ).fetchone()
        return (0, None) if row is None else (int(row[0]), row[1])

    def write_cache_sync(
        self, connection_id: str, revision: int, sealed: bytes, refreshed: str
    ) -> bool:
        """Write a refreshed cache if the row still has ``revision`` and tokens (blocking)."""
        with self._transaction() as db:
            written = db.execute(
                "UPDATE connections SET token_cache = ?, refreshed = ? "
                "WHERE id = ? AND revision = ? AND token_cache IS NOT NULL",
                (sealed, refreshed, connection_id, revision),
            )
            if written.rowcount > 0:
                _bump(db)  # every process's listing shows the refresh
            return written.rowcount > 0

    async def wait_for_change(self, interval: float) -> None:
        """SQLite announces nothing: the caller polls the generation after ``interval`` seconds."""
        await asyncio.sleep(interval)

    # --- moving and re-encrypting ------------------------------------------------------------

    async def export(self) -> list[SealedRow]:
        """Every connection with its sealed cache."""
        return await asyncio.to_thread(self._export_sync)

    def _export_sync(self) -> list[SealedRow]:
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {COLUMNS}, token_cache FROM connections ORDER BY created, id"  # noqa: S608
            ).fetchall()
        return [SealedRow(connection=connection_from(r), sealed_cache=r[10]) for r in rows]

    async def restore(self, rows: list[SealedRow]) -> int:
        """Insert exported rows, replacing any of the same id or of the same kind and account."""
        return await asyncio.to_thread(self._restore_sync, rows)

    def _restore_sync(self, rows: list[SealedRow]) -> int:
        with self._transaction() as db:
            for row in rows:
                c = row.connection
                previous = db.execute(
                    "SELECT max(revision) FROM connections WHERE id = ? "
                    "OR (kind = ? AND tenant_id = ? AND account = ?)",
                    (c.id, c.kind, c.tenant_id, c.account),
                ).fetchone()[0]
                db.execute(
                    "DELETE FROM connections WHERE id = ? "
                    "OR (kind = ? AND tenant_id = ? AND account = ?)",
                    (c.id, c.kind, c.tenant_id, c.account),
                )
                db.execute(
                    f"INSERT INTO connections ({COLUMNS}, revision, token_cache) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row_values(c), (previous or 0) + 1, row.sealed_cache),
                )
            _bump(db)
        return len(rows)

    async def reseal(self) -> tuple[int, int]:
        """Encrypt every token cache again with the first key."""
        return await asyncio.to_thread(self._reseal_sync)

    def _reseal_sync(self) -> tuple[int, int]:
        done = unreadable = 0
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, token_cache FROM connections WHERE token_cache IS NOT NULL"
            ).fetchall()
            for connection_id, sealed in rows:
                try:
                    fresh = self.sealer.reseal(sealed)
                except SealBroken:
                    unreadable += 1
                    continue
                db.execute(
                    "UPDATE connections SET token_cache = ? WHERE id = ?", (fresh, connection_id)
                )
                done += 1
        return done, unreadable


def _reason(exc: OSError | sqlite3.Error) -> str:
    """Why a file could not be used, in the system's or SQLite's words (no path repeated)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _bump(db: sqlite3.Connection) -> None:
    """Count a change, so every other process reloads."""
    db.execute("UPDATE store_generation SET generation = generation + 1")


async def _flock(fd: int) -> None:
    """Take an exclusive flock without blocking a thread: try, and back off while it is held."""
    delay, longest = _LOCK_POLL_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        # Another process (or lease) refreshes this connection: a refresh takes one round
        # trip to the identity platform, so a short back-off costs little.
        await asyncio.sleep(delay)
        delay = min(delay * 2, longest)
