"""Reading a request body: within the configured time, as bytes; the one way handlers read one."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.core.errors import Code, ProblemError
from proxy.web.keys import SETTINGS


async def read_body(request: web.Request) -> bytes:
    """The whole body, or 408 when it does not arrive within ``server.body_timeout_seconds``.

    aiohttp limits the size (``client_max_size``: 413) but not the time; a client sending a
    byte a minute would otherwise hold a handler for as long as it likes.
    """
    timeout = request.config_dict[SETTINGS].server.body_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ProblemError(
            f"the request body did not arrive within {timeout:g} seconds",
            code=Code.REQUEST_TIMEOUT,
            status=408,
        ) from None
