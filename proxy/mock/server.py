"""Serving the mock over HTTPS with a certificate authority made at start-up."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from proxy.mock.endpoints import create_mock_app
from proxy.mock.settings import (
    CLIENT_SECRET_ENV_VAR,
    MOCK_CLIENT_ID,
    MOCK_CLIENT_SECRET,
    MOCK_TENANT_ID,
    MockSettings,
)
from proxy.mock.state import MockGraph

CA_FILE_NAME = "mock-ca.pem"
# Every name a client may use to reach the mock, including the docker-compose service.
SERVER_NAMES = ("127.0.0.1", "::1", "localhost", "mock-graph")


class RunningMock:
    """A mock listening on HTTPS; ``close()`` stops it."""

    def __init__(
        self,
        *,
        url: str,
        ca_file: Path,
        graph: MockGraph,
        runner: web.AppRunner,
        server_cert_pem: bytes = b"",
    ) -> None:
        self.url = url
        self.server_cert_pem = server_cert_pem
        """PEM of the server's own (leaf) certificate, e.g. to pin it in a test browser."""
        """``https://host:port``, no trailing slash."""
        self.ca_file = ca_file
        """PEM of the CA that signed the server certificate."""
        self.graph = graph
        self._runner = runner

    @property
    def authority(self) -> str:
        """Return the identity platform's host; clients append ``/{tenant}``."""
        return self.url

    @property
    def graph_base_url(self) -> str:
        """Return the Graph API root, ``{url}/v1.0``."""
        return f"{self.url}/v1.0"

    def graph_config(self) -> str:
        """The ``[graph]`` section of a proxy config file that points at this mock."""
        return (
            f'[graph]\ntenant_id = "{MOCK_TENANT_ID}"\nclient_id = "{MOCK_CLIENT_ID}"\n'
            f'authority = "{self.authority}"\nbase_url = "{self.graph_base_url}"\n'
            f'ca_file = "{self.ca_file}"\n'
        )

    def client_credentials(self) -> dict[str, Any]:
        """How a client-credentials app signs in here: MsalAppTokens' keyword arguments."""
        return {
            "authority": self.authority,
            "tenant_id": MOCK_TENANT_ID,
            "client_id": MOCK_CLIENT_ID,
            "client_secret": MOCK_CLIENT_SECRET,
            "ca_file": self.ca_file,
        }

    async def close(self) -> None:
        """Stop listening and release the server's resources."""
        # The faults' latency must not hold the shutdown: release anything still waiting.
        self.graph.clear_faults()
        server = self._runner.server
        for handler in server.connections if server is not None else ():
            # Cut kept-alive connections at once: a TLS close waits for the client's goodbye,
            # and an idle pooled client (requests in msal) never reads to send it.
            if handler.transport is not None:
                handler.transport.abort()
        await self._runner.cleanup()


def _server_context(cert_dir: Path) -> tuple[ssl.SSLContext, Path, bytes]:
    """Return a server TLS context from a fresh CA, the CA's PEM path and the leaf's PEM."""
    authority = trustme.CA(organization_name="freebusy-proxy mock Graph")
    certificate = authority.issue_cert(*SERVER_NAMES)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_file = cert_dir / CA_FILE_NAME
    authority.cert_pem.write_to_path(str(ca_file))
    return context, ca_file, certificate.cert_chain_pems[0].bytes()


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


# Listening on every interface; clients on this machine reach the mock through loopback.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


async def start_mock(
    *,
    settings: MockSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    cert_dir: Path,
) -> RunningMock:
    """Start serving a new MockGraph over HTTPS on host:port (0 picks a free port)."""
    graph = MockGraph(settings or MockSettings())
    context, ca_file, leaf_pem = _server_context(cert_dir)
    runner = web.AppRunner(create_mock_app(graph), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=context)
        await site.start()
        bound_port = int(runner.addresses[0][1])
    except BaseException:
        await runner.cleanup()
        raise
    return RunningMock(
        url=_url(_LOOPBACK.get(host, host), bound_port),
        ca_file=ca_file,
        graph=graph,
        runner=runner,
        server_cert_pem=leaf_pem,
    )


async def _serve(
    *,
    host: str,
    port: int,
    cert_dir: Path,
    settings: MockSettings,
    on_ready: Callable[[RunningMock], None] | None,
) -> None:
    running = await start_mock(settings=settings, host=host, port=port, cert_dir=cert_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        bound = int(running.url.rsplit(":", 1)[1])
        print(f"Mock Microsoft Graph listening on {_url(host, bound)}", flush=True)
        print(f"  Graph base URL:  {running.graph_base_url}", flush=True)
        print(f"  Authority:       {running.authority}  (tenant appended)", flush=True)
        if settings.browser_url:
            print(f"  Browsers use:    {settings.browser_url}", flush=True)
        print(f"  CA certificate:  {running.ca_file}", flush=True)
        print(f"  Tenant id:       {settings.tenant_id}", flush=True)
        print(f"  Client id:       {settings.client_id}", flush=True)
        print(f"  Organisation:    {settings.org_size} mailboxes, seed {settings.seed}", flush=True)
        print(f"{CLIENT_SECRET_ENV_VAR}={settings.client_secret}", flush=True)
        if on_ready is not None:
            on_ready(running)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await running.close()


def serve_forever(
    *,
    host: str,
    port: int,
    cert_dir: Path,
    settings: MockSettings,
    on_ready: Callable[[RunningMock], None] | None = None,
) -> None:
    """Run the mock in the foreground until SIGINT or SIGTERM, printing how to reach it.

    ``on_ready`` is called once the mock listens, after its own lines are printed.
    """
    asyncio.run(
        _serve(host=host, port=port, cert_dir=cert_dir, settings=settings, on_ready=on_ready)
    )
