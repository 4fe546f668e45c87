"""The connection store's contract: one suite, run against SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from proxy.config.schema import ConnectSettings
from proxy.connect.backends import open_store
from proxy.connect.sealing import SealBroken
from proxy.connect.store import ConnectionStore
from proxy.core.connections import Connection
from proxy.core.errors import ConfigError
from tests.support.connect import TOKEN_KEY

StoreFactory = Callable[..., Awaitable[ConnectionStore]]

ADELE = "adele.vance@contoso.example"
WHEN = "2026-01-02T03:04:05Z"


def connection(account: str = ADELE, kind: str = "individual", **fields: Any) -> Connection:
    """A connection value as onboarding makes one: a fresh random id."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "account": account,
        "tenant_id": "6f1c3a52-8d4e-4b7a-9c1f-2e5d7a9b0c13",
        "tenant_name": "Contoso",
        "domains": ("contoso.example",),
        "scopes": ("Calendars.ReadBasic", "User.Read"),
        "status": "connected",
        "public_client": False,
        "created": "2026-01-01T00:00:00Z",
        **fields,
    }
    return Connection(**values)


def token_cache() -> tuple[str, str]:
    """An msal-shaped cache with a JWT-looking access token and a refresh token; (cache, rt)."""
    refresh = "0.M." + secrets.token_urlsafe(48)
    access = "eyJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(60) + ".CANARY-" + secrets.token_hex(4)
    cache = {
        "AccessToken": {"k": {"secret": access, "expires_on": "9999999999"}},
        "RefreshToken": {"k": {"secret": refresh}},
    }
    return json.dumps(cache), refresh


@pytest.fixture
async def make_store(storage: dict[str, Any]) -> AsyncIterator[StoreFactory]:
    """Open migrated stores on this test's backend (each like another process); all closed."""
    opened: list[ConnectionStore] = []

    async def make(token_key: str = TOKEN_KEY) -> ConnectionStore:
        store = await open_store(
            ConnectSettings(kinds=("individual",), token_key=token_key, **storage)
        )
        opened.append(store)
        await store.migrate()
        return store

    yield make
    for store in opened:
        await store.close()


async def test_migrations_apply_once_and_report_the_version(make_store: StoreFactory) -> None:
    """Migrating again (another replica starting) changes nothing and names the same version."""
    first = await make_store()
    version = await first.migrate()
    second = await make_store()
    assert await second.migrate() == version
    assert (await second.snapshot()).connections == ()


async def test_saved_connections_are_seen_by_every_store(make_store: StoreFactory) -> None:
    """A connection saved through one store is in every other's snapshot; the generation moves."""
    one, other = await make_store(), await make_store()
    before = await other.generation()
    cache, _ = token_cache()
    stored = await one.save(connection(), cache)
    snapshot = await other.snapshot()
    assert [s.connection for s in snapshot.connections] == [stored.connection]
    assert snapshot.generation > before
    assert await other.generation() == snapshot.generation


async def test_a_repeated_sign_in_replaces_and_keeps_the_id(make_store: StoreFactory) -> None:
    """Same kind and account again: one row, the first id, a new revision and new tokens."""
    store = await make_store()
    first_cache, _ = token_cache()
    first = await store.save(connection(), first_cache)
    again_cache, _ = token_cache()
    again = await store.save(connection(created="2026-02-01T00:00:00Z"), again_cache)
    assert again.connection.id == first.connection.id
    assert again.revision > first.revision
    (only,) = (await store.snapshot()).connections
    assert only == again
    async with store.lease(first.connection.id) as lease:
        assert lease.token_cache == again_cache
    # Another kind for the same account is another connection.
    await store.save(connection(kind="enterprise"), first_cache)
    assert len((await store.snapshot()).connections) == 2


async def test_losing_the_grant_deletes_the_tokens(make_store: StoreFactory) -> None:
    """needs_consent or over_privileged: the row stays with its status, its tokens go."""
    store = await make_store()
    for status in ("needs_consent", "over_privileged"):
        cache, _ = token_cache()
        stored = await store.save(connection(), cache)
        scopes = ("Calendars.Read", "User.Read")
        changed = await store.set_status(stored.connection.id, status, scopes)
        assert changed is not None
        assert (changed.connection.status, changed.connection.scopes) == (status, scopes)
        assert changed.revision > stored.revision
        async with store.lease(stored.connection.id) as lease:
            assert lease.token_cache is None
        assert not [r for r in await store.export() if r.sealed_cache is not None]
    kept_cache, _ = token_cache()
    kept = await store.save(connection(), kept_cache)
    await store.set_status(kept.connection.id, "connected", ("User.Read",))
    async with store.lease(kept.connection.id) as lease:
        assert lease.token_cache == kept_cache
    assert await store.set_status(str(uuid.uuid4()), "needs_consent", ()) is None
    # Revoked stays revoked until the person signs in again; connected needs a connected row.
    revoked = await store.set_status(kept.connection.id, "revoked", ())
    assert revoked is not None
    assert revoked.connection.status == "revoked"
    for later in ("connected", "needs_consent", "over_privileged"):
        assert await store.set_status(kept.connection.id, later, ()) is None  # type: ignore[arg-type]
    again = await store.save(connection(), kept_cache)
    assert (again.connection.id, again.connection.status) == (kept.connection.id, "connected")


async def test_delete_removes_the_connection_everywhere(make_store: StoreFactory) -> None:
    """delete is True once, then False; no store lists it after."""
    one, other = await make_store(), await make_store()
    cache, _ = token_cache()
    stored = await one.save(connection(), cache)
    assert await other.delete(stored.connection.id)
    assert not await one.delete(stored.connection.id)
    assert (await one.snapshot()).connections == ()
    async with one.lease(stored.connection.id) as lease:
        assert lease.token_cache is None


async def test_a_lease_writes_back_only_an_unchanged_row(make_store: StoreFactory) -> None:
    """A refresh that raced a new sign-in does not overwrite the new sign-in's tokens."""
    store, other = await make_store(), await make_store()
    cache, _ = token_cache()
    stored = await store.save(connection(), cache)
    refreshed, _ = token_cache()
    async with store.lease(stored.connection.id) as lease:
        assert lease.token_cache == cache
        # Another process recording new scopes does not void the refresh under way: its
        # refresh token is already spent, so the rotated one must be stored.
        await other.set_status(stored.connection.id, "connected", ("User.Read",))
        assert await lease.write(refreshed, refreshed=WHEN)
    newer, _ = token_cache()
    (seen,) = (await other.snapshot()).connections
    assert seen.refreshed == WHEN  # every process lists when it was last refreshed
    async with store.lease(stored.connection.id) as lease:
        assert lease.token_cache == refreshed
        await other.save(connection(), newer)  # signed in again meanwhile
        assert not await lease.write(cache, refreshed=WHEN)
    async with store.lease(stored.connection.id) as lease:
        assert lease.token_cache == newer


async def test_leases_exclude_each_other_across_stores(make_store: StoreFactory) -> None:
    """Read-modify-write under leases from two stores at once loses no update."""
    stores = [await make_store(), await make_store()]
    stored = await stores[0].save(connection(), json.dumps({"n": 0}))
    rounds = 12

    async def increment(store: ConnectionStore) -> None:
        async with store.lease(stored.connection.id) as lease:
            assert lease.token_cache is not None
            n = json.loads(lease.token_cache)["n"]
            # Give the other lease every chance to read the same value (it must not).
            await store.generation()
            await asyncio.sleep(0)
            assert await lease.write(json.dumps({"n": n + 1}), refreshed=WHEN)

    await asyncio.gather(*(increment(stores[i % 2]) for i in range(rounds)))
    async with stores[1].lease(stored.connection.id) as lease:
        assert json.loads(lease.token_cache or "{}") == {"n": rounds}


async def test_export_and_restore_move_sealed_rows(make_store: StoreFactory) -> None:
    """Rows exported stay sealed; restored elsewhere they replace the same account's row."""
    source = await make_store()
    cache, refresh = token_cache()
    stored = await source.save(connection(), cache)
    await source.save(connection(account="alex.wilber@contoso.example"), token_cache()[0])
    rows = await source.export()
    assert len(rows) == 2
    for row in rows:
        assert row.sealed_cache is not None
        assert refresh.encode() not in row.sealed_cache
    assert await source.delete(stored.connection.id)
    # The target has its own (older) row for the same account: the export wins, its id too.
    await source.save(connection(), token_cache()[0])
    assert await source.restore(rows) == 2
    listed = {s.connection.account: s.connection for s in (await source.snapshot()).connections}
    assert listed[ADELE].id == stored.connection.id
    async with source.lease(stored.connection.id) as lease:
        assert lease.token_cache == cache


async def test_rotating_the_key_re_encrypts_every_row(make_store: StoreFactory) -> None:
    """Old and new key together read everything; after rotate-key the new key alone does."""
    old, new = TOKEN_KEY, Fernet.generate_key().decode()
    cache, _ = token_cache()
    stored = await (await make_store(old)).save(connection(), cache)
    lost = await (await make_store(old)).save(connection(kind="enterprise"), cache)
    await (await make_store(old)).set_status(lost.connection.id, "needs_consent", ())
    during = await make_store(f"{new},{old}")
    async with during.lease(stored.connection.id) as lease:
        assert lease.token_cache == cache
    assert await during.reseal() == (1, 0)
    after = await make_store(new)
    async with after.lease(stored.connection.id) as lease:
        assert lease.token_cache == cache
    stale = await make_store(old)
    with pytest.raises(SealBroken):
        async with stale.lease(stored.connection.id):
            pass
    # A row no key opens is counted, not destroyed.
    assert await (await make_store(Fernet.generate_key().decode())).reseal() == (0, 1)


async def test_changes_wake_or_are_found_by_polling(
    make_store: StoreFactory, storage: dict[str, Any]
) -> None:
    """PostgreSQL wakes a waiting store on another's change (NOTIFY); SQLite polls."""
    watcher, writer = await make_store(), await make_store()
    before = await watcher.generation()
    # Only a notification can end a ten-minute wait within the test's time.
    interval = 600.0 if "storage_url" in storage else 0.2
    waiting = asyncio.ensure_future(watcher.wait_for_change(interval))
    await asyncio.sleep(0)
    await writer.save(connection(), token_cache()[0])
    async with asyncio.timeout(30):
        await waiting
    assert await watcher.generation() > before


async def test_rows_hold_no_token_in_clear(
    make_store: StoreFactory, storage: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """The database's bytes (file or cluster) hold the accounts but no token and no canary."""
    store = await make_store()
    cache, refresh = token_cache()
    access = json.loads(cache)["AccessToken"]["k"]["secret"]
    stored = await store.save(connection(), cache)
    async with store.lease(stored.connection.id) as lease:
        refreshed, refresh_2 = token_cache()
        assert await lease.write(refreshed, refreshed=WHEN)
    raw = await _database_bytes(storage, request)
    assert ADELE.encode() in raw  # the scan reads the real rows
    for secret in (refresh, refresh_2, access, "CANARY-"):
        assert secret.encode() not in raw
    # JWT headers ({"alg": / {"typ": base64url-encoded). A bare "eyJ" turns up by chance in
    # kilobytes of Fernet ciphertext.
    assert b"eyJhbGciOi" not in raw
    assert b"eyJ0eXAiOi" not in raw


async def _database_bytes(storage: dict[str, Any], request: pytest.FixtureRequest) -> bytes:
    """Every byte the backend keeps on disk for this test (SQLite files, or the cluster)."""
    if "storage_path" in storage:
        return await asyncio.to_thread(_tree_bytes, Path(storage["storage_path"]).parent)
    import asyncpg

    server = request.getfixturevalue("postgres_server")
    db = await asyncpg.connect(storage["storage_url"], password=server.password)
    try:
        rows = await db.fetch("SELECT c::text AS row FROM connections c")
        await db.execute("CHECKPOINT")
    finally:
        await db.close()
    text = "\n".join(r["row"] for r in rows).encode()
    data = server.folder / "data"
    return text + await asyncio.to_thread(_tree_bytes, data / "base", data / "pg_wal")


def _tree_bytes(*folders: Path) -> bytes:
    """The contents of every file under ``folders``."""
    return b"".join(p.read_bytes() for f in folders for p in f.rglob("*") if p.is_file())


def test_a_legacy_sqlite_file_is_migrated(tmp_path: Path) -> None:
    """A file of the first release: ids re-issued at random, tokens kept only if connected."""
    db = tmp_path / "old.db"
    fernet = Fernet(TOKEN_KEY.encode())
    legacy = sqlite3.connect(db)
    legacy.execute(
        "CREATE TABLE connections (id TEXT PRIMARY KEY, kind TEXT NOT NULL, account TEXT NOT "
        "NULL, tenant_id TEXT NOT NULL, tenant_name TEXT NOT NULL, domains TEXT NOT NULL, "
        "scopes TEXT NOT NULL, status TEXT NOT NULL, public_client INTEGER NOT NULL, created "
        "TEXT NOT NULL, token_cache BLOB NOT NULL)"
    )
    old_ids = {}
    for account, status in ((ADELE, "connected"), ("alex.wilber@contoso.example", "needs_consent")):
        old_ids[account] = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"freebusy-proxy:individual:t:{account}")
        )
        legacy.execute(
            "INSERT INTO connections VALUES (?, 'individual', ?, 't', 'Contoso', "
            "'[\"contoso.example\"]', '[\"User.Read\"]', ?, 0, '2025-01-01T00:00:00Z', ?)",
            (old_ids[account], account, status, fernet.encrypt(f"cache of {account}".encode())),
        )
    legacy.commit()
    legacy.close()

    async def upgrade() -> dict[str, tuple[str, str | None]]:
        store = await open_store(ConnectSettings(storage_path=db, token_key=TOKEN_KEY))
        try:
            assert await store.migrate() == 2
            seen = {}
            for stored in (await store.snapshot()).connections:
                async with store.lease(stored.connection.id) as lease:
                    seen[stored.connection.account] = (stored.connection.id, lease.token_cache)
            return seen
        finally:
            await store.close()

    seen = asyncio.run(upgrade())
    assert seen[ADELE][1] == f"cache of {ADELE}"
    assert seen["alex.wilber@contoso.example"][1] is None
    for account, (new_id, _) in seen.items():
        assert new_id != old_ids[account]
        assert uuid.UUID(new_id).version == 4
    # A store written by a newer proxy is refused, not downgraded.
    raw = sqlite3.connect(db)
    raw.execute("INSERT INTO freebusy_proxy_schema VALUES (99, 'from the future')")
    raw.commit()
    raw.close()

    async def reopen() -> None:
        store = await open_store(ConnectSettings(storage_path=db, token_key=TOKEN_KEY))
        try:
            await store.migrate()
        finally:
            await store.close()

    with pytest.raises(ConfigError, match="newer than this"):
        asyncio.run(reopen())
