"""The command line explains itself: version, help with defaults, and one-line refusals."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy import __version__
from proxy.access.consumers import new_key
from proxy.config.schema import AUDIT_KEY_ENV, CLIENT_SECRET_ENV, CONFIG_ENV
from proxy.run.cli import main
from tests.support.paths import ROOT

_, KEY_SHA = new_key()
CONFIG = f"""
[graph]
tenant_id = "t"
client_id = "c"
[[consumers]]
name = "app"
key_sha256 = "{KEY_SHA}"
allow = ["*@contoso.example"]
"""
SECRETS = {CLIENT_SECRET_ENV: "s", AUDIT_KEY_ENV: "a" * 40}
# TEST-NET-1 (RFC 5737): documentation addresses, never assigned to an interface.
UNASSIGNED = "192.0.2.1"


def run(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m proxy ARGS`` in a child with only ``environ`` of the proxy's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    return subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-m", "proxy", *args],
        cwd=ROOT,
        env={**env, **(environ or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else is listening on while the test runs."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A valid config file (its Graph is never reached by these tests)."""
    path = tmp_path / "proxy.toml"
    path.write_text(CONFIG)
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package's version and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"freebusy-proxy {__version__}"


def test_every_command_says_what_it_does_and_its_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command list has a line per command; each command's help a summary and defaults."""
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    commands = [
        "serve",
        "mock-graph",
        "check-config",
        "new-key",
        "new-token-key",
        "connect",
        "new-feed",
        "db",
        "connections",
    ]
    for name in commands:
        assert re.search(rf"^    {name}\s+\S", listing, re.MULTILINE), (name, listing)
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        summary = text.split("\n\n")[1]
        assert summary.strip().endswith("."), (name, text)
    for name, defaults in {
        "serve": ["(default: INFO)", "(default: 1)"],
        "mock-graph": ["(default: 127.0.0.1)", "(default: 8443)", "(default: mock-certs)"],
        "new-feed": ["(default: http://127.0.0.1:8080)"],
    }.items():
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for default in defaults:
            assert default in text, (name, default, text)


def test_log_levels_in_any_letter_case(tmp_path: Path, config: Path) -> None:
    """--log-level debug is DEBUG; an unknown level is refused by the parser (exit 2)."""
    refused = run("serve", "--config", str(config), "--log-level", "loud")
    assert refused.returncode == 2
    assert "invalid choice: 'LOUD'" in refused.stderr
    # Accepted in lower case: the configuration check (missing secrets) is what stops it.
    checked = run("serve", "--config", str(config), "--log-level", "debug")
    assert checked.returncode == 2
    assert CLIENT_SECRET_ENV in checked.stderr
    assert "--log-level" not in checked.stderr


@pytest.mark.parametrize("port", ["99999", "-1", "eighty"])
def test_a_port_out_of_range_is_refused_like_the_files(port: str) -> None:
    """--port takes 0 to 65535, as [server] port does; anything else is one line, exit 2."""
    result = run("serve", "--port", port)
    assert result.returncode == 2
    assert f"argument --port: '{port}' is not a port (0 to 65535)" in result.stderr
    assert "Traceback" not in result.stderr


def _one_line_refusal(result: subprocess.CompletedProcess[str], where: str, why: str) -> None:
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "cannot listen" in line]
    assert line.startswith(f"freebusy-proxy: cannot listen on {where}: {why}"), line
    assert "Traceback" not in result.stderr
    assert "exited unexpectedly" not in result.stderr


def test_a_busy_port_is_one_line(busy_port: int, config: Path) -> None:
    """Address in use: the address, why, and a hint; exit 2, in every mode."""
    where = f"127.0.0.1:{busy_port}"
    why = "address already in use: another program listens there; stop it, or choose another"
    served = run("serve", "--config", str(config), "--port", str(busy_port), environ=SECRETS)
    _one_line_refusal(served, where, why)
    assert "--port 0 picks any free one" in served.stderr
    demo = run("serve", "--port", str(busy_port))
    _one_line_refusal(demo, where, why)
    workers = run(
        "serve", "--config", str(config), "--port", str(busy_port), "--workers", "2",
        environ=SECRETS,
    )  # fmt: skip
    _one_line_refusal(workers, where, why)


def test_an_address_of_no_interface_is_one_line(config: Path) -> None:
    """--host an address this machine does not have: one line naming it, exit 2."""
    result = run("serve", "--config", str(config), "--host", UNASSIGNED, environ=SECRETS)
    _one_line_refusal(result, f"{UNASSIGNED}:8080", "address not available")


def test_connect_runs_the_device_code_flow_without_a_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """connect KIND needs no flag; --device-code is still accepted (older scripts)."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    for args in (["connect", "enterprise"], ["connect", "enterprise", "--device-code"]):
        assert main(args) == 2
        assert "connect needs --config FILE" in capsys.readouterr().err
