"""The one configuration check: keys, types, ranges, rules and secrets, every problem at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from proxy.access.consumers import ConsumerRegistry, new_key
from proxy.config.load import load_settings, parse_settings
from proxy.config.schema import (
    AUDIT_KEY_ENV,
    CLIENT_SECRET_ENV,
    DATABASE_PASSWORD_ENV,
    TOKEN_KEY_ENV,
)
from proxy.core.errors import ConfigError
from proxy.core.model import Status
from proxy.run.cli import main

KEY, KEY_SHA = new_key()
VALID = f"""
[server]
port = 9090
[graph]
tenant_id = "t"
client_id = "c"
[[consumers]]
name = "scheduler"
key_sha256 = "{KEY_SHA}"
allow = ["*@contoso.example", "ceo@fabrikam.example"]
"""
# What serve needs from the environment for VALID.
ENV = {CLIENT_SECRET_ENV: "s3cret", AUDIT_KEY_ENV: "a" * 40}
TOKEN_KEY = "yvK0w3c2kwYcA5pH9yq9cMSZ5lXu8b0dGQ3l9cO0v3M="


def write(tmp_path: Path, text: str) -> Path:
    """Write a config file and return its path."""
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    """Every problem the loader finds in ``text`` with ``environ`` (ENV by default)."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=ENV if environ is None else environ)
    return list(caught.value.problems)


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    """Given keys are used, the rest take their documented defaults; secrets come from env."""
    settings = load_settings(write(tmp_path, VALID), environ=ENV)
    assert settings.server.port == 9090
    assert settings.server.host == "127.0.0.1"
    assert settings.graph.base_url == "https://graph.microsoft.com/v1.0"
    assert settings.graph.client_secret == "s3cret"
    assert settings.audit.hmac_key == "a" * 40
    assert settings.consumers[0].allow == ("*@contoso.example", "ceo@fabrikam.example")
    assert "s3cret" not in repr(settings)
    assert "a" * 40 not in repr(settings)
    assert settings.secrets() == ["s3cret", "a" * 40]
    policy = settings.consumers[0].policy
    assert (policy.detail, policy.granularity_minutes) == ("status", 0)
    assert (policy.max_lookback_days, policy.max_lookahead_days) == (0, 365)
    assert (policy.max_window_days, policy.max_schedules) == (None, None)
    assert policy.rate_per_minute == 600
    assert settings.audit.enabled
    assert not settings.audit.audit_addresses
    assert settings.cors.allow_origins == ()
    assert (settings.server.max_line_size, settings.server.max_field_size) == (8190, 8190)
    assert settings.cache.ttl_seconds == 60.0
    assert settings.cache.stale_max_age_seconds == 0.0
    assert settings.batching.wait_ms == 2.0
    assert settings.throttle.mailbox_budget < 10_000


def test_policy_keys_reach_the_consumer(tmp_path: Path) -> None:
    """A consumer's policy keys sit in its own table and become its Policy; paths resolve."""
    text = VALID + (
        'detail = "busy"\ngranularity_minutes = 30\nbusy_statuses = ["busy", "oof"]\n'
        "max_window_days = 14\nmax_schedules = 5\nmax_lookback_days = 1\n"
        "max_lookahead_days = 60\nrate_per_minute = 10\n"
        '[audit]\nfile = "audit.jsonl"\n[cors]\nallow_origins = ["https://app.example:8443"]\n'
    )
    settings = load_settings(write(tmp_path, text), environ=ENV)
    policy = ConsumerRegistry(settings.consumers).authenticate(f"Bearer {KEY}").policy
    assert policy.detail == "busy"
    assert policy.granularity_minutes == 30
    assert policy.busy_statuses == {Status.BUSY, Status.OOF}
    assert (policy.max_window_days, policy.max_schedules) == (14, 5)
    assert (policy.max_lookback_days, policy.max_lookahead_days) == (1, 60)
    assert policy.rate_per_minute == 10
    assert settings.audit.file == tmp_path / "audit.jsonl"
    assert settings.cors.allow_origins == ("https://app.example:8443",)


def test_a_slots_only_consumer_loads_and_no_feed_may_name_it(tmp_path: Path) -> None:
    """detail = "slots" is a policy like the others; a feed reading as that consumer is not."""
    text = VALID + 'detail = "slots"\n'
    policy = load_settings(write(tmp_path, text), environ=ENV).consumers[0].policy
    assert policy.detail == "slots"
    feed = (
        f'[[feeds]]\nname = "ceo"\ntoken_sha256 = "{"ab" * 32}"\n'
        'address = "ceo@fabrikam.example"\nconsumer = "scheduler"\n'
    )
    assert load_settings(write(tmp_path, VALID + feed), environ=ENV).feeds
    found = problems(tmp_path, text + feed)
    assert found == [
        "feeds[0].consumer: consumer 'scheduler' has detail = \"slots\" and may read no feed"
    ]


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda t: t.replace("port = 9090", "prot = 9090"), "server.prot: unknown key"),
        (lambda t: t.replace("port = 9090", 'port = "9090"'), "server.port: must be an integer"),
        (lambda t: t.replace("port = 9090", "port = 70000"), "server.port: must be at most"),
        (
            lambda t: t.replace(
                "port = 9090", 'port = 9090\ntrusted_proxies = ["10.0.0.0/8", "lb"]'
            ),
            "server.trusted_proxies: 'lb' is not an address or network",
        ),
        (lambda t: t.replace('client_id = "c"', ""), "graph.client_id: required key is missing"),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nclient_secret = "x"'),
            "graph.client_secret: secrets are not read from files",
        ),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nbase_url = "http://graph"'),
            "graph.base_url: must be an https:// URL",
        ),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nca_file = "missing.pem"'),
            "graph.ca_file: no such file",
        ),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\nmailbox_concurrency = 8'),
            "graph.mailbox_concurrency: must be at most 4",
        ),
        (lambda t: t.replace(KEY_SHA, KEY_SHA.upper()), "consumers[0].key_sha256: must be 64"),
        (
            lambda t: t.replace('"ceo@fabrikam.example"', '"ceo*@fabrikam.example"'),
            "consumers[0].allow",
        ),
        (lambda t: t + "[limits]\nmax_schedules = 0\n", "limits.max_schedules: must be at least"),
        (lambda t: t + "[surprise]\n", "surprise: unknown key"),
        (lambda t: t.replace("[graph]", "[graf]"), "graf: unknown key"),
        (
            lambda t: (
                t + f"[[consumers]]\nname = 'scheduler'\nkey_sha256 = '{'cd' * 32}'\nallow = []\n"
            ),
            "consumers[1].name: duplicate consumer name",
        ),
        (
            lambda t: t + 'detail = "minimal"\n',
            "consumers[0].detail: 'minimal' is not one of status, busy, slots",
        ),
        (lambda t: t + "granularity_minutes = 7\n", "consumers[0].granularity_minutes: must be 0"),
        (lambda t: t + "granularity_minutes = -15\n", "consumers[0].granularity_minutes"),
        (lambda t: t + "granularity_minutes = 2880\n", "consumers[0].granularity_minutes"),
        (lambda t: t + "max_window_days = 0\n", "consumers[0].max_window_days"),
        (lambda t: t + "max_schedules = 0\n", "consumers[0].max_schedules"),
        (lambda t: t + "max_lookback_days = -1\n", "consumers[0].max_lookback_days"),
        (lambda t: t + "max_lookahead_days = 0\n", "consumers[0].max_lookahead_days"),
        (lambda t: t + "rate_per_minute = -1\n", "consumers[0].rate_per_minute"),
        (lambda t: t + 'rate_per_minute = "10"\n', "consumers[0].rate_per_minute: must be an"),
        (lambda t: t + 'busy_statuses = ["bsy"]\n', "consumers[0].busy_statuses[0]: 'bsy'"),
        (lambda t: t + "[policy]\n", "policy: unknown key"),
        (lambda t: t + '[audit]\nhmac_key = "x"\n', "audit.hmac_key: secrets are not read"),
        (lambda t: t + '[audit]\nenabled = "yes"\n', "audit.enabled: must be true or false"),
        (lambda t: t + "[audit]\nverbose = true\n", "audit.verbose: unknown key"),
        (lambda t: t + '[cors]\nallow_origins = ["*"]\n', "cors.allow_origins[0]: is not an"),
        (lambda t: t + '[cors]\nallow_origins = ["https://a.example/p"]\n', "cors.allow_origins"),
        (lambda t: t + "[cors]\nmax_age_seconds = 100000\n", "cors.max_age_seconds"),
        (lambda t: t.replace("9090", "9090\nmax_line_size = 100"), "server.max_line_size"),
        (lambda t: t.replace("9090", "9090\nmax_headers = 1000"), "server.max_headers"),
        (lambda t: t + "[cache]\nttl_seconds = -1\n", "cache.ttl_seconds"),
        (lambda t: t + "[cache]\nmax_entries = 0\n", "cache.max_entries"),
        (lambda t: t + "[cache]\nstale_max_age_seconds = -5\n", "cache.stale_max_age_seconds"),
        (lambda t: t + "[cache]\nttl = 5\n", "cache.ttl: unknown key"),
        (lambda t: t + "[cache]\nmin_fetch_days = 62\n", "cache.min_fetch_days"),
        (lambda t: t + "[batching]\nwait_ms = 5000\n", "batching.wait_ms"),
        (lambda t: t + "[batching]\nmax_schedules = 21\n", "batching.max_schedules"),
        (lambda t: t + "[throttle]\nmax_concurrency = 0\n", "throttle.max_concurrency"),
        (lambda t: t + "[throttle]\nmailbox_budget = 10001\n", "throttle.mailbox_budget"),
        (lambda t: t + "[throttle]\nbreaker_failures = 0\n", "throttle.breaker_failures"),
        (lambda t: t + "[throttle]\nbreaker_cool_down_seconds = 0\n", "throttle.breaker_cool"),
        (lambda t: t + "[ical]\ndefault_days = 181\n", "ical.default_days"),
        (lambda t: t + '[ical]\nworking_elsewhere = "FREE"\n', "ical.working_elsewhere"),
        (lambda t: "port = [", "not valid TOML"),
        # TOML's inf passes a lower bound, then breaks what uses it (int(inf) in a cookie's
        # max-age is a 500 on /connect/individual).
        (
            lambda t: t + "[connect]\nflow_timeout_seconds = inf\n",
            "connect.flow_timeout_seconds: must be a finite number",
        ),
        (
            lambda t: t.replace('client_id = "c"', 'client_id = "c"\ntimeout_seconds = inf'),
            "graph.timeout_seconds: must be a finite number",
        ),
        (lambda t: t + "[cache]\nttl_seconds = inf\n", "cache.ttl_seconds: must be a finite"),
        (
            lambda t: t + "[throttle]\nbreaker_cool_down_seconds = inf\n",
            "throttle.breaker_cool_down_seconds: must be a finite number",
        ),
    ],
)
def test_each_mistake_names_its_key(tmp_path: Path, edit: Any, names: str) -> None:
    """Every kind of mistake is refused with a message naming the offending key."""
    found = problems(tmp_path, edit(VALID))
    assert any(names in problem for problem in found), found


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    """Mistakes in several sections and every missing secret come back together, in one run."""
    text = VALID.replace("port = 9090", 'port = "x"') + (
        'granularity_minutes = 7\n[cache]\nmax_entries = 0\n[connect]\nkinds = ["individual"]\n'
    )
    found = problems(tmp_path, text, environ={})
    for expected in (
        "server.port",
        "consumers[0].granularity_minutes",
        "cache.max_entries",
        CLIENT_SECRET_ENV,
        TOKEN_KEY_ENV,
        AUDIT_KEY_ENV,
    ):
        assert any(expected in problem for problem in found), (expected, found)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({AUDIT_KEY_ENV: "a" * 40}, CLIENT_SECRET_ENV),
        ({CLIENT_SECRET_ENV: "s"}, AUDIT_KEY_ENV),
        ({CLIENT_SECRET_ENV: "s", AUDIT_KEY_ENV: "short"}, AUDIT_KEY_ENV),
    ],
)
def test_missing_secrets_are_problems(
    tmp_path: Path, environ: dict[str, str], missing: str
) -> None:
    """The client secret and the audit key are required; the audit key has a minimum length."""
    assert any(missing in problem for problem in problems(tmp_path, VALID, environ))


def test_the_audit_key_is_not_needed_when_nothing_is_hashed(tmp_path: Path) -> None:
    """audit_addresses = true or enabled = false: no audit key is asked for."""
    for audit in ("audit_addresses = true", "enabled = false"):
        text = VALID + f"[audit]\n{audit}\n"
        load_settings(write(tmp_path, text), environ={CLIENT_SECRET_ENV: "s"})


def test_connect_needs_a_valid_token_key(tmp_path: Path) -> None:
    """[connect] kinds: FREEBUSY_PROXY_TOKEN_KEY must be a Fernet key; paths resolve."""
    text = VALID + '[connect]\nkinds = ["individual"]\nstorage_path = "c.db"\n'
    for key in (None, "not-a-fernet-key"):
        environ = ENV if key is None else {**ENV, TOKEN_KEY_ENV: key}
        assert any(TOKEN_KEY_ENV in p for p in problems(tmp_path, text, environ))
    settings = load_settings(write(tmp_path, text), environ={**ENV, TOKEN_KEY_ENV: TOKEN_KEY})
    assert settings.connect.storage_path == tmp_path / "c.db"
    assert settings.connect.token_key == TOKEN_KEY
    assert settings.connect.strict_scopes is True


def test_token_key_may_list_several_keys_during_a_rotation(tmp_path: Path) -> None:
    """Comma-separated Fernet keys are accepted; a bad or repeated one is named."""
    text = VALID + '[connect]\nkinds = ["individual"]\n'
    other = "3C0mWmzUv9q8f8xq3RjR3n6mW4q3G1o7gQ5xJ2kYb8E="
    settings = load_settings(
        write(tmp_path, text), environ={**ENV, TOKEN_KEY_ENV: f"{other}, {TOKEN_KEY}"}
    )
    assert settings.secrets()[-2:] == [other, TOKEN_KEY]
    for value, says in (
        (f"{other},nope", "key 2 of 2"),
        (f"{TOKEN_KEY},{TOKEN_KEY}", "listed twice"),
    ):
        (problem,) = problems(tmp_path, text, {**ENV, TOKEN_KEY_ENV: value})
        assert says in problem
        assert TOKEN_KEY not in problem


def test_postgresql_store_takes_its_password_from_the_environment(tmp_path: Path) -> None:
    """storage_url: a postgresql:// URL; a password in it is refused; the variable fills it."""
    connect = '[connect]\nkinds = ["individual"]\nstorage_url = "{}"\n'
    environ = {**ENV, TOKEN_KEY_ENV: TOKEN_KEY, DATABASE_PASSWORD_ENV: "db-pass-xyz"}
    url = "postgresql://freebusy@db.example:5432/freebusy?sslmode=require"
    settings = load_settings(write(tmp_path, VALID + connect.format(url)), environ=environ)
    assert settings.connect.storage_url == url
    assert settings.connect.database_password == "db-pass-xyz"
    assert "db-pass-xyz" not in repr(settings)
    assert "db-pass-xyz" in settings.secrets()
    for bad, says in (
        ("postgresql://freebusy:hunter2@db.example/freebusy", DATABASE_PASSWORD_ENV),
        ("mysql://db.example/freebusy", "connect.storage_url"),
        ("postgresql://db.example:port/freebusy", "not a valid URL"),
    ):
        found = problems(tmp_path, VALID + connect.format(bad), environ)
        assert any(says in p for p in found), found
        assert not any("hunter2" in p for p in found)
    file_password = VALID + '[connect]\ndatabase_password = "x"\n'
    assert any(DATABASE_PASSWORD_ENV in p for p in problems(tmp_path, file_password, environ))


def test_connect_section_is_validated(tmp_path: Path) -> None:
    """[connect]: unknown kinds, a token key in the file and bad hashes are rejected by name."""
    graph = {"tenant_id": "t", "client_id": "c"}
    environ = {**ENV, TOKEN_KEY_ENV: TOKEN_KEY}
    for connect, key in (
        ({"kinds": ["everyone"]}, "connect.kinds"),
        ({"token_key": "x"}, "connect.token_key"),
        ({"admin_key_sha256": "nothex"}, "connect.admin_key_sha256"),
        ({"redirect_uri": "ftp://x"}, "connect.redirect_uri"),
        ({"application_permissions": False}, "connect.application_permissions"),
        ({"strict_scopes": "yes"}, "connect.strict_scopes"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_settings({"graph": graph, "connect": connect}, environ=environ, base_dir=tmp_path)


def test_check_config_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config exits 0 on a valid file and environment, 2 listing every problem."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", str(write(tmp_path, VALID))]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check-config", str(write(tmp_path, VALID + "[nope]\n[nix]\n"))]) == 2
    err = capsys.readouterr().err
    assert "2 configuration errors" in err
    assert "nope: unknown key" in err
    assert "nix: unknown key" in err


def _run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command line, in a child with only ``environ`` of the proxy's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "proxy", *args],
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_come_from_the_environment_by_one_naming_rule(tmp_path: Path) -> None:
    """FREEBUSY_PROXY_<SECTION>__<KEY> overrides the file's key, read as the key's type."""
    environ = {
        **ENV,
        "FREEBUSY_PROXY_SERVER__PORT": "9999",
        "FREEBUSY_PROXY_SERVER__HOST": "0.0.0.0",  # noqa: S104
        "FREEBUSY_PROXY_CACHE__TTL_SECONDS": "5",
        "FREEBUSY_PROXY_AUDIT__AUDIT_ADDRESSES": "true",
        "FREEBUSY_PROXY_CONNECT__KINDS": "individual, enterprise",
        "FREEBUSY_PROXY_CONNECT__STORAGE_PATH": "c.db",
        # Listening everywhere with connect on needs it (the Host header would choose it).
        "FREEBUSY_PROXY_CONNECT__REDIRECT_URI": "https://freebusy.example/connect/callback",
        "FREEBUSY_PROXY_CORS__ALLOW_ORIGINS": "",
        "freebusy_proxy_limits__max_schedules": "7",
        TOKEN_KEY_ENV: TOKEN_KEY,
    }
    settings = load_settings(write(tmp_path, VALID), environ=environ)
    assert settings.server.port == 9999  # the file says 9090
    assert settings.server.host == "0.0.0.0"  # noqa: S104
    assert settings.cache.ttl_seconds == 5.0
    assert settings.audit.audit_addresses is True
    assert settings.connect.kinds == ("individual", "enterprise")
    assert settings.connect.storage_path == tmp_path / "c.db"  # beside the file, as in it
    assert settings.cors.allow_origins == ()
    assert settings.limits.max_schedules == 7


def test_an_empty_variable_unsets_an_optional_key_of_the_file(tmp_path: Path) -> None:
    """A container can take back an optional key the shared file sets; a required or typed
    key cannot be emptied that way."""
    text = VALID.replace('client_id = "c"', 'client_id = "c"\nca_file = "missing.pem"')
    assert problems(tmp_path, text)  # the file alone names a missing CA file
    environ = {**ENV, "FREEBUSY_PROXY_GRAPH__CA_FILE": ""}
    assert load_settings(write(tmp_path, text), environ=environ).graph.ca_file is None
    found = problems(tmp_path, VALID, {**ENV, "FREEBUSY_PROXY_SERVER__PORT": ""})
    assert any(p.startswith("FREEBUSY_PROXY_SERVER__PORT: server.port: must be an") for p in found)


def test_environment_settings_are_judged_like_the_file(tmp_path: Path) -> None:
    """A bad variable is named with the key it sets; secrets and consumers are not taken."""
    environ = {
        **ENV,
        "FREEBUSY_PROXY_SERVER__PORT": "99999",
        "FREEBUSY_PROXY_SERVER__PROT": "1",
        "FREEBUSY_PROXY_NOPE__X": "1",
        "FREEBUSY_PROXY_CACHE__TTL_SECONDS": "soon",
        "FREEBUSY_PROXY_CACHE__STALE_MAX_AGE_SECONDS": "inf",
        "FREEBUSY_PROXY_CONNECT__KINDS": "everyone",
        "FREEBUSY_PROXY_GRAPH__CLIENT_SECRET": "s",
        "FREEBUSY_PROXY_CONSUMERS__NAME": "x",
    }
    found = problems(tmp_path, VALID, environ)
    for expected in (
        "FREEBUSY_PROXY_SERVER__PORT: server.port: must be at most 65535",
        "FREEBUSY_PROXY_SERVER__PROT: [server] has no key 'prot'",
        "FREEBUSY_PROXY_NOPE__X: no section [nope]",
        "FREEBUSY_PROXY_CACHE__TTL_SECONDS: cache.ttl_seconds: must be a number",
        "FREEBUSY_PROXY_CACHE__STALE_MAX_AGE_SECONDS: cache.stale_max_age_seconds: must be a "
        "finite number",
        "FREEBUSY_PROXY_CONNECT__KINDS: connect.kinds[0]: 'everyone' is not one of",
        f"FREEBUSY_PROXY_GRAPH__CLIENT_SECRET: secrets are read only from {CLIENT_SECRET_ENV}",
        "FREEBUSY_PROXY_CONSUMERS__NAME: [[consumers]] entries come only from the config file",
    ):
        assert any(problem.startswith(expected) for problem in found), (expected, found)
    # A section enabled from the environment asks for its secrets like one in the file.
    found = problems(tmp_path, VALID, {**ENV, "FREEBUSY_PROXY_CONNECT__KINDS": "individual"})
    assert any(TOKEN_KEY_ENV in problem for problem in found)


@pytest.mark.parametrize(
    ("extra", "environ"),
    [
        ("", {}),
        ("", {CLIENT_SECRET_ENV: "s"}),
        ('[connect]\nkinds = ["individual"]\n', ENV),
        ("[cache]\nmax_entries = 0\n", ENV),
        ("", {**ENV, "FREEBUSY_PROXY_SERVER__PORT": "65536"}),
        ("", {**ENV, "FREEBUSY_PROXY_CONNECT__KINDS": "enterprise"}),
        ('[audit]\nfile = "missing/audit.jsonl"\n', ENV),
        ('[audit]\nfile = "."\n', ENV),
    ],
)
def test_check_config_fails_exactly_when_serve_would(
    tmp_path: Path, extra: str, environ: dict[str, str]
) -> None:
    """For a refused configuration, check-config and serve exit 2 with the same problems."""
    path = write(tmp_path, VALID + extra)
    checked = _run(["check-config", str(path)], environ)
    served = _run(["serve", "--config", str(path), "--port", "0"], environ)
    assert checked.returncode == served.returncode == 2, (checked.stderr, served.stderr)
    assert checked.stderr.strip().splitlines() == served.stderr.strip().splitlines()
    assert "Traceback" not in served.stderr


def test_new_key_prints_key_and_matching_hash(capsys: pytest.CaptureFixture[str]) -> None:
    """new-key prints a key and the SHA-256 the config needs for it."""
    import hashlib

    assert main(["new-key"]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    key, digest = lines["key"].strip(), lines["key_sha256"].strip()
    assert hashlib.sha256(key.encode()).hexdigest() == digest
