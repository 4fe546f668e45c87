"""db migrate, connections export / import / rotate-key: SQLite to PostgreSQL, no re-connecting."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from proxy.config.schema import (
    AUDIT_KEY_ENV,
    CLIENT_SECRET_ENV,
    DATABASE_PASSWORD_ENV,
    TOKEN_KEY_ENV,
    ConnectSettings,
)
from proxy.connect.backends import open_store
from proxy.core.connections import Connection
from proxy.run.cli import main
from tests.support.connect import TOKEN_KEY
from tests.support.proxies import AUDIT_KEY

ADELE = "adele.vance@contoso.example"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """What every command reads from the environment, as serve does."""
    monkeypatch.setenv(CLIENT_SECRET_ENV, "s")
    monkeypatch.setenv(AUDIT_KEY_ENV, AUDIT_KEY)
    monkeypatch.setenv(TOKEN_KEY_ENV, TOKEN_KEY)


def config(tmp_path: Path, name: str, where: str) -> Path:
    """A config file whose [connect] store is ``where`` (a storage_path or storage_url line)."""
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[graph]\ntenant_id = "t"\nclient_id = "c"\n[connect]\nkinds = ["individual"]\n{where}\n'
    )
    return path


def connect_settings(where: dict[str, str | Path], key: str = TOKEN_KEY) -> ConnectSettings:
    """The same store as a config file names, for the test to look inside."""
    return ConnectSettings(kinds=("individual",), token_key=key, **where)  # type: ignore[arg-type]


async def seed(settings: ConnectSettings, token_cache: str) -> str:
    """Store one connection; return its id."""
    store = await open_store(settings)
    try:
        await store.migrate()
        stored = await store.save(
            Connection(
                id=str(uuid.uuid4()),
                kind="individual",
                account=ADELE,
                tenant_id="t",
                tenant_name="Contoso",
                domains=("contoso.example",),
                scopes=("Calendars.ReadBasic", "User.Read"),
                status="connected",
                public_client=False,
                created="2026-01-01T00:00:00Z",
            ),
            token_cache,
        )
        return stored.connection.id
    finally:
        await store.close()


async def cache_of(settings: ConnectSettings, connection_id: str) -> str | None:
    """The decrypted token cache of a connection."""
    store = await open_store(settings)
    try:
        await store.migrate()
        async with store.lease(connection_id) as lease:
            return lease.token_cache
    finally:
        await store.close()


def test_connections_move_from_sqlite_to_postgresql(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """export (sealed, owner-only) then import: the PostgreSQL store serves the same tokens."""
    refresh = "0.M." + secrets.token_urlsafe(40)
    cache = json.dumps({"RefreshToken": {"k": {"secret": refresh}}})
    sqlite = {"storage_path": tmp_path / "c.db"}
    postgres = {"storage_url": postgres_url, "database_password": os.environ[DATABASE_PASSWORD_ENV]}
    connection_id = asyncio.run(seed(connect_settings(sqlite), cache))
    source = config(tmp_path, "old", f'storage_path = "{tmp_path / "c.db"}"')
    target = config(tmp_path, "new", f'storage_url = "{postgres_url}"')
    export = tmp_path / "connections.json"

    assert main(["db", "migrate", "--config", str(target)]) == 0
    assert "schema at version 1" in capsys.readouterr().out
    assert main(["connections", "export", "--config", str(source), "--output", str(export)]) == 0
    assert export.stat().st_mode & 0o077 == 0
    text = export.read_text()
    assert ADELE in text
    assert refresh not in text
    assert "eyJ" not in text
    # Never over an existing file.
    assert main(["connections", "export", "--config", str(source), "--output", str(export)]) == 2

    assert main(["connections", "import", "--config", str(target), str(export)]) == 0
    assert "1 connection(s) imported" in capsys.readouterr().out
    assert asyncio.run(cache_of(connect_settings(postgres), connection_id)) == cache


def test_import_refuses_an_export_it_cannot_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export sealed with a key the target does not hold imports nothing, and says why."""
    asyncio.run(seed(connect_settings({"storage_path": tmp_path / "a.db"}), "{}"))
    source = config(tmp_path, "a", f'storage_path = "{tmp_path / "a.db"}"')
    target = config(tmp_path, "b", f'storage_path = "{tmp_path / "b.db"}"')
    export = tmp_path / "connections.json"
    assert main(["connections", "export", "--config", str(source), "--output", str(export)]) == 0
    monkeypatch.setenv(TOKEN_KEY_ENV, Fernet.generate_key().decode())
    assert main(["connections", "import", "--config", str(target), str(export)]) == 2
    assert "does not hold" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    assert (
        main(["connections", "import", "--config", str(target), str(tmp_path / "junk.json")]) == 2
    )
    assert not (tmp_path / "b.db").exists()


def test_rotate_key_re_encrypts_for_the_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """NEW,OLD in the variable, rotate-key, then NEW alone reads every token cache."""
    where = {"storage_path": tmp_path / "c.db"}
    connection_id = asyncio.run(seed(connect_settings(where), '{"a": 1}'))
    new = Fernet.generate_key().decode()
    monkeypatch.setenv(TOKEN_KEY_ENV, f"{new},{TOKEN_KEY}")
    path = config(tmp_path, "c", f'storage_path = "{tmp_path / "c.db"}"')
    assert main(["connections", "rotate-key", "--config", str(path)]) == 0
    assert "1 token cache(s) re-encrypted" in capsys.readouterr().out
    assert asyncio.run(cache_of(connect_settings(where, new), connection_id)) == '{"a": 1}'
    # With a key that opens nothing, the rows are left alone and the command fails.
    monkeypatch.setenv(TOKEN_KEY_ENV, Fernet.generate_key().decode())
    assert main(["connections", "rotate-key", "--config", str(path)]) == 1
    assert asyncio.run(cache_of(connect_settings(where, new), connection_id)) == '{"a": 1}'


@pytest.mark.parametrize("case", ["a directory", "under a file", "not a database"])
def test_a_store_file_that_cannot_be_opened_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    """A storage_path that is a folder, lies under a file or holds something else: exit 2
    with one line naming the key, as an unreachable PostgreSQL is (never a traceback)."""
    (tmp_path / "notes.txt").write_text("not a database, just text\n" * 100)
    where = {
        "a directory": tmp_path,
        "under a file": tmp_path / "notes.txt" / "c.db",
        "not a database": tmp_path / "notes.txt",
    }[case]
    path = config(tmp_path, "c", f'storage_path = "{where}"')
    assert main(["db", "migrate", "--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("freebusy-proxy: configuration error: connect.storage_path:"), line


def test_export_into_a_missing_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output in a folder that does not exist: exit 2, one line naming the file."""
    path = config(tmp_path, "c", f'storage_path = "{tmp_path / "c.db"}"')
    output = tmp_path / "missing" / "connections.json"
    assert main(["connections", "export", "--config", str(path), "--output", str(output)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith(f"{output}: cannot create (No such file or directory)"), line


def test_an_imported_connection_not_in_use_brings_no_tokens(tmp_path: Path) -> None:
    """A row marked revoked (or refused) in an export file is imported without its tokens."""
    asyncio.run(seed(connect_settings({"storage_path": tmp_path / "a.db"}), '{"cache": 1}'))
    source = config(tmp_path, "a", f'storage_path = "{tmp_path / "a.db"}"')
    target = config(tmp_path, "b", f'storage_path = "{tmp_path / "b.db"}"')
    export = tmp_path / "connections.json"
    assert main(["connections", "export", "--config", str(source), "--output", str(export)]) == 0
    document = json.loads(export.read_text())
    assert document["connections"][0]["sealed_token_cache"]
    document["connections"][0]["status"] = "revoked"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    assert main(["connections", "import", "--config", str(target), str(edited)]) == 0
    connection_id = document["connections"][0]["id"]
    settings = connect_settings({"storage_path": tmp_path / "b.db"})
    assert asyncio.run(cache_of(settings, connection_id)) is None
