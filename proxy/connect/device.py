"""Headless set-up: `freebusy-proxy connect enterprise --device-code` (msal's device flow)."""

from __future__ import annotations

import asyncio

import aiohttp
import msal

from proxy.config.schema import Settings
from proxy.connect.backends import open_store
from proxy.connect.msal_apps import build_app, error_code
from proxy.connect.onboarding import complete
from proxy.connect.registry import Connections
from proxy.connect.scopes import REQUESTED_SCOPES
from proxy.core.clock import MONOTONIC, SystemWallClock
from proxy.core.connections import Kind
from proxy.core.errors import Refusal
from proxy.sources.tls import client_ssl_context, requests_session


async def connect_with_device_code(settings: Settings, kind: Kind) -> int:
    """Print msal's sign-in instructions, wait for the person, store the connection.

    The device flow is a public-client flow (the registration must allow it); the connection
    is refreshed without the client secret. A proxy already running sees the connection
    within ``changes_poll_seconds`` (at once on PostgreSQL). Returns the process exit status.
    """
    store = await open_store(settings.connect)
    http = requests_session(settings.graph.ca_file)
    try:
        await store.migrate()
        cache = msal.SerializableTokenCache()
        app = await asyncio.to_thread(build_app, settings.graph, http, public=True, cache=cache)
        flow = await asyncio.to_thread(app.initiate_device_flow, list(REQUESTED_SCOPES))
        if "user_code" not in flow:
            print(f"freebusy-proxy: could not start the sign-in ({error_code(flow)})", flush=True)
            return 1
        print(flow["message"], flush=True)
        result = await asyncio.to_thread(app.acquire_token_by_device_flow, flow)
        if "access_token" not in result:
            print(f"freebusy-proxy: sign-in failed ({error_code(result)})", flush=True)
            return 1
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(settings.graph.ca_file))
        timeout = aiohttp.ClientTimeout(total=settings.graph.timeout_seconds)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            connections = Connections(
                settings=settings,
                store=store,
                session=session,
                http=http,
                clock=MONOTONIC,
                wall_clock=SystemWallClock(),
            )
            try:
                connection = await complete(
                    connections,
                    session,
                    kind=kind,
                    result=result,
                    token_cache=cache.serialize(),
                    public_client=True,
                )
            except Refusal as refusal:
                print(f"freebusy-proxy: connection refused ({refusal.reason})", flush=True)
                return 1
        print(
            f"Connected ({connection.kind}): {connection.account}, {connection.tenant_name}, "
            f"domains {', '.join(connection.domains)}; id {connection.id}",
            flush=True,
        )
        return 0
    finally:
        await asyncio.to_thread(http.close)
        await store.close()
