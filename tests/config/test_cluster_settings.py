"""[cluster]: off by default, its URL and CA judged, its secrets only from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from proxy.config.load import load_settings
from proxy.config.schema import CLUSTER_KEY_ENV, REDIS_PASSWORD_ENV
from proxy.run.workers import worker_settings
from tests.config.test_load import ENV, VALID, problems, write
from tests.support.paths import ROOT

CLUSTER_KEY = "k" * 32


def test_cluster_is_off_by_default(tmp_path: Path) -> None:
    """Without [cluster] nothing is shared and no cluster secret is needed."""
    settings = load_settings(write(tmp_path, VALID), environ=ENV)
    assert settings.cluster.redis_url is None
    assert worker_settings(settings, 4).graph.mailbox_concurrency == 1


def test_cluster_secrets_come_from_the_environment(tmp_path: Path) -> None:
    """The HMAC key and the password are read from their variables, kept out of repr, and
    known to the log redactor; --workers then shares through Redis instead of splitting."""
    text = VALID + '[cluster]\nredis_url = "rediss://redis.internal:6380/2"\n'
    environ = {**ENV, CLUSTER_KEY_ENV: CLUSTER_KEY, REDIS_PASSWORD_ENV: "pw-in-env"}
    settings = load_settings(write(tmp_path, text), environ=environ)
    assert settings.cluster.cluster_key == CLUSTER_KEY
    assert settings.cluster.redis_password == "pw-in-env"
    assert "pw-in-env" not in repr(settings)
    assert {CLUSTER_KEY, "pw-in-env"} <= set(settings.secrets())
    assert worker_settings(settings, 4) == settings


def test_cluster_problems_are_listed_together(tmp_path: Path) -> None:
    """A password in the URL, a CA without TLS, a bad URL and a missing key: all at once."""
    text = VALID + '[cluster]\nredis_url = "redis://:hunter2@redis:6379/0"\nca_file = "ca.pem"\n'
    found = problems(tmp_path, text)
    assert any("cluster.redis_url: no user or password" in p for p in found)
    assert any("cluster.ca_file: only for a TLS redis_url" in p for p in found)
    assert any(CLUSTER_KEY_ENV in p for p in found)
    assert not any("hunter2" in p for p in found)
    found = problems(tmp_path, VALID + '[cluster]\nredis_url = "http://redis"\n', ENV)
    assert any("cluster.redis_url" in p for p in found)
    found = problems(tmp_path, VALID + '[cluster]\nredis_url = "redis://redis:6379/99"\n')
    assert any("db 0 to 15" in p for p in found)
    found = problems(tmp_path, VALID + '[cluster]\ncluster_key = "x"\n')
    assert any(f"set {CLUSTER_KEY_ENV}" in p for p in found)


def test_check_config_refuses_a_cluster_without_its_key(tmp_path: Path) -> None:
    """check-config exits 2 and names the variable when [cluster] lacks its HMAC key."""
    path = write(tmp_path, VALID + '[cluster]\nredis_url = "redis://redis:6379/0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    result = subprocess.run(  # noqa: S603 (our own interpreter and a test file)
        [sys.executable, "-m", "proxy", "check-config", str(path)],
        cwd=ROOT, env={**env, **ENV}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert CLUSTER_KEY_ENV in result.stderr


def test_without_cluster_redis_is_never_imported() -> None:
    """Serving without [cluster] loads neither redis-py nor limits."""
    script = (
        "import sys, proxy.run.cli, proxy.web.app, proxy.sources.chain, proxy.run.workers; "
        "loaded = [m for m in ('redis', 'limits') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    result = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", script],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
