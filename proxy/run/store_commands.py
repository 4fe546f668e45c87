"""Commands on the connection store: db migrate; connections export, import, rotate-key."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from proxy.config.load import load_settings
from proxy.config.schema import CONFIG_ENV, Settings
from proxy.connect.backends import open_store
from proxy.connect.sealing import Sealer
from proxy.connect.store import ConnectionStore
from proxy.connect.transfer import export_connections, read_export
from proxy.core.errors import ConfigError
from proxy.observability.logs import configure_logging


def _add(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose summary is its entry in the list and the start of its --help."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + "."
    )
    return parser


def add_store_commands(commands: Any) -> None:
    """Register ``db`` and ``connections`` with their subcommands."""
    db = _add(commands, "db", "the connection store's schema: db migrate")
    db_commands = db.add_subparsers(required=True, metavar="COMMAND")
    migrate = _add(
        db_commands, "migrate", "apply the schema migrations not applied yet (serve does it too)"
    )
    _config_option(migrate)
    migrate.set_defaults(run=_migrate)

    connections = _add(
        commands,
        "connections",
        "move connections between stores, re-encrypt their tokens: export, import, rotate-key",
    )
    sub = connections.add_subparsers(required=True, metavar="COMMAND")
    export = _add(sub, "export", "write every connection, its tokens still encrypted")
    _config_option(export)
    export.add_argument(
        "--output", type=Path, required=True, help="file to create (owner-only; not overwritten)"
    )
    export.set_defaults(run=_export)
    load = _add(sub, "import", "read an export into this config's store")
    _config_option(load)
    load.add_argument("file", type=Path, help="a file written by `connections export`")
    load.set_defaults(run=_import)
    rotate = _add(
        sub, "rotate-key", "re-encrypt every token cache with the first key of the token key"
    )
    _config_option(rotate)
    rotate.set_defaults(run=_rotate)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=f"TOML config file (or ${CONFIG_ENV})")


def _settings(args: argparse.Namespace) -> Settings:
    config = args.config or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if config is None:
        raise ConfigError(f"this command needs --config FILE (or ${CONFIG_ENV})")
    settings = load_settings(config, environ=os.environ)
    configure_logging("WARNING", secrets=settings.secrets())
    return settings


def _with_store(settings: Settings, work: Callable[[ConnectionStore], Awaitable[int]]) -> int:
    async def run() -> int:
        store = await open_store(settings.connect)
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _where(settings: Settings) -> str:
    connect = settings.connect
    if connect.storage_url is not None:
        return "PostgreSQL store"
    return str(connect.storage_path)


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: ConnectionStore) -> int:
        print(f"{_where(settings)}: schema at version {await store.migrate()}")
        return 0

    return _with_store(settings, work)


def _export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    output: Path = args.output

    async def work(store: ConnectionStore) -> int:
        document = await export_connections(store)
        try:
            # Owner-only, and never over an existing file: it lists who is connected.
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"{output}: exists already; choose another file") from None
        except OSError as exc:
            raise ConfigError(f"{output}: cannot create ({exc.strerror})") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(document)
        count = len(await store.export())
        print(f"{output}: {count} connection(s) exported, token caches still encrypted")
        return 0

    return _with_store(settings, work)


def _import(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{args.file}: cannot read ({exc.strerror})") from None
    rows = read_export(raw, Sealer(settings.connect.token_key))

    async def work(store: ConnectionStore) -> int:
        count = await store.restore(rows)
        print(f"{_where(settings)}: {count} connection(s) imported")
        return 0

    return _with_store(settings, work)


def _rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def work(store: ConnectionStore) -> int:
        done, unreadable = await store.reseal()
        print(f"{_where(settings)}: {done} token cache(s) re-encrypted with the first key")
        if unreadable:
            print(
                f"freebusy-proxy: {unreadable} token cache(s) no listed key opens; left as they "
                "are (add the key they were sealed with and run rotate-key again)",
                file=sys.stderr,
            )
            return 1
        return 0

    return _with_store(settings, work)
