"""What must never appear in a response, a log line or a file: the mock's canaries and secrets."""

from __future__ import annotations

from proxy.mock import MOCK_CLIENT_SECRET
from tests.support.connect import ADMIN_KEY
from tests.support.proxies import AUDIT_KEY, KEY_ALL, KEY_ONE

# The mock's access and id tokens are JWTs ("eyJ"); its refresh tokens start with "0.M.".
FORBIDDEN_MARKERS = (
    "CANARY",
    MOCK_CLIENT_SECRET,
    KEY_ALL,
    KEY_ONE,
    "eyJ",
    "0.M.",
    AUDIT_KEY,
    ADMIN_KEY,
)


def assert_no_leak(*texts: str) -> None:
    """Fail if any forbidden marker is in any of the texts."""
    for text in texts:
        for marker in FORBIDDEN_MARKERS:
            assert marker not in text, f"leaked {marker[:8]}…"
