"""The ScheduleSource that sends each address to the connection covering it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from proxy.core.connections import Connection
from proxy.core.errors import UpstreamFailure
from proxy.core.model import ErrorCode, ScheduleResult, Window
from proxy.core.ports import ConnectionDirectory, ScheduleSource, TokenProvider

_FAILURE_CODES = {code.value: code for code in ErrorCode}
_CONSENT = ErrorCode.NEEDS_CONSENT

GraphFor = Callable[[TokenProvider, str], ScheduleSource]
"""A Graph source acting with these tokens as this mailbox (/me/calendar/getSchedule)."""


class RoutingScheduleSource:
    """Individual connection, then enterprise, then application credentials, else not_connected.

    A covering connection that lost its grant (needs_consent, over_privileged) answers
    ``needs_consent`` for its addresses, unless application credentials can serve them.
    """

    def __init__(
        self,
        *,
        connections: ConnectionDirectory,
        graph_for: GraphFor,
        application: ScheduleSource | None,
    ) -> None:
        self._connections = connections
        self._graph_for = graph_for
        self._application = application

    async def get_schedules(
        self, addresses: Sequence[str], window: Window
    ) -> dict[str, ScheduleResult]:
        """Fetch each group from its connection; a failing group fails only its addresses."""
        results: dict[str, ScheduleResult] = {}
        groups: dict[str, tuple[Connection | None, list[str]]] = {}
        for address in addresses:
            folded = address.casefold()
            connection = self._connections.route(folded)
            if connection is not None and connection.status == "connected":
                groups.setdefault(connection.id, (connection, []))[1].append(address)
            elif self._application is not None:
                groups.setdefault("", (None, []))[1].append(address)
            elif connection is not None:
                results[folded] = ScheduleResult.failed(ErrorCode.NEEDS_CONSENT)
            else:
                results[folded] = ScheduleResult.failed(ErrorCode.NOT_CONNECTED)
        outcomes = await asyncio.gather(
            *(self._fetch(connection, group, window) for connection, group in groups.values()),
            return_exceptions=True,
        )
        codes = [
            self._failure_code(connection, outcome)
            if isinstance(outcome, UpstreamFailure)
            else None
            for (connection, _), outcome in zip(groups.values(), outcomes, strict=True)
        ]
        upstream = [
            o
            for o, c in zip(outcomes, codes, strict=True)
            if isinstance(o, UpstreamFailure) and c is not _CONSENT
        ]
        if upstream and len(upstream) == len(outcomes) and not results:
            # Nothing answered at all: keep the whole-request 502/504 of a single source.
            raise upstream[0]
        for (_, group), outcome, code in zip(groups.values(), outcomes, codes, strict=True):
            if code is not None:
                for address in group:
                    results[address.casefold()] = ScheduleResult.failed(code)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.update(outcome)
        return results

    async def _fetch(
        self, connection: Connection | None, group: list[str], window: Window
    ) -> dict[str, ScheduleResult]:
        if connection is None:
            assert self._application is not None
            return await self._application.get_schedules(group, window)
        graph = self._graph_for(self._connections.tokens(connection), connection.account)
        return await graph.get_schedules(group, window)

    def _failure_code(self, connection: Connection | None, failure: UpstreamFailure) -> ErrorCode:
        if connection is not None:
            current = self._connections.get(connection.id)
            if current is None or current.status != "connected":
                return ErrorCode.NEEDS_CONSENT
        return _FAILURE_CODES.get(failure.code, ErrorCode.UPSTREAM_ERROR)
