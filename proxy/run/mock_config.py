"""`freebusy-proxy mock-graph` configures the proxy for you: a ready config and the commands.

This module never imports the mock (only ``proxy.run.demo`` and the mock-graph command may):
it is given what the running mock is, as plain values.
"""

from __future__ import annotations

import json
import secrets
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet

from proxy.access.consumers import new_key
from proxy.config.schema import AUDIT_KEY_ENV, CLIENT_SECRET_ENV, TOKEN_KEY_ENV
from proxy.core.timefmt import format_utc

CONFIG_NAME = "proxy.toml"
CONNECTIONS_NAME = "connections.sqlite3"
CONSUMER_NAME = "mock-app"


@dataclass(frozen=True, kw_only=True)
class MockIdentity:
    """What a proxy needs to know about a running mock Graph."""

    tenant_id: str
    client_id: str
    client_secret: str
    authority: str
    graph_base_url: str
    ca_file: Path
    domain: str
    people: tuple[str, ...]
    """A few of its people, for the example request."""


@dataclass(frozen=True, kw_only=True)
class ProxySetup:
    """A written config and what goes with it: keys for this run, the environment to run it."""

    config: Path
    port: int
    key: str
    admin_key: str
    environment: dict[str, str]

    def command(self, *words: str) -> str:
        """A shell line running ``freebusy-proxy WORDS --config CONFIG`` with the environment."""
        env = " ".join(f"{name}={shlex.quote(value)}" for name, value in self.environment.items())
        args = " ".join(shlex.quote(word) for word in (*words, "--config", str(self.config)))
        return f"{env} freebusy-proxy {args}"


def availability_curl(*, base: str, key: str, addresses: list[str], now: datetime) -> str:
    """A copy-paste curl line for tomorrow's availability (UTC) of a few people."""
    day = (now.astimezone(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    url = (
        f"{base}/v1/availability?schedules={','.join(addresses)}"
        f"&start={format_utc(day)}&end={format_utc(day + timedelta(days=1))}"
    )
    return f"curl -s -H {shlex.quote('Authorization: Bearer ' + key)} {shlex.quote(url)}"


def write_proxy_config(mock: MockIdentity, *, directory: Path, port: int) -> ProxySetup:
    """Write ``directory/proxy.toml`` for this mock, with a fresh consumer and admin key.

    The mock forgets its delegated grants when it stops, and the token key is new for this
    run, so a connection store left in ``directory`` by an earlier run is removed.
    """
    directory = directory.resolve()
    key, key_sha256 = new_key()
    admin_key, admin_sha256 = new_key()
    for stale in directory.glob(f"{CONNECTIONS_NAME}*"):
        stale.unlink()
    config = directory / CONFIG_NAME
    q = json.dumps  # a TOML basic string is a JSON string
    config.write_text(
        "# Written by `freebusy-proxy mock-graph` for the mock it started; rewritten at each\n"
        "# start (new keys). See config/example.toml for every key.\n\n"
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f"[graph]\ntenant_id = {q(mock.tenant_id)}\nclient_id = {q(mock.client_id)}\n"
        f"authority = {q(mock.authority)}\nbase_url = {q(mock.graph_base_url)}\n"
        f"ca_file = {q(str(mock.ca_file))}\n\n"
        '[connect]\nkinds = ["individual", "enterprise"]\n'
        f"storage_path = {q(CONNECTIONS_NAME)}\nadmin_key_sha256 = {q(admin_sha256)}\n\n"
        f"[[consumers]]\nname = {q(CONSUMER_NAME)}\nkey_sha256 = {q(key_sha256)}\n"
        f"allow = [{q('*@' + mock.domain)}]\n"
    )
    environment = {
        CLIENT_SECRET_ENV: mock.client_secret,
        AUDIT_KEY_ENV: secrets.token_urlsafe(32),
        TOKEN_KEY_ENV: Fernet.generate_key().decode(),
    }
    return ProxySetup(
        config=config, port=port, key=key, admin_key=admin_key, environment=environment
    )


def instructions(setup: ProxySetup, mock: MockIdentity, *, now: datetime) -> str:
    """What mock-graph prints after its own lines: the config, the keys, the commands."""
    base = f"http://127.0.0.1:{setup.port or 'PORT'}"
    curl = availability_curl(base=base, key=setup.key, addresses=list(mock.people), now=now)
    port_note = "" if setup.port else "  (PORT: the port the proxy logs as 'serving on')\n"
    return (
        f"\nA proxy config for this mock: {setup.config}\n"
        f"  API key of its consumer {CONSUMER_NAME!r} (this run only): {setup.key}\n"
        f"  admin key (this run only):                            {setup.admin_key}\n\n"
        "Run the proxy with it, in another terminal:\n"
        f"  {setup.command('serve')}\n\n"
        "Then ask it for tomorrow's availability:\n"
        f"  {curl}\n{port_note}\n"
        "Connect Enterprise Free/Busy from the terminal (device code; then start or restart the "
        "proxy):\n"
        f"  {setup.command('connect', 'enterprise')}\n"
    )
