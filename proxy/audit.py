"""The audit trail: one JSON line per consumer request, on its own stream or file.

A line says who asked (consumer name), what route, how many addresses and which (as an HMAC
unless ``audit_addresses = true``), the window, the outcome and how many Graph calls it
took. It never holds items, upstream text, keys or tokens.

Request handling code fills the per-request record of ``proxy.audit_record``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from collections.abc import AsyncIterator
from json.encoder import encode_basestring_ascii
from typing import IO

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.audit_record import CURRENT, AuditRecord
from proxy.clock import WallClock
from proxy.errors import ConfigError, ProblemError
from proxy.problems import http_error_code
from proxy.settings import AUDIT_KEY_ENV, AuditSettings
from proxy.timefmt import format_instant, format_utc
from proxy.typedefs import AUDIT_TRAIL, SETTINGS, WALL_CLOCK

# Routes that are not consumer requests: probes and scrapes would drown the trail.
_UNAUDITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MIN_KEY_LENGTH = 32
# Addresses whose pseudonyms are remembered: an HMAC per address per request was a tenth of
# a cached request's CPU, and a scheduling app asks about the same few people all day.
_PSEUDONYMS_KEPT = 4096


def _string(value: str | None) -> str:
    """A string (or None) as json.dumps writes it."""
    return "null" if value is None else encode_basestring_ascii(value)


def check_audit_settings(settings: AuditSettings) -> None:
    """Refuse to start when addresses would be hashed without a proper key.

    Neither fallback is acceptable: a random per-process key makes lines from different
    runs impossible to correlate, and an unkeyed hash of an e-mail address is reversed by
    hashing a staff list. The operator decides: set the key, or log addresses in clear.
    """
    if not settings.enabled or settings.audit_addresses:
        return
    if settings.hmac_key is None or len(settings.hmac_key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"audit: set {AUDIT_KEY_ENV} to a random string of at least {MIN_KEY_LENGTH} "
            "characters (addresses in the audit trail are HMACs with it), or set "
            "audit.audit_addresses = true, or audit.enabled = false"
        )


class AuditTrail:
    """Writes audit lines to standard output or to a file opened for appending."""

    def __init__(self, settings: AuditSettings, clock: WallClock) -> None:
        self._settings = settings
        self._clock = clock
        key = settings.hmac_key or ""
        self._key = key.encode()
        self._stream: IO[str] | None = None
        self._owned = False
        self._pseudonyms: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        """Whether lines are written at all."""
        return self._settings.enabled

    def open(self) -> None:
        """Open the destination; a file is created readable by its owner only."""
        if self._settings.file is None:
            self._stream = sys.stdout
            return
        fd = os.open(self._settings.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._stream = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._owned = True

    def close(self) -> None:
        """Close the file (standard output is left alone)."""
        if self._stream is not None and self._owned:
            self._stream.close()
        self._stream = None

    def pseudonym(self, address: str) -> str:
        """The HMAC-SHA256 of the case-folded address: stable across runs with one key."""
        found = self._pseudonyms.get(address)
        if found is None:
            found = hmac.new(self._key, address.casefold().encode(), hashlib.sha256).hexdigest()
            if len(self._pseudonyms) >= _PSEUDONYMS_KEPT:
                # A plain dict emptied when full: an LRU's bookkeeping cost more than a hit.
                self._pseudonyms.clear()
            self._pseudonyms[address] = found
        return found

    def line(self, record: AuditRecord, *, route: str, status: int, outcome: str) -> str:
        """The JSON line for a finished request, built field by field."""
        if self._settings.audit_addresses:
            schedules = [address.casefold() for address in record.addresses]
        else:
            schedules = [self.pseudonym(address) for address in record.addresses]
        # Assembled from JSON-encoded pieces: the same text as json.dumps(document,
        # separators=(",", ":")) (tested), at a third of its cost on every request.
        window = (
            "null"
            if record.window is None
            else f'{{"start":"{format_utc(record.window.start)}",'
            f'"end":"{format_utc(record.window.end)}"}}'
        )
        return (
            f'{{"time":"{format_instant(self._clock.now())}",'
            f'"consumer":{_string(record.consumer)},"route":{_string(route)},'
            f'"addresses":{len(record.addresses)},'
            f'"schedules":[{",".join(map(_string, schedules))}],"window":{window},'
            f'"status":{int(status)},"outcome":{_string(outcome)},'
            f'"upstream_calls":{int(record.upstream_calls)}}}'
        )

    def write(self, record: AuditRecord, *, route: str, status: int, outcome: str) -> None:
        """Append one line; a line is small, so the write does not hold up the loop."""
        if self._stream is None:
            return
        self._stream.write(self.line(record, route=route, status=status, outcome=outcome) + "\n")
        self._stream.flush()


def route_name(request: web.Request) -> str:
    """Method and route template; never the raw path, which a client controls."""
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "unmatched"
    return f"{request.method} {template}"


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Write one audit line per request, whatever its outcome (sits inside problem_middleware)."""
    trail = request.config_dict[AUDIT_TRAIL]
    if not trail.enabled or request.path in _UNAUDITED_PATHS:
        return await handler(request)
    record = AuditRecord()
    token = CURRENT.set(record)
    status, outcome = 500, "internal_error"
    try:
        response = await handler(request)
        # A dialect sub-app answers its own errors in its own shape: only the status is known.
        status = response.status
        outcome = "ok" if status < 400 else "failed"
        return response
    except ProblemError as exc:
        status, outcome = exc.status, exc.code
        raise
    except web.HTTPException as exc:
        status, outcome = exc.status, http_error_code(exc.status)
        raise
    except BaseException as exc:
        # The client went away (cancelled) or a bug: still one line.
        status, outcome = 500, "internal_error" if isinstance(exc, Exception) else "cancelled"
        raise
    finally:
        CURRENT.reset(token)
        trail.write(record, route=route_name(request), status=status, outcome=outcome)


async def audit_trail_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the audit trail for the app's lifetime."""
    trail = AuditTrail(app[SETTINGS].audit, app[WALL_CLOCK])
    trail.open()
    app[AUDIT_TRAIL] = trail
    try:
        yield
    finally:
        trail.close()
