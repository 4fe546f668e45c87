"""The access log: one line per request, naming its route template, never the path itself.

Paths carry addresses (the feed route, the Graph drop-in's users/{id}) and query strings carry
addresses and tokens, so a line names the route a request matched, as the audit trail and the
metrics do; what no route serves is "unmatched".
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

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

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the access line."""
        self.logger.info(
            "%s %s %d %.1fms", request.method, route_template(request), response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        """Log only when INFO is on."""
        return self.logger.isEnabledFor(logging.INFO)
