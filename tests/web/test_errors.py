"""One error path: the same refusal is recorded with the same stable code on every dialect."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.config.schema import AuditSettings
from proxy.mock import MOCK_DOMAIN, RunningMock
from tests.support.dialects import ask_everywhere
from tests.support.proxies import (
    AUDIT_KEY,
    KEY_ALL,
    KEY_ONE,
    ONE_ADDRESS,
    ProxyFactory,
    proxy_settings,
)

OTHER = f"megan.bowen@{MOCK_DOMAIN}"
DAY = ("2026-03-16T00:00:00Z", "2026-03-17T00:00:00Z")
LONG = ("2026-03-01T00:00:00Z", "2026-09-01T00:00:00Z")


@pytest.mark.parametrize(
    ("key", "address", "window", "outcome", "status"),
    [
        (KEY_ONE, OTHER, DAY, "schedule_not_allowed", 403),
        ("fbp_not-a-key", ONE_ADDRESS, DAY, "unauthorized", 401),
        (KEY_ALL, ONE_ADDRESS, LONG, "window_too_long", 400),
    ],
)
async def test_the_same_refusal_is_the_same_outcome_on_every_dialect(
    make_proxy: ProxyFactory,
    mock_graph: RunningMock,
    tmp_path: Path,
    key: str,
    address: str,
    window: tuple[str, str],
    outcome: str,
    status: int,
) -> None:
    """Each dialect answers in its own shape, and the audit line carries our stable code."""
    path = tmp_path / "audit.jsonl"
    settings = replace(
        proxy_settings(mock_graph), audit=AuditSettings(hmac_key=AUDIT_KEY, file=path)
    )
    proxy = await make_proxy(mock_graph, settings=settings)
    statuses = await ask_everywhere(proxy, key, address, window)
    assert set(statuses.values()) == {status}, statuses
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {line["route"]: line["outcome"] for line in lines} == dict.fromkeys(statuses, outcome)
