"""The audit trail: one JSON line per consumer request, on its own stream or file.

A line says who asked (consumer name), what route, how many addresses and which (as an HMAC
unless ``audit_addresses = true``), the window, the outcome and how many Graph calls it
took. It never holds items, upstream text, keys or tokens.

Request handling code fills the per-request record of ``audit_record``; the request envelope
(``proxy.web.envelope``) writes the line when the request is done.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import select
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import IO

from aiohttp import web

from proxy.config.schema import AUDIT_KEY_ENV, AuditSettings
from proxy.core.clock import WallClock
from proxy.core.errors import ConfigError
from proxy.core.timefmt import format_instant, format_utc
from proxy.observability.audit_record import AuditRecord
from proxy.web.keys import AUDIT_TRAIL, SETTINGS, WALL_CLOCK

# Routes that are not consumer requests: probes and scrapes would drown the trail.
UNAUDITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MIN_KEY_LENGTH = 32
# Addresses whose pseudonyms are remembered: an HMAC per address per request was a tenth of
# a cached request's CPU, and a scheduling app asks about the same few people all day.
_PSEUDONYMS_KEPT = 4096
# Tails remembered, and the longest remembered (a request for many addresses is not kept).
_TAILS_KEPT = 4096
# The most written at once: what a pipe takes atomically (POSIX guarantees 512, Linux 4096).
ATOMIC_WRITE = select.PIPE_BUF
_TAIL_KEPT_LENGTH = 1024


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

    def __init__(
        self, settings: AuditSettings, clock: WallClock, *, stream: IO[str] | None = None
    ) -> None:
        # stream: where lines go instead of the configured destination (tests, embedding).
        self._given = stream
        self._settings = settings
        self._clock = clock
        key = settings.hmac_key or ""
        self._key = key.encode()
        self._stream: IO[str] | None = None
        self._owned = False
        self._pseudonyms: dict[str, str] = {}
        # Rendered line tails by request: a scheduling app repeats the same request all day.
        self._tails: dict[tuple[object, ...], str] = {}
        # Finished requests whose lines are not written yet (see write()).
        self._pending: list[tuple[AuditRecord, str, int, str]] = []

    @property
    def enabled(self) -> bool:
        """Whether lines are written at all."""
        return self._settings.enabled

    def open(self) -> None:
        """Open the destination; a file is created readable by its owner only."""
        if self._given is not None:
            self._stream = self._given
            return
        if self._settings.file is None:
            self._stream = sys.stdout
            return
        fd = os.open(self._settings.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # Buffered: lines are flushed once per turn of the event loop (see write()).
        self._stream = os.fdopen(fd, "a", encoding="utf-8")
        self._owned = True

    def close(self) -> None:
        """Write what is pending, and close the file (standard output is left alone)."""
        self.flush()
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

    def line(
        self,
        record: AuditRecord,
        *,
        route: str,
        status: int,
        outcome: str,
        at: datetime | None = None,
    ) -> str:
        """The JSON line for a request finished ``at`` (default: now), built field by field."""
        time = format_instant(at or self._clock.now())
        return f'{{"time":"{time}",{self._kept_tail(record, route, status, outcome)}'

    def _kept_tail(self, record: AuditRecord, route: str, status: int, outcome: str) -> str:
        """_tail(), remembered per request shape: a scheduling app repeats itself all day."""
        key = (record.consumer, route, record.addresses, record.window, status, outcome,
               record.upstream_calls)  # fmt: skip
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tail(record, route=route, status=status, outcome=outcome)
            if len(tail) <= _TAIL_KEPT_LENGTH:
                if len(self._tails) >= _TAILS_KEPT:
                    self._tails.clear()
                self._tails[key] = tail
        return tail

    def _tail(self, record: AuditRecord, *, route: str, status: int, outcome: str) -> str:
        """Everything in a line after its time: the same for every repeat of a request."""
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
            f'"consumer":{_string(record.consumer)},"route":{_string(route)},'
            f'"addresses":{len(record.addresses)},'
            f'"schedules":[{",".join(map(_string, schedules))}],"window":{window},'
            f'"status":{int(status)},"outcome":{_string(outcome)},'
            f'"upstream_calls":{int(record.upstream_calls)}}}'
        )

    def write(self, record: AuditRecord, *, route: str, status: int, outcome: str) -> None:
        """Note one finished request; its line is written before the event loop's next turn ends."""
        if self._stream is None:
            return
        self._pending.append((record, route, status, outcome))
        if len(self._pending) == 1:
            # Lines are formatted and written once per turn of the loop, all together, rather
            # than a system call per request. Callbacks run in order, so this comes before any
            # I/O handled in the next turn: a client reading the trail after its response sees
            # its line.
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every line noted so far and hand them to the operating system."""
        pending, self._pending = self._pending, []
        if self._stream is None or not pending:
            return
        # One time for the lot, formatted once: they finished within this turn of the loop.
        head = f'{{"time":"{format_instant(self._clock.now())}",'
        chunk: list[str] = []
        size = 0
        for record, route, status, outcome in pending:
            line = f"{head}{self._kept_tail(record, route, status, outcome)}\n"
            if chunk and size + len(line) > ATOMIC_WRITE:
                self._write(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)  # lines are ASCII: characters are bytes
        self._write(chunk)

    def _write(self, lines: list[str]) -> None:
        """Hand whole lines to the operating system in one write."""
        # At most ATOMIC_WRITE bytes (unless one line is longer): workers sharing a pipe, as
        # standard output, never interleave within a line.
        assert self._stream is not None
        self._stream.write("".join(lines))
        self._stream.flush()


async def audit_trail_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the audit trail for the app's lifetime."""
    trail = AuditTrail(app[SETTINGS].audit, app[WALL_CLOCK])
    trail.open()
    app[AUDIT_TRAIL] = trail
    try:
        yield
    finally:
        trail.close()
