"""Structured logs (one JSON object per line) with secrets redacted as a second line of defence.

The first line of defence is not logging secrets at all. This module catches what slips
through anyway, at every level and in tracebacks: bearer tokens, JWTs, consumer keys,
OAuth form fields (client_secret, refresh_token, …) and any literal secret registered at
start-up (the client secret). Third-party loggers (aiohttp, msal, urllib3) get the filter too:
aiohttp's HTTP parser, for one, logs the first 100 bytes of an over-long header, which can
be an Authorization header.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "[redacted]"
# The loggers whose records are redacted at the source (a filter on a logger only sees
# records logged to that very logger, so each is named).
REDACTED_LOGGERS = (
    "proxy",
    "proxy.http",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "msal",
    "msal.application",
    "msal.authority",
    "msal.oauth2cli",
    "msal.telemetry",
    "urllib3",
    "urllib3.connectionpool",
    "asyncio",
)
HTTP_LOGGER = "proxy.http"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values, in any quoting.
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[^\s,;\"'\\)]+"), rf"\1 {REDACTED}"),
    # JWTs (access and id tokens): base64url JSON header always starts "eyJ".
    (re.compile(r"eyJ[A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]*)*"), REDACTED),
    # Consumer API keys as `new-key` makes them.
    (re.compile(r"fbp_[A-Za-z0-9_\-]+"), REDACTED),
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


class Redactor:
    """Replaces secrets in text: known patterns plus registered literal values."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        self._literals = tuple(sorted({s for s in literals if len(s) >= 8}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``[redacted]``."""
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
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and, if any, the traceback."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line (redacted again: defence in depth)."""
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            if record.created
            else None,
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = self.redactor(record.exc_text)
        if record.stack_info:
            document["stack"] = self.redactor(record.stack_info)
        return json.dumps(document, ensure_ascii=False)


def redact_loggers(redactor: Redactor, names: Iterable[str] = REDACTED_LOGGERS) -> None:
    """Put one RedactingFilter (replacing any earlier one) on each named logger."""
    for name in names:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(old)
        logger.addFilter(RedactingFilter(redactor))


def http_logger() -> logging.Logger:
    """The logger aiohttp's server protocol reports bad requests to, redacted at the source."""
    logger = logging.getLogger(HTTP_LOGGER)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger


def configure_logging(level: str, *, secrets: Iterable[str] = ()) -> None:
    """JSON lines on standard error, redacted on every logger we know and at the handler."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    redact_loggers(redactor)
    # msal and urllib3 log request details at DEBUG/INFO; we report outcomes ourselves.
    # Redaction covers them anyway should someone turn them up.
    logging.getLogger("msal").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
