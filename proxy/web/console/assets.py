"""GET /static/{name}: the pages' stylesheet and scripts, package data the proxy serves."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

from proxy.web.console.frame import PAGE_HEADERS

_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@cache
def assets() -> dict[str, tuple[bytes, str]]:
    """Every static file by name, with its content type (read once, on first use)."""
    found: dict[str, tuple[bytes, str]] = {}
    for entry in files("proxy.web.console").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


async def static_file(request: web.Request) -> web.Response:
    """One of the shipped static files by name; 404 for anything else (no path is opened)."""
    found = assets().get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)
