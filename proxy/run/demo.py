"""The demo: the proxy in front of the built-in mock Graph, with a fresh consumer key."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from proxy.access.consumers import new_key
from proxy.config.schema import (
    AuditSettings,
    ConnectSettings,
    ConsumerSettings,
    GraphSettings,
    ServerSettings,
    Settings,
)
from proxy.mock import (
    MOCK_CLIENT_ID,
    MOCK_CLIENT_SECRET,
    MOCK_DOMAIN,
    MOCK_TENANT_ID,
    MockSettings,
    RunningMock,
    start_mock,
)
from proxy.run.mock_config import availability_curl
from proxy.run.serving import BindFailure, listen_problem, start_site
from proxy.web.app import init_app, runner_kwargs

# Listening on every interface: the links printed use loopback, which works on this machine
# and, with the ports published, from a container's host.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}  # noqa: S104


def demo_settings(
    mock: RunningMock,
    *,
    host: str,
    port: int,
    key_sha256: str,
    storage_path: Path | None = None,
    admin_key_sha256: str | None = None,
) -> Settings:
    """Settings that point the proxy at a running mock and admit one demo consumer.

    With a ``storage_path``, both connect flows are enabled against the mock, with a token
    key made for this run only.
    """
    from cryptography.fernet import Fernet

    connect = (
        ConnectSettings()
        if storage_path is None
        else ConnectSettings(
            kinds=("individual", "enterprise"),
            storage_path=storage_path,
            token_key=Fernet.generate_key().decode(),
            admin_key_sha256=admin_key_sha256,
        )
    )
    return Settings(
        connect=connect,
        server=ServerSettings(host=host, port=port),
        graph=GraphSettings(
            tenant_id=MOCK_TENANT_ID,
            client_id=MOCK_CLIENT_ID,
            authority=mock.authority,
            base_url=mock.graph_base_url,
            ca_file=mock.ca_file,
            client_secret=MOCK_CLIENT_SECRET,
        ),
        consumers=(
            ConsumerSettings(name="demo", key_sha256=key_sha256, allow=(f"*@{MOCK_DOMAIN}",)),
        ),
        # A key for this run only: the demo's audit lines need not correlate across runs.
        audit=AuditSettings(hmac_key=secrets.token_urlsafe(32)),
    )


def demo_view_link(*, base: str, key: str, addresses: list[str]) -> str:
    """The week view with the demo key and a few people filled in, for the demo only.

    Key and addresses ride in the fragment: a browser never sends it to the server, so they
    reach no request line, access log or audit trail; the page reads it once and drops it.
    """
    return f"{base}/view#{urlencode({'key': key, 'schedules': ','.join(addresses)}, safe='@,')}"


def run_demo(*, host: str, port: int, mock_port: int = 0) -> int:
    """Run mock and proxy in one process until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_demo(host=host, port=port, mock_port=mock_port))
    return 0


async def _demo(*, host: str, port: int, mock_port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="freebusy-proxy-demo-") as cert_dir:
        try:
            # Beside the proxy, so a browser that reaches the proxy reaches the sign-in page.
            mock = await start_mock(
                settings=MockSettings(), host=host, port=mock_port, cert_dir=Path(cert_dir)
            )
        except OSError as exc:
            what = "the demo's mock Graph" + ("" if mock_port else "; port 0 is any free one")
            problem = listen_problem(exc, host, mock_port, what=what, option="--mock-port")
            raise BindFailure(problem) from None
        key, digest = new_key()
        admin_key, admin_digest = new_key()
        settings = demo_settings(
            mock,
            host=host,
            port=port,
            key_sha256=digest,
            storage_path=Path(cert_dir) / "connections.sqlite3",
            admin_key_sha256=admin_digest,
        )
        app = init_app(settings)
        runner = web.AppRunner(app, **runner_kwargs(settings.server))
        await runner.setup()
        try:
            bound_port = await start_site(runner, host, port)
            base = f"http://{_WILDCARDS.get(host, host)}:{bound_port}"
            people = mock.graph.organisation.addresses()[:3]
            curl = availability_curl(base=base, key=key, addresses=people, now=datetime.now(UTC))
            print(
                "freebusy-proxy demo: the proxy in front of a mock Microsoft Graph "
                f"(contoso.example, {len(mock.graph.organisation.addresses())} mailboxes).\n"
                f"  proxy:      {base}\n"
                f"  mock Graph: {mock.url}\n"
                f"  demo API key (this run only): {key}\n"
                f"  admin key (this run only):    {admin_key}\n\n"
                "Try:\n"
                f"  {curl}\n\n"
                "Or in a browser:\n"
                f"  Week view:  {demo_view_link(base=base, key=key, addresses=people)}\n"
                f"  Console:    {base}/console  (sign in with the admin key above)\n\n"
                "The examples in docs/ read these (paste into the other terminal):\n"
                f"  export PROXY={base} KEY={key} ADMIN_KEY={admin_key}\n\n"
                "Connect delegated access in a browser (the mock's CA is not trusted by your "
                "browser: accept its warning once):\n"
                f"  Individual Connect: {base}/connect/individual\n"
                f"  Enterprise Connect: {base}/connect/enterprise  (sign in as "
                f"{mock.graph.settings.admins[0]}, the mock's administrator)\n"
                f"  Connections:        curl -s -H 'Authorization: Bearer {admin_key}' "
                f"{base}/admin/connections\n\n"
                "Press Ctrl+C to stop.",
                flush=True,
            )
            await _until_signalled()
        finally:
            await runner.cleanup()
            await mock.close()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
