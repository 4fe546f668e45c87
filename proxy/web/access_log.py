"""The access log: one line per request, naming no query string."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without query string, status, duration.

    Query strings carry addresses and keys could appear in headers, so neither is logged.
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the access line."""
        self.logger.info(
            "%s %s %d %.1fms", request.method, request.path, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        """Log only when INFO is on."""
        return self.logger.isEnabledFor(logging.INFO)
