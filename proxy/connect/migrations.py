"""Versioned schema migrations: what each backend applies, in order, once, at start-up.

A store records the versions it applied in ``freebusy_proxy_schema``. ``serve`` (and every
command that opens the store) applies the missing ones; ``freebusy-proxy db migrate`` does it
explicitly. A store migrated by a newer proxy is refused rather than written with old rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.core.errors import ConfigError

VERSIONS_TABLE = "freebusy_proxy_schema"

Step = str | Callable[[Any], None]
"""A statement, or (SQLite) a function given the open database connection."""


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One schema version: what it changes, and the steps that get there."""

    version: int
    summary: str
    steps: tuple[Step, ...]


def pending(migrations: Sequence[Migration], applied: set[int]) -> list[Migration]:
    """The migrations not applied yet, in order; ConfigError for a store newer than this code."""
    latest = migrations[-1].version
    unknown = sorted(v for v in applied if v > latest)
    if unknown:
        raise ConfigError(
            f"the connection store has schema version {unknown[-1]}, newer than this "
            f"freebusy-proxy knows ({latest}): upgrade freebusy-proxy"
        )
    return [m for m in migrations if m.version not in applied]
