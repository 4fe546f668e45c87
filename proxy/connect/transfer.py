"""Moving connections between stores (SQLite to PostgreSQL, one cluster to another).

The export is a JSON document of the rows with each token cache still sealed (Fernet, under
FREEBUSY_PROXY_TOKEN_KEY): nobody connects again, and no token is ever written in clear.
Import checks that the configured keys open every cache before it writes anything.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from proxy.connect.sealing import Sealer
from proxy.connect.store import ConnectionStore, SealedRow
from proxy.core.connections import Connection, ConnectionStatus, Kind
from proxy.core.errors import ConfigError

FORMAT: Literal["freebusy-proxy-connections"] = "freebusy-proxy-connections"


class ExportedConnection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One row of an export: the connection's fields and its sealed token cache."""

    id: str
    kind: Kind
    account: str
    tenant_id: str
    tenant_name: str
    domains: list[str]
    scopes: list[str]
    status: ConnectionStatus
    public_client: bool
    created: str
    sealed_token_cache: str | None


class Export(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An export file."""

    format: Literal["freebusy-proxy-connections"]
    version: Literal[1]
    connections: list[ExportedConnection]


async def export_connections(store: ConnectionStore) -> bytes:
    """The export document of every connection in ``store`` (token caches sealed)."""
    rows = await store.export()
    document = Export(
        format=FORMAT,
        version=1,
        connections=[
            ExportedConnection(
                id=r.connection.id,
                kind=r.connection.kind,
                account=r.connection.account,
                tenant_id=r.connection.tenant_id,
                tenant_name=r.connection.tenant_name,
                domains=list(r.connection.domains),
                scopes=list(r.connection.scopes),
                status=r.connection.status,
                public_client=r.connection.public_client,
                created=r.connection.created,
                sealed_token_cache=None if r.sealed_cache is None else r.sealed_cache.decode(),
            )
            for r in rows
        ],
    )
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def read_export(raw: bytes, sealer: Sealer) -> list[SealedRow]:
    """The rows of an export document; ConfigError if it is not one, or a key is missing."""
    try:
        document = msgspec.json.decode(raw, type=Export)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"not a freebusy-proxy connections export ({exc})") from None
    rows = [
        SealedRow(
            connection=Connection(
                id=e.id,
                kind=e.kind,
                account=e.account,
                tenant_id=e.tenant_id,
                tenant_name=e.tenant_name,
                domains=tuple(e.domains),
                scopes=tuple(e.scopes),
                status=e.status,
                public_client=e.public_client,
                created=e.created,
            ),
            # Only a connection in use keeps tokens, whatever the file says (a revoked or
            # refused one lost them when it lost its grant).
            sealed_cache=None
            if e.sealed_token_cache is None or e.status != "connected"
            else e.sealed_token_cache.encode(),
        )
        for e in document.connections
    ]
    unreadable = [
        r.connection.id
        for r in rows
        if r.sealed_cache is not None and not sealer.opens(r.sealed_cache)
    ]
    if unreadable:
        raise ConfigError(
            f"{len(unreadable)} connection(s) were sealed with a key that FREEBUSY_PROXY_TOKEN_KEY "
            "does not hold (list the exporting key too, comma-separated): " + ", ".join(unreadable)
        )
    return rows
