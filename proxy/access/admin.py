"""The admin key: who may list and delete connections."""

from __future__ import annotations

import hashlib
import hmac

from proxy.core.errors import Unauthorized


def require_admin(authorization: str | None, expected_sha256: str | None) -> None:
    """Return when ``Authorization: Bearer <key>`` holds the admin key; raise Unauthorized."""
    scheme, _, key = (authorization or "").partition(" ")
    if expected_sha256 is None or scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("an admin key is required")
    digest = hashlib.sha256(key.strip().encode("utf-8", "surrogateescape")).hexdigest()
    if not hmac.compare_digest(digest, expected_sha256):
        raise Unauthorized("an admin key is required")
