"""Config of policies, audit, CORS and parser limits: defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.access.consumers import ConsumerRegistry, new_key
from proxy.config.schema import AUDIT_KEY_ENV, load_settings
from proxy.core.errors import ConfigError
from proxy.core.model import Status

KEY, KEY_SHA = new_key()
BASE = f"""
[graph]
tenant_id = "t"
client_id = "c"
[[consumers]]
name = "scheduler"
key_sha256 = "{KEY_SHA}"
allow = ["*@contoso.example"]
"""


def load(tmp_path: Path, text: str, **environ: str):  # type: ignore[no-untyped-def]
    """Load a config file written from text."""
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    return load_settings(path, environ=environ)


def test_defaults(tmp_path: Path) -> None:
    """Exact detail, no grid, no look back, a year ahead, 600/min; audit on, hashed; no CORS."""
    settings = load(tmp_path, BASE)
    consumer = settings.consumers[0]
    assert (consumer.detail, consumer.granularity_minutes) == ("status", 0)
    assert (consumer.max_lookback_days, consumer.max_lookahead_days) == (0, 365)
    assert (consumer.max_window_days, consumer.max_schedules) == (None, None)
    assert consumer.rate_per_minute == 600
    assert settings.audit.enabled
    assert not settings.audit.audit_addresses
    assert settings.audit.hmac_key is None
    assert settings.audit.file is None
    assert settings.cors.allow_origins == ()
    assert (settings.server.max_line_size, settings.server.max_field_size) == (8190, 8190)


def test_policy_reaches_the_consumer(tmp_path: Path) -> None:
    """Configured keys become the consumer's Policy; the audit key and file are resolved."""
    text = BASE + (
        'detail = "busy"\ngranularity_minutes = 30\nbusy_statuses = ["busy", "oof"]\n'
        "max_window_days = 14\nmax_schedules = 5\nmax_lookback_days = 1\n"
        "max_lookahead_days = 60\nrate_per_minute = 10\n"
        '[audit]\nfile = "audit.jsonl"\n[cors]\nallow_origins = ["https://app.example:8443"]\n'
    )
    settings = load(tmp_path, text, **{AUDIT_KEY_ENV: "k" * 40})
    registry = ConsumerRegistry(settings.consumers)
    policy = registry.authenticate(f"Bearer {KEY}").policy
    assert policy.detail == "busy"
    assert policy.granularity_minutes == 30
    assert policy.busy_statuses == {Status.BUSY, Status.OOF}
    assert (policy.max_window_days, policy.max_schedules) == (14, 5)
    assert (policy.max_lookback_days, policy.max_lookahead_days, policy.rate_per_minute) == (
        1,
        60,
        10,
    )
    assert settings.audit.file == tmp_path / "audit.jsonl"
    assert settings.audit.hmac_key == "k" * 40
    assert "k" * 40 not in repr(settings)


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ('detail = "minimal"\n', "consumers[0].detail"),
        ("granularity_minutes = 7\n", "consumers[0].granularity_minutes"),
        ("granularity_minutes = -15\n", "consumers[0].granularity_minutes"),
        ("granularity_minutes = 2880\n", "consumers[0].granularity_minutes"),
        ("max_window_days = 0\n", "consumers[0].max_window_days"),
        ("max_schedules = 0\n", "consumers[0].max_schedules"),
        ("max_lookback_days = -1\n", "consumers[0].max_lookback_days"),
        ("max_lookahead_days = 0\n", "consumers[0].max_lookahead_days"),
        ("rate_per_minute = -1\n", "consumers[0].rate_per_minute"),
        ('rate_per_minute = "10"\n', "consumers[0].rate_per_minute: must be an integer"),
        ('[audit]\nhmac_key = "x"\n', "audit.hmac_key: secrets are not read from files"),
        ('[audit]\nenabled = "yes"\n', "audit.enabled: must be true or false"),
        ("[audit]\nverbose = true\n", "audit.verbose: unknown key"),
        ('[cors]\nallow_origins = ["*"]\n', "cors.allow_origins"),
        ('[cors]\nallow_origins = ["https://app.example/path"]\n', "cors.allow_origins"),
        ("[cors]\nmax_age_seconds = 100000\n", "cors.max_age_seconds"),
        ("[server]\nmax_line_size = 100\n", "server.max_line_size"),
        ("[server]\nmax_headers = 1000\n", "server.max_headers"),
    ],
)
def test_invalid_keys_are_named(tmp_path: Path, extra: str, names: str) -> None:
    """Every bad value is refused with a message naming the key."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, BASE + extra)
    assert names in str(caught.value)
