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
from datetime import datetime
from typing import IO

import msgspec

from proxy.config.schema import AuditSettings
from proxy.core.clock import WallClock
from proxy.core.errors import ConfigError
from proxy.core.timefmt import format_instant, format_utc
from proxy.observability.audit_record import AuditRecord

# Addresses whose pseudonyms are remembered: a scheduling app asks about the same few people
# all day, and an HMAC each time costs more than the rest of the line.
_PSEUDONYMS_KEPT = 4096
# The most written at once: what a pipe takes atomically (POSIX guarantees 512, Linux 4096).
ATOMIC_WRITE = select.PIPE_BUF


class AuditWindow(msgspec.Struct):
    """The window a request asked about, in UTC."""

    start: str
    end: str


class AuditLine(msgspec.Struct):
    """One line of the trail, field by field, in this order."""

    time: str
    consumer: str | None
    route: str
    addresses: int
    schedules: list[str]
    window: AuditWindow | None
    status: int
    outcome: str
    upstream_calls: int


_ENCODER = msgspec.json.Encoder()


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
        # Finished requests whose lines are not written yet (see write()).
        self._pending: list[tuple[AuditRecord, str, int, str]] = []

    @property
    def enabled(self) -> bool:
        """Whether lines are written at all."""
        return self._settings.enabled

    def open(self) -> None:
        """Open the destination; a file is created readable by its owner only.

        ConfigError when the file cannot be opened (the configuration check catches a missing
        folder; permissions show only here).
        """
        if self._given is not None:
            self._stream = self._given
            return
        if self._settings.file is None:
            self._stream = sys.stdout
            return
        try:
            fd = os.open(self._settings.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"audit.file: cannot open {self._settings.file} ({exc.strerror})"
            ) from None
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
        return self._encode(time, record, route, status, outcome).decode()

    def _encode(
        self, time: str, record: AuditRecord, route: str, status: int, outcome: str
    ) -> bytes:
        """One line's JSON, without its newline."""
        if self._settings.audit_addresses:
            schedules = [address.casefold() for address in record.addresses]
        else:
            schedules = [self.pseudonym(address) for address in record.addresses]
        window = record.window
        return _ENCODER.encode(
            AuditLine(
                time=time,
                consumer=record.consumer,
                route=route,
                addresses=len(record.addresses),
                schedules=schedules,
                window=None
                if window is None
                else AuditWindow(start=format_utc(window.start), end=format_utc(window.end)),
                status=status,
                outcome=outcome,
                upstream_calls=record.upstream_calls,
            )
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
        # One time for the lot: they finished within this turn of the loop.
        time = format_instant(self._clock.now())
        chunk: list[bytes] = []
        size = 0
        for record, route, status, outcome in pending:
            line = self._encode(time, record, route, status, outcome) + b"\n"
            if chunk and size + len(line) > ATOMIC_WRITE:
                self._write(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        self._write(chunk)

    def _write(self, lines: list[bytes]) -> None:
        """Hand whole lines to the operating system in one write."""
        # At most ATOMIC_WRITE bytes (unless one line is longer): workers sharing a pipe, as
        # standard output, never interleave within a line.
        assert self._stream is not None
        self._stream.write(b"".join(lines).decode())
        self._stream.flush()
