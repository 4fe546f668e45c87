"""Deterministic derivations: canary markers, seeded randomness, directory object ids."""

from __future__ import annotations

import hashlib
import random
import uuid

from proxy.mock.settings import CANARY_PREFIX


def _digest(parts: tuple[object, ...]) -> bytes:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()


def canary(kind: str, *parts: object) -> str:
    """Return ``CANARY-<kind>-<12 hex>``, the same for the same parts and unique otherwise."""
    return f"{CANARY_PREFIX}-{kind}-{_digest((kind, *parts)).hex()[:12]}"


def seeded_random(*parts: object) -> random.Random:
    """Return a generator seeded from ``parts`` alone (stable across runs, unlike ``hash()``)."""
    return random.Random(int.from_bytes(_digest(parts)[:8], "big"))  # noqa: S311


def stable_object_id(*parts: str) -> str:
    """Return a GUID that is the same for the same parts (directory object ids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mock-graph:" + ":".join(parts)))
