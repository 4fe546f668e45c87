"""The access log: one line per request, naming its route template, never the path itself.

Paths carry addresses (the feed route, the Graph drop-in's users/{id}) and query strings carry
addresses and tokens, so a line names the route a request matched, as the audit trail and the
metrics do; what no route serves is "unmatched".

A line is written on every request, so when the proxy's own logging is in place it is written
as a finished line (``proxy.observability.logs.direct_lines``): the method, route and status
redacted once per distinct combination, no LogRecord, one write per turn of the event loop.
Under anyone else's logging set-up (a test runner, an embedding application) it is an
ordinary record.
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from proxy.observability.logs import direct_lines
from proxy.observability.metrics import method_label
from proxy.web.envelope import ROUTE_TEMPLATE, UNMATCHED


def route_template(request: BaseRequest) -> str:
    """The template of the route that answered ``request``, or "unmatched".

    The envelope notes it on the request; a request the HTTP parser refused never reached a
    route (it has no match info at all) and is "unmatched".
    """
    template: str = request.get(ROUTE_TEMPLATE, UNMATCHED)
    return template


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, route template, status, duration."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        # aiohttp makes one access logger per connection: the logging set-up is looked at once
        # per connection, not per request.
        self._direct = direct_lines(logger)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the access line."""
        if self._direct is not None:
            self._direct.info(
                f"{method_label(request.method)} {route_template(request)} {response.status}",
                f" {time * 1000:.1f}ms",
            )
            return
        self.logger.info(
            "%s %s %d %.1fms",
            method_label(request.method),
            route_template(request),
            response.status,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        """Log only when INFO is on."""
        return self.logger.isEnabledFor(logging.INFO)
