"""Configuration is validated strictly, and errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config.schema import CLIENT_SECRET_ENV, load_settings
from proxy.core.errors import ConfigError
from proxy.run.cli import main

VALID = """
[server]
port = 9090
[graph]
tenant_id = "t"
client_id = "c"
[[consumers]]
name = "scheduler"
key_sha256 = "%s"
allow = ["*@contoso.example", "ceo@fabrikam.example"]
""" % ("ab" * 32)


def write(tmp_path: Path, text: str) -> Path:
    """Write a config file and return its path."""
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    return path


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    """Given keys are used, the rest take their documented defaults; the secret comes from env."""
    settings = load_settings(write(tmp_path, VALID), environ={CLIENT_SECRET_ENV: "s3cret"})
    assert settings.server.port == 9090
    assert settings.server.host == "127.0.0.1"
    assert settings.graph.base_url == "https://graph.microsoft.com/v1.0"
    assert settings.graph.client_secret == "s3cret"
    assert settings.consumers[0].allow == ("*@contoso.example", "ceo@fabrikam.example")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda t: t.replace("port = 9090", "prot = 9090"), "server.prot: unknown key"),
        (lambda t: t.replace("port = 9090", 'port = "9090"'), "server.port: must be an integer"),
        (lambda t: t.replace("port = 9090", "port = 70000"), "server.port"),
        (lambda t: t.replace('client_id = "c"', ""), "graph.client_id: required"),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nclient_secret = "x"'),
            "graph.client_secret",
        ),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nbase_url = "http://graph"'),
            "graph.base_url",
        ),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nca_file = "missing.pem"'),
            "graph.ca_file",
        ),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nmailbox_concurrency = 8'),
            "graph.mailbox_concurrency",
        ),
        (lambda t: t.replace("ab" * 32, "AB" * 32), "consumers[0].key_sha256"),
        (
            lambda t: t.replace('"ceo@fabrikam.example"', '"ceo*@fabrikam.example"'),
            "consumers[0].allow",
        ),
        (lambda t: t + "[limits]\nmax_schedules = 0\n", "limits.max_schedules"),
        (lambda t: t + "[surprise]\n", "surprise: unknown key"),
        (lambda t: t.replace("[graph]", "[graf]"), "graf: unknown key"),
        (
            lambda t: (
                t
                + "[[consumers]]\nname = 'scheduler'\nkey_sha256 = '"
                + "cd" * 32
                + "'\nallow = []\n"
            ),
            "consumers[1].name",
        ),
        (lambda t: "port = [", "not valid TOML"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, edit: object, names: str) -> None:
    """Every kind of mistake is refused with a message naming the offending key."""
    assert callable(edit)
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, edit(VALID)), environ={})
    assert names in str(caught.value)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config exits 0 on a valid file and 2 naming the key on an invalid one."""
    assert main(["check-config", str(write(tmp_path, VALID))]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check-config", str(write(tmp_path, VALID + "[nope]\n"))]) == 2
    assert "nope: unknown key" in capsys.readouterr().err


def test_new_key_prints_key_and_matching_hash(capsys: pytest.CaptureFixture[str]) -> None:
    """new-key prints a key and the SHA-256 the config needs for it."""
    import hashlib

    assert main(["new-key"]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    key, digest = lines["key"].strip(), lines["key_sha256"].strip()
    assert hashlib.sha256(key.encode()).hexdigest() == digest


def test_connect_section_is_validated(tmp_path: Path) -> None:
    """[connect]: unknown kinds, a token key in the file and bad hashes are rejected by name."""
    from proxy.config.schema import parse_settings
    from proxy.core.errors import ConfigError

    graph = {"tenant_id": "t", "client_id": "c"}
    for connect, key in (
        ({"kinds": ["everyone"]}, "connect.kinds"),
        ({"token_key": "x"}, "connect.token_key"),
        ({"admin_key_sha256": "nothex"}, "connect.admin_key_sha256"),
        ({"redirect_uri": "ftp://x"}, "connect.redirect_uri"),
        ({"application_permissions": False}, "connect.application_permissions"),
        ({"strict_scopes": "yes"}, "connect.strict_scopes"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_settings({"graph": graph, "connect": connect}, environ={}, base_dir=tmp_path)
    settings = parse_settings(
        {"graph": graph, "connect": {"kinds": ["individual"], "storage_path": "c.db"}},
        environ={"FREEBUSY_PROXY_TOKEN_KEY": "k"},
        base_dir=tmp_path,
    )
    assert settings.connect.storage_path == tmp_path / "c.db"
    assert settings.connect.token_key == "k"
    assert settings.connect.strict_scopes is True


def test_serve_refuses_delegated_connections_without_a_token_key(tmp_path: Path) -> None:
    """init_app raises ConfigError naming FREEBUSY_PROXY_TOKEN_KEY when it is missing or bad."""
    from dataclasses import replace

    from proxy.config.schema import ConnectSettings, GraphSettings, Settings
    from proxy.core.errors import ConfigError
    from proxy.web.app import init_app

    base = Settings(graph=GraphSettings(tenant_id="t", client_id="c", client_secret="s"))
    for key in (None, "not-a-fernet-key"):
        settings = replace(
            base,
            connect=ConnectSettings(
                kinds=("individual",), storage_path=tmp_path / "c.db", token_key=key
            ),
        )
        with pytest.raises(ConfigError, match="FREEBUSY_PROXY_TOKEN_KEY"):
            init_app(settings)


@pytest.mark.parametrize(
    ("section", "names"),
    [
        ("[cache]\nttl_seconds = -1", "cache.ttl_seconds"),
        ("[cache]\nmax_entries = 0", "cache.max_entries"),
        ("[cache]\nstale_max_age_seconds = -5", "cache.stale_max_age_seconds"),
        ("[cache]\nttl = 5", "cache.ttl: unknown key"),
        ("[batching]\nwait_ms = 5000", "batching.wait_ms"),
        ("[batching]\nmax_schedules = 21", "batching.max_schedules"),
        ("[throttle]\nmax_concurrency = 0", "throttle.max_concurrency"),
        ("[throttle]\nmailbox_budget = 10001", "throttle.mailbox_budget"),
        ("[throttle]\nbreaker_failures = 0", "throttle.breaker_failures"),
        ("[throttle]\nbreaker_cool_down_seconds = 0", "throttle.breaker_cool_down_seconds"),
    ],
)
def test_frugality_settings_are_validated(tmp_path: Path, section: str, names: str) -> None:
    """Cache, batching and throttle keys are range-checked, and the error names the key."""
    with pytest.raises(ConfigError, match=names):
        load_settings(write(tmp_path, VALID.replace("[[consumers]]", section + "\n[[consumers]]")))


def test_frugality_defaults(tmp_path: Path) -> None:
    """Without the sections: 60 s TTL, serve-stale off, 2 ms batching, budget under 10,000."""
    settings = load_settings(write(tmp_path, VALID), environ={})
    assert settings.cache.ttl_seconds == 60.0
    assert settings.cache.stale_max_age_seconds == 0.0
    assert settings.batching.wait_ms == 2.0
    assert settings.batching.max_schedules == 20
    assert settings.throttle.mailbox_budget < 10_000
