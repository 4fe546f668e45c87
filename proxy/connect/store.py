"""Connections at rest: SQLite, with each msal token cache encrypted (Fernet, key from env)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from proxy.config.schema import TOKEN_KEY_ENV
from proxy.core.connections import Connection
from proxy.core.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS connections (
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
)
"""
_COLUMNS = (
    "id, kind, account, tenant_id, tenant_name, domains, scopes, status, public_client, created"
)


def fernet_from_key(key: str | None) -> Fernet:
    """Return the cipher for a FREEBUSY_PROXY_TOKEN_KEY value, or raise ConfigError."""
    if not key:
        raise ConfigError(
            f"set {TOKEN_KEY_ENV} (make one with `freebusy-proxy new-token-key`): delegated "
            "connections store their tokens encrypted with it"
        )
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):
        raise ConfigError(f"{TOKEN_KEY_ENV}: not a valid key (32 url-safe base64 bytes)") from None


class ConnectionStore:
    """Blocking SQLite access; call its methods off the event loop (asyncio.to_thread)."""

    def __init__(self, path: Path, cipher: Fernet) -> None:
        self._path = path
        self._cipher = cipher
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Readable by this user only, before SQLite writes a byte (the tokens are encrypted,
        # the accounts and domains are not).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Deleted rows are overwritten with zeros, so a removed connection leaves no bytes.
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
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

    def save(self, connection: Connection, token_cache: str) -> None:
        """Insert or replace ``connection`` with its serialized msal cache (encrypted here)."""
        sealed = self._cipher.encrypt(token_cache.encode())
        c = connection
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO connections ({_COLUMNS}, token_cache) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.id,
                    c.kind,
                    c.account,
                    c.tenant_id,
                    c.tenant_name,
                    json.dumps(c.domains),
                    json.dumps(c.scopes),
                    c.status,
                    int(c.public_client),
                    c.created,
                    sealed,
                ),
            )

    def update(self, connection: Connection, token_cache: str | None = None) -> None:
        """Update status and scopes (and the cache, when given) of a stored connection."""
        with self._transaction() as db:
            db.execute(
                "UPDATE connections SET status = ?, scopes = ? WHERE id = ?",
                (connection.status, json.dumps(connection.scopes), connection.id),
            )
            if token_cache is not None:
                db.execute(
                    "UPDATE connections SET token_cache = ? WHERE id = ?",
                    (self._cipher.encrypt(token_cache.encode()), connection.id),
                )

    def token_cache(self, connection_id: str) -> str | None:
        """Return the decrypted msal cache of a connection, or None (unknown, or wrong key)."""
        with self._lock:
            row = self._db.execute(
                "SELECT token_cache FROM connections WHERE id = ?", (connection_id,)
            ).fetchone()
        if row is None:
            return None
        try:
            return self._cipher.decrypt(row[0]).decode()
        except InvalidToken:
            return None

    def delete(self, connection_id: str) -> bool:
        """Delete a connection and its tokens; return False when there was none."""
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM connections WHERE id = ?", (connection_id,))
            return deleted.rowcount > 0

    def all(self) -> list[Connection]:
        """Return every stored connection, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM connections ORDER BY created, id"  # noqa: S608
            ).fetchall()
        return [
            Connection(
                id=row[0],
                kind=row[1],
                account=row[2],
                tenant_id=row[3],
                tenant_name=row[4],
                domains=tuple(json.loads(row[5])),
                scopes=tuple(json.loads(row[6])),
                status=row[7],
                public_client=bool(row[8]),
                created=row[9],
            )
            for row in rows
        ]
