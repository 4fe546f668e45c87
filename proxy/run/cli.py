"""Command line: serve, mock-graph, check-config, new-key, new-feed."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from proxy.access.consumers import new_key
from proxy.config.load import load_settings
from proxy.config.schema import CONFIG_ENV
from proxy.core.errors import ConfigError
from proxy.observability.logs import configure_logging
from proxy.run.serving import serve_until_signalled
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


def _config_problems(exc: ConfigError) -> str:
    """Every problem of a configuration, one per line."""
    if len(exc.problems) == 1:
        return f"freebusy-proxy: configuration error: {exc.problems[0]}"
    lines = [f"freebusy-proxy: {len(exc.problems)} configuration errors:"]
    lines += [f"  - {problem}" for problem in exc.problems]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freebusy-proxy",
        description="Minimized free/busy from Microsoft Graph for scheduling apps.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the proxy (with no config: the demo against the built-in mock)"
    )
    serve.add_argument("--config", type=Path, help=f"TOML config file (or ${CONFIG_ENV})")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="processes sharing the port (each with its own cache); needs --config",
    )
    serve.set_defaults(run=_serve)

    mock = commands.add_parser("mock-graph", help="run the mock Graph and identity platform")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8443)
    mock.add_argument(
        "--cert-dir", type=Path, default=Path("mock-certs"), help="where the CA PEM is written"
    )
    mock.add_argument(
        "--org-size", type=int, default=40, help="people and rooms in contoso.example"
    )
    mock.add_argument("--seed", type=int, default=1)
    mock.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    mock.set_defaults(run=_mock_graph)

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_check_config)

    key = commands.add_parser("new-key", help="print a fresh consumer API key and its SHA-256")
    key.set_defaults(run=_new_key)

    token_key = commands.add_parser(
        "new-token-key", help="print a fresh FREEBUSY_PROXY_TOKEN_KEY (encrypts stored tokens)"
    )
    token_key.set_defaults(run=_new_token_key)

    connect = commands.add_parser(
        "connect", help="connect delegated Free/Busy access without a browser (device code)"
    )
    connect.add_argument("kind", choices=["individual", "enterprise"])
    connect.add_argument(
        "--device-code", action="store_true", required=True, help="use msal's device-code flow"
    )
    connect.add_argument("--config", type=Path, help=f"TOML config file (or ${CONFIG_ENV})")
    connect.set_defaults(run=_connect)

    feed = commands.add_parser(
        "new-feed", help="print a fresh .ics feed token for one address, its SHA-256 and URL"
    )
    feed.add_argument("address", help="the one address the token may read")
    feed.add_argument("--consumer", required=True, help="the [[consumers]] name it reads as")
    feed.add_argument("--name", help="the feed's name in the config (default: the address)")
    feed.add_argument(
        "--base-url", default="http://127.0.0.1:8080", help="where consumers reach the proxy"
    )
    feed.set_defaults(run=_new_feed)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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
            host=args.host or "127.0.0.1", port=8080 if args.port is None else args.port
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
    from proxy.mock import MockSettings, serve_forever

    serve_forever(
        host=args.host,
        port=args.port,
        cert_dir=args.cert_dir,
        settings=MockSettings(org_size=args.org_size, seed=args.seed),
    )
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
