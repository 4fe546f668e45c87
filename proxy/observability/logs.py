"""Structured logs (one JSON object per line) with secrets redacted as a second line of defence.

The first line of defence is not logging secrets at all. This module catches what slips
through anyway, at every level and in tracebacks: bearer tokens, JWTs, consumer keys,
OAuth form fields (client_secret, refresh_token, …) and any literal secret registered at
start-up (the client secret). The handler redacts every record that reaches it, once, from
any logger (aiohttp, msal, urllib3 included). aiohttp's HTTP parser logs the first 100 bytes
of an over-long header, which can be an Authorization header: its logger (``proxy.http``,
given to aiohttp by ``proxy.web.app.runner_kwargs``) redacts at the source, so no
handler at all sees that key.

Lines logged on every request (the access log) need not be records at all: ``direct_lines``
gives a logger whose records would only reach our own handler a writer of finished lines,
redacted once per distinct fixed part and written together once per turn of the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import select
import sys
import time
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO

REDACTED = "[redacted]"
HTTP_LOGGER = "proxy.http"
# The most written at once: what a pipe takes atomically, so workers sharing standard error
# never interleave within a line.
_ATOMIC_WRITE = select.PIPE_BUF
# Fixed parts of direct lines remembered redacted (method, route, status: a few dozen in use).
_FIXED_KEPT = 1024
# Set on a record once RedactingFilter has rewritten it: it is not redacted again.
_REDACTED_MARK = "proxy_redacted"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A whole Authorization header, whatever its scheme ("Token", "Digest", "Negotiate", …).
    (
        re.compile(r"(?i)\b((?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\r\n\"'}\\]+"),
        rf"\1{REDACTED}",
    ),
    # Authorization header values, in any quoting.
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[^\s,;\"'\\)]+"), rf"\1 {REDACTED}"),
    # JWTs (access and id tokens): base64url JSON header always starts "eyJ".
    (re.compile(r"eyJ[A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]*)*"), REDACTED),
    # Consumer API keys and calendar feed tokens as `new-key` / `new-feed` make them.
    (re.compile(r"fb[pf]_[A-Za-z0-9_\-]+"), REDACTED),
    # OAuth form fields and JSON members that carry secrets.
    (
        re.compile(
            r"(?i)\b(client_secret|client_assertion|refresh_token|access_token|id_token|"
            r"assertion|password|code_verifier|device_code)(\\?[\"']?\s*[=:]\s*\\?[\"']?)"
            r"[^\s&\"',;}\\]+"
        ),
        rf"\1\2{REDACTED}",
    ),
)


# What aiohttp's HTTP parser quotes of a request it refuses: the start of the offending line or
# header value, as a bytes literal. The header's name is not quoted with it, so a value of any
# Authorization scheme ("Token ...", "Digest ...") cannot be told apart: every excerpt goes.
_PARSER_EXCERPT = re.compile(r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"', re.S)


class Redactor:
    """Replaces secrets in text: known patterns plus registered literal values.

    ``excerpts``: also replace every bytes literal, as aiohttp's parser quotes request bytes.
    """

    def __init__(self, literals: Iterable[str] = (), *, excerpts: bool = False) -> None:
        self._literals = tuple(sorted({s for s in literals if len(s) >= 8}, key=len, reverse=True))
        self._excerpts = excerpts

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``[redacted]``."""
        if self._excerpts:
            text = _PARSER_EXCERPT.sub(f"b'{REDACTED}'", text)
        for literal in self._literals:
            text = text.replace(literal, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so no handler, at any level, sees a secret.

    The message is rendered and redacted (args dropped), and a traceback is rendered,
    redacted and kept as text only.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the event
            message = f"{record.msg!r} (unformattable arguments)"
        record.msg, record.args = self.redactor(message), None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text, record.exc_info = self.redactor(text.rstrip("\n")), None
        elif record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        setattr(record, _REDACTED_MARK, True)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and, if any, the traceback."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line, redacted unless RedactingFilter already did."""
        redact = (lambda text: text) if getattr(record, _REDACTED_MARK, False) else self.redactor
        document = {
            "time": _line_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = redact(record.exc_text)
        if record.stack_info:
            document["stack"] = redact(record.stack_info)
        return json.dumps(document, ensure_ascii=False)


def _line_time(created: float) -> str:
    """A record's time as a line carries it: UTC, milliseconds, ``Z``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def http_logger() -> logging.Logger:
    """The logger aiohttp's server protocol reports bad requests to, redacted at the source:
    the request bytes its parser quotes are dropped whole."""
    logger = logging.getLogger(HTTP_LOGGER)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter(Redactor(excerpts=True)))
    return logger


class ProxyLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The proxy's own handler: JSON lines, redacted once by its filter; it also writes the
    finished lines of ``direct_lines`` writers, together, once per turn of the event loop."""

    def __init__(self, stream: IO[str], redactor: Redactor) -> None:
        super().__init__(stream)
        self.redactor = redactor
        self.setFormatter(JsonFormatter(redactor))
        self.addFilter(RedactingFilter(redactor))
        # Finished lines (newline included) not written yet; a deque: records may be
        # emitted from other threads (msal's), which write what is waiting first.
        self._lines: collections.deque[str] = collections.deque()
        self._flush_due = False

    def write_line(self, line: str) -> None:
        """Write a finished line before this turn of the event loop ends (at once off it)."""
        self._lines.append(line)
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_due = True
        loop.call_soon(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        """Write what is waiting, then the record: lines stay in the order they were logged."""
        if self._lines:
            self._write_lines()
        super().emit(record)

    def flush(self) -> None:
        """Write every waiting line and flush the stream."""
        self._flush_due = False
        self.acquire()
        try:
            if self._lines:
                self._write_lines()
            super().flush()
        finally:
            self.release()

    def _write_lines(self) -> None:
        """Hand the waiting lines to the stream in writes of whole lines, each at most a pipe's
        atomic size (unless one line is longer)."""
        lines, size = self._lines, 0
        chunk: list[str] = []
        while lines:
            line = lines.popleft()
            if chunk and size + len(line) > _ATOMIC_WRITE:
                self.stream.write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self.stream.write("".join(chunk))


class DirectLines:
    """INFO lines of one logger, written as finished JSON lines without a LogRecord.

    The message is a fixed part (redacted once, then remembered) and a tail that needs no
    redaction (numbers and units); the line reads exactly as JsonFormatter writes a record.
    """

    def __init__(self, handler: ProxyLogHandler, name: str) -> None:
        self._handler = handler
        self._head = f'", "level": "INFO", "logger": {json.dumps(name, ensure_ascii=False)}, '
        self._fixed: dict[str, str] = {}
        self._second = -1
        self._second_text = ""

    def info(self, fixed: str, tail: str) -> None:
        """Write one INFO line whose message is ``fixed`` then ``tail`` (digits, units)."""
        message = self._fixed.get(fixed)
        if message is None:
            message = self._remember(fixed)
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = _line_time(second)[:-5]
        millis = int((now - second) * 1000)
        self._handler.write_line(
            f'{{"time": "{self._second_text}.{millis:03d}Z{self._head}"message": '
            f'{message}{tail}"}}\n'
        )

    def _remember(self, fixed: str) -> str:
        """The fixed part redacted and as the start of a JSON string (no closing quote)."""
        if len(self._fixed) >= _FIXED_KEPT:
            # Emptied when full (only junk methods make it grow): an LRU costs more per line.
            self._fixed.clear()
        text = self._fixed[fixed] = json.dumps(self._handler.redactor(fixed), ensure_ascii=False)[
            :-1
        ]
        return text


def direct_lines(logger: logging.Logger) -> DirectLines | None:
    """A DirectLines writer for ``logger`` when its INFO records would reach only our own
    handler, through no filter of anyone else's; None when a LogRecord must be made."""
    if not logger.isEnabledFor(logging.INFO):
        return None
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    if len(found) != 1 or type(found[0]) is not ProxyLogHandler:
        return None
    handler = found[0]
    if handler.level > logging.INFO or len(handler.filters) != 1:
        return None
    return DirectLines(handler, logger.name)


def configure_logging(level: str, *, secrets: Iterable[str] = ()) -> None:
    """JSON lines on standard error, every record redacted; msal and urllib3 at WARNING.

    Like logging.basicConfig, it leaves a logging setup made by someone else (a test
    runner, an application embedding the proxy) alone. Called again, it replaces its own
    handler, so the literal secrets can be registered once the config is read.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, ProxyLogHandler)]
    if len(ours) != len(root.handlers):
        return
    for old in ours:
        root.removeHandler(old)
    root.addHandler(ProxyLogHandler(sys.stderr, Redactor(secrets)))
    root.setLevel(level)
    # urllib3 logs request lines at DEBUG; we report outcomes ourselves (msal's: in
    # proxy/sources/credentials.py).
    logging.getLogger("urllib3").setLevel(logging.WARNING)
