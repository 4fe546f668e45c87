"""The OpenAPI 3.1 document: served at /openapi.json from the file shipped in the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web


@cache
def openapi_bytes() -> bytes:
    """The shipped proxy/openapi.json, read once."""
    return resources.files("proxy.web").joinpath("openapi.json").read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json: the document describing every consumer endpoint."""
    return web.Response(body=openapi_bytes(), content_type="application/json")
