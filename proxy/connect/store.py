"""Connections at rest: one async interface, SQLite (embedded default) or PostgreSQL behind it.

Every backend keeps the same rows: a connection's fields, a revision that grows with every
new sign-in or lost grant (a token cache is written back only to the revision it was read
from), and its msal token cache sealed by ``proxy.connect.sealing`` (or nothing, once
the connection lost its grant). A generation counter grows with every change of any row, so
each process can tell cheaply that it must reload; PostgreSQL also announces changes with
NOTIFY. Token refreshes run inside ``lease()``: a lock that holds across processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.core.connections import Connection, ConnectionStatus

COLUMNS = (
    "id, kind, account, tenant_id, tenant_name, domains, scopes, status, public_client, created"
)
"""A connection's own columns, in the order ``row_values`` and ``connection_from`` use."""


def row_values(connection: Connection) -> tuple[Any, ...]:
    """The values of COLUMNS for ``connection`` (lists as JSON text, in every backend)."""
    c = connection
    return (
        c.id,
        c.kind,
        c.account,
        c.tenant_id,
        c.tenant_name,
        json.dumps(c.domains),
        json.dumps(c.scopes),
        c.status,
        bool(c.public_client),
        c.created,
    )


def connection_from(row: Sequence[Any]) -> Connection:
    """The connection in a row whose first columns are COLUMNS."""
    return Connection(
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


@dataclass(frozen=True, kw_only=True)
class Stored:
    """A connection as stored, and its revision: it grows with each sign-in and lost grant."""

    connection: Connection
    revision: int
    refreshed: str | None = None
    """When a process last wrote a refreshed token cache (RFC 3339), or None since sign-in."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Every stored connection, and the generation of the store they were read at."""

    generation: int
    connections: tuple[Stored, ...]


@dataclass(frozen=True, kw_only=True)
class SealedRow:
    """A connection with its token cache still sealed: what export and import move."""

    connection: Connection
    sealed_cache: bytes | None


class Lease(Protocol):
    """A connection's token cache, read after taking its refresh lock; held until released."""

    @property
    def token_cache(self) -> str | None:
        """The cache as stored when the lock was taken; None when the row holds no tokens."""
        ...

    async def write(self, token_cache: str, *, refreshed: str) -> bool:
        """Store a refreshed cache (at ``refreshed``, RFC 3339); False when the connection was
        replaced, lost its grant or was removed meanwhile."""
        ...


class ConnectionStore(Protocol):
    """Where connections live; every method is safe to call from many processes at once."""

    async def migrate(self) -> int:
        """Apply every schema migration not applied yet; return the schema version."""
        ...

    async def generation(self) -> int:
        """The store's change counter: it grows with every change of any connection."""
        ...

    async def snapshot(self) -> Snapshot:
        """Every connection (never a token), oldest first, with the generation read before."""
        ...

    async def save(self, connection: Connection, token_cache: str) -> Stored:
        """Store a fresh sign-in; one of the same kind, tenant and account is replaced, id kept."""
        ...

    async def set_status(
        self, connection_id: str, status: ConnectionStatus, scopes: tuple[str, ...]
    ) -> Stored | None:
        """Record a new status; any but connected deletes the tokens and bumps the revision.

        Connected (the granted scopes changed) keeps the revision: a refresh under way in
        another process may still write its cache back, and must, or the refresh token it
        just redeemed would be the one stored. Connected applies only to a connected row, and
        nothing but revoked to a revoked one; None when refused so, or when there is no row.
        """
        ...

    async def delete(self, connection_id: str) -> bool:
        """Delete a connection and its tokens; False when there was none."""
        ...

    def lease(self, connection_id: str) -> AbstractAsyncContextManager[Lease]:
        """Take the connection's refresh lock (across processes) and read its token cache."""
        ...

    async def wait_for_change(self, interval: float) -> None:
        """Return when another process may have changed a connection, or ``interval`` s later."""
        ...

    async def export(self) -> list[SealedRow]:
        """Every connection with its token cache still sealed, oldest first."""
        ...

    async def restore(self, rows: list[SealedRow]) -> int:
        """Insert exported rows, each replacing one of the same id or account; return count."""
        ...

    async def reseal(self) -> tuple[int, int]:
        """Encrypt every token cache again with the first key: (re-encrypted, unreadable)."""
        ...

    async def close(self) -> None:
        """Release connections, listeners and lock files."""
        ...
