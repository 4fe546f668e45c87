"""Typed application state of the mock's aiohttp app."""

from __future__ import annotations

from aiohttp import web

from proxy.mock.state import MockGraph

GRAPH_KEY = web.AppKey("mock_graph", MockGraph)
