"""Command line: serve, mock-graph, check-config, new-key, new-token-key, connect, new-feed,
db, connections."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

from proxy import __version__
from proxy.access.consumers import new_key
from proxy.config.load import load_settings
from proxy.config.schema import CONFIG_ENV, TOKEN_KEY_ENV, Port
from proxy.core.errors import ConfigError
from proxy.observability.logs import configure_logging
from proxy.run.serving import BindFailure, listen_problem, serve_until_signalled
from proxy.run.store_commands import add_store_commands
from proxy.web.app import init_app, runner_kwargs

log = logging.getLogger("proxy")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named on the command line; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level if "log_level" in args else "INFO")
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(_config_problems(exc), file=sys.stderr)
        return 2
    except BindFailure as failure:
        print(failure, file=sys.stderr)
        return 2


def _config_problems(exc: ConfigError) -> str:
    """Every problem of a configuration, one per line."""
    if len(exc.problems) == 1:
        return f"freebusy-proxy: configuration error: {exc.problems[0]}"
    lines = [f"freebusy-proxy: {len(exc.problems)} configuration errors:"]
    lines += [f"  - {problem}" for problem in exc.problems]
    return "\n".join(lines)


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        hidden = default is None or default is False or default is argparse.SUPPRESS
        shown = not hidden and action.option_strings
        if shown and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _version() -> str:
    """The installed package's version (the source's when run from a checkout)."""
    try:
        return metadata.version("freebusy-proxy")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return __version__


def _port(text: str) -> int:
    """A TCP port, checked exactly as ``[server] port`` is in the config file."""
    try:
        return msgspec.convert(text, Port, strict=False)
    except msgspec.ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)") from None


def _positive_int(text: str) -> int:
    """A whole number of at least 1, or the parser's one-line refusal."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


_LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _command(
    commands: Any, name: str, summary: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary is both its entry in the list and its --help."""
    command: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".",
        formatter_class=_Help,
    )  # fmt: skip
    command.set_defaults(run=run)
    return command


def _log_level(command: argparse.ArgumentParser) -> None:
    """Give ``command`` a --log-level that takes the level names in any letter case."""
    command.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=_LOG_LEVELS,
        help="how much to log, in any letter case",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freebusy-proxy",
        description="Minimized free/busy from Microsoft Graph for scheduling apps.",
        epilog="Run 'freebusy-proxy COMMAND --help' for a command's options. Documentation: "
        "README.md and docs/ in the repository.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"freebusy-proxy {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND", title="commands")

    serve = _command(
        commands,
        "serve",
        "run the proxy (with no config: a demo in front of the built-in mock Graph)",
        _serve,
    )
    serve.add_argument(
        "--config", type=Path, help=f"TOML config file (or ${CONFIG_ENV}); none: the demo"
    )
    serve.add_argument("--host", help="address to listen on (default: [server] host, 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, help="port to listen on, 0 for any free one (default: [server] "
        "port, 8080)",
    )  # fmt: skip
    _log_level(serve)
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="processes sharing the port (each with its own cache); needs --config",
    )
    serve.add_argument(
        "--mock-port",
        type=_port,
        default=0,
        help="the demo's mock Graph port, 0 for any free one (publish it to sign in from a "
        "container's host)",
    )

    mock = _command(
        commands,
        "mock-graph",
        "run the mock Graph and identity platform, and write a proxy config for it",
        _mock_graph,
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mock.add_argument(
        "--port", type=_port, default=8443, help="port to listen on, 0 for any free one"
    )
    mock.add_argument(
        "--cert-dir",
        type=Path,
        default=Path("mock-certs"),
        help="where the CA PEM and the proxy config (proxy.toml) are written",
    )
    mock.add_argument(
        "--proxy-port", type=_port, default=8080, help="the port the written proxy config sets"
    )
    mock.add_argument(
        "--browser-url",
        help="https://host:port where browsers reach the mock, when not where the proxy does",
    )
    mock.add_argument(
        "--org-size", type=_positive_int, default=40, help="people and rooms in contoso.example"
    )
    mock.add_argument("--seed", type=int, default=1, help="seed of the generated calendars")
    _log_level(mock)

    check = _command(
        commands,
        "check-config",
        "check a config file and the environment exactly as serve would, and exit",
        _check_config,
    )
    check.add_argument("file", type=Path, help="the TOML config file")

    _command(commands, "new-key", "print a fresh consumer API key and its SHA-256", _new_key)
    _command(
        commands,
        "new-token-key",
        f"print a fresh {TOKEN_KEY_ENV} (encrypts stored tokens)",
        _new_token_key,
    )

    connect = _command(
        commands,
        "connect",
        "connect delegated Free/Busy access from a terminal: sign in with a code on any device",
        _connect,
    )
    connect.add_argument("kind", choices=["individual", "enterprise"], help="which connection")
    connect.add_argument("--config", type=Path, help=f"TOML config file (or ${CONFIG_ENV})")
    # The device-code flow is what this command does; the flag stays for existing scripts.
    connect.add_argument("--device-code", action="store_true", help=argparse.SUPPRESS)

    feed = _command(
        commands,
        "new-feed",
        "print a fresh .ics feed token for one address, its SHA-256 and URL",
        _new_feed,
    )
    feed.add_argument("address", help="the one address the token may read")
    feed.add_argument("--consumer", required=True, help="the [[consumers]] name it reads as")
    feed.add_argument("--name", help="the feed's name in the config (default: the address)")
    feed.add_argument(
        "--base-url", default="http://127.0.0.1:8080", help="where consumers reach the proxy"
    )
    add_store_commands(commands)
    return parser


def _serve(args: argparse.Namespace) -> int:
    config = args.config or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if config is None and args.workers > 1:
        raise ConfigError("--workers needs --config (the demo runs in one process)")
    if config is not None and args.workers > 1:
        from proxy.run.workers import serve_workers

        return serve_workers(
            config=config,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    if config is None:
        from proxy.run.demo import run_demo

        # --port 0 asks for a free port here too: only no --port at all means 8080.
        return run_demo(
            host=args.host or "127.0.0.1",
            port=8080 if args.port is None else args.port,
            mock_port=args.mock_port,
        )
    settings = load_settings(config, environ=os.environ, host=args.host)
    # Now that the secrets are known, redact their literal values too.
    configure_logging(args.log_level, secrets=settings.secrets())
    app = init_app(settings)
    serve_until_signalled(
        app,
        host=args.host or settings.server.host,
        port=args.port if args.port is not None else settings.server.port,
        runner_kwargs=runner_kwargs(settings.server),
    )
    return 0


def _mock_graph(args: argparse.Namespace) -> int:
    from proxy.mock import MOCK_CLIENT_SECRET, MockSettings, RunningMock, serve_forever
    from proxy.run.mock_config import MockIdentity, instructions, write_proxy_config

    try:
        settings = MockSettings(
            org_size=args.org_size, seed=args.seed, browser_url=args.browser_url
        )
    except ValueError as exc:
        raise ConfigError(f"mock-graph: {exc}") from None

    def configure_the_proxy(running: RunningMock) -> None:
        organisation = running.graph.organisation
        mock = MockIdentity(
            tenant_id=settings.tenant_id,
            client_id=settings.client_id,
            client_secret=MOCK_CLIENT_SECRET,
            authority=running.authority,
            graph_base_url=running.graph_base_url,
            ca_file=running.ca_file.resolve(),
            domain=organisation.domain,
            people=tuple(organisation.addresses()[:3]),
        )
        setup = write_proxy_config(mock, directory=args.cert_dir, port=args.proxy_port)
        print(instructions(setup, mock, now=datetime.now(UTC)), flush=True)

    try:
        serve_forever(
            host=args.host,
            port=args.port,
            cert_dir=args.cert_dir,
            settings=settings,
            on_ready=configure_the_proxy,
        )
    except OSError as exc:
        if exc.filename is not None:  # the certificate directory, not the socket
            raise ConfigError(f"--cert-dir: cannot write {exc.filename} ({exc.strerror})") from None
        raise BindFailure(listen_problem(exc, args.host, args.port)) from None
    except KeyboardInterrupt:
        pass
    return 0


def _check_config(args: argparse.Namespace) -> int:
    # The very function serve calls, environment included: one fails exactly when the other would.
    settings = load_settings(args.file, environ=os.environ)
    print(
        f"{args.file}: OK ({len(settings.consumers)} consumer(s); "
        f"Graph at {settings.graph.base_url})"
    )
    return 0


def _new_key(args: argparse.Namespace) -> int:
    key, digest = new_key()
    print(f"key:        {key}")
    print(f"key_sha256: {digest}")
    print("Give the key to the consumer; put only key_sha256 in the config.")
    return 0


def _new_token_key(args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


def _connect(args: argparse.Namespace) -> int:
    import asyncio

    from proxy.connect.device import connect_with_device_code

    config = args.config or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if config is None:
        raise ConfigError(f"connect needs --config FILE (or ${CONFIG_ENV})")
    settings = load_settings(config, environ=os.environ)
    configure_logging("INFO", secrets=settings.secrets())
    return asyncio.run(connect_with_device_code(settings, args.kind))


def _new_feed(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from proxy.access.feeds import new_feed_token

    token, digest = new_feed_token()
    url = f"{args.base_url.rstrip('/')}/v1/schedules/{quote(args.address, safe='@')}/freebusy.ics"
    print(f"token:        {token}")
    print(f"token_sha256: {digest}")
    print(f"feed URL:     {url}?token={token}")
    print()
    print("Add to the config (only the hash), then restart the proxy:")
    print()
    print("[[feeds]]")
    print(f"name = {json.dumps(args.name or args.address)}")
    print(f'token_sha256 = "{digest}"')
    print(f"address = {json.dumps(args.address)}")
    print(f"consumer = {json.dumps(args.consumer)}")
    print()
    print("Revoke it by deleting the entry and restarting.")
    return 0
