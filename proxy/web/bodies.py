"""Reading a request body: within the configured time, as bytes; the one way handlers read one."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.core.errors import BadRequest, Code, ProblemError
from proxy.web.keys import SETTINGS


async def read_body(request: web.Request) -> bytes:
    """The whole body; 408 when it does not arrive within ``server.body_timeout_seconds``, 400
    when it is not what its headers say.

    aiohttp limits the size (``client_max_size``: 413) but not the time; a client sending a
    byte a minute would otherwise hold a handler for as long as it likes.
    """
    timeout = 0.0
    try:
        if request.content.is_eof():
            # All of it has arrived (a small body comes with its headers): nothing to time,
            # and no lookup of the settings through the app chain.
            return await request.read()
        timeout = request.config_dict[SETTINGS].server.body_timeout_seconds
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise ProblemError(
            f"the request body did not arrive within {timeout:g} seconds",
            code=Code.REQUEST_TIMEOUT,
            status=408,
        ) from None
    except web.RequestPayloadError:
        # Framing or Content-Encoding that does not hold (a "gzip" body that is not gzip).
        # Nothing more is read from it: aiohttp would otherwise read on after the answer
        # (its lingering close) and log the same error again, with a traceback.
        request.content.feed_eof()
        raise BadRequest(
            "the request body cannot be read as its headers describe it",
            code=Code.INVALID_REQUEST,
        ) from None
