"""Choosing the store backend the configuration names: PostgreSQL, or the SQLite file."""

from __future__ import annotations

from proxy.config.schema import ConnectSettings
from proxy.connect.sealing import Sealer
from proxy.connect.store import ConnectionStore


async def open_store(connect: ConnectSettings) -> ConnectionStore:
    """Open the configured store (PostgreSQL when storage_url is set, else SQLite), unmigrated."""
    sealer = Sealer(connect.token_key)
    if connect.storage_url is not None:
        from proxy.connect.postgres_store import PostgresStore

        return await PostgresStore.open(
            connect.storage_url,
            password=connect.database_password,
            sealer=sealer,
            pool_size=connect.storage_pool_size,
        )
    from proxy.connect.sqlite_store import SqliteStore

    return await SqliteStore.open(connect.storage_path, sealer=sealer)
