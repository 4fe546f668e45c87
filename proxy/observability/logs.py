"""Structured logs (one JSON object per line) with secrets redacted as a second line of defence.

The first line of defence is not logging secrets at all. This module catches what slips
through anyway, at every level and in tracebacks: bearer tokens, JWTs, consumer keys,
OAuth form fields (client_secret, refresh_token, …) and any literal secret registered at
start-up (the client secret). The handler redacts every record that reaches it, from any
logger (aiohttp, msal, urllib3 included). aiohttp's HTTP parser logs the first 100 bytes of
an over-long header, which can be an Authorization header: its logger (``proxy.http``,
given to aiohttp by ``proxy.web.app.runner_kwargs``) redacts at the source, so no
handler at all sees that key.
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
HTTP_LOGGER = "proxy.http"

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
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and, if any, the traceback."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line (redacted again: defence in depth)."""
        document = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
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


def http_logger() -> logging.Logger:
    """The logger aiohttp's server protocol reports bad requests to, redacted at the source:
    the request bytes its parser quotes are dropped whole."""
    logger = logging.getLogger(HTTP_LOGGER)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter(Redactor(excerpts=True)))
    return logger


class ProxyLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The proxy's own handler: JSON lines, redacted by a filter and again by the formatter."""


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
    redactor = Redactor(secrets)
    handler = ProxyLogHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    handler.addFilter(RedactingFilter(redactor))
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs request lines at DEBUG; we report outcomes ourselves (msal's: in
    # proxy/sources/credentials.py).
    logging.getLogger("urllib3").setLevel(logging.WARNING)
