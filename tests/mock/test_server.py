"""start_mock serves HTTPS under the names the project uses; serve_forever runs until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from proxy.mock import RunningMock
from proxy.sources.tls import client_ssl_context


async def test_urls_and_ca_file(mock: RunningMock, tmp_path: Path) -> None:
    """The URL has no trailing slash, authority is the URL, and the CA PEM is in cert_dir."""
    assert mock.url.startswith("https://127.0.0.1:")
    assert not mock.url.endswith("/")
    assert mock.authority == mock.url
    assert mock.graph_base_url == mock.url + "/v1.0"
    assert mock.ca_file.parent.parent == tmp_path
    assert mock.ca_file.name == "mock-ca.pem"
    assert mock.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")


async def test_certificate_is_valid_for_localhost_too(mock: RunningMock) -> None:
    """The certificate names localhost as well as 127.0.0.1 (and ::1, mock-graph)."""
    port = mock.url.rsplit(":", 1)[1]
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(mock.ca_file))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"https://localhost:{port}/_mock/organisation") as response,
    ):
        assert response.status == 200


async def test_untrusting_clients_are_refused(mock: RunningMock) -> None:
    """Without the mock's CA, TLS verification fails (the mock is not silently trusted)."""
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with session.get(f"{mock.url}/_mock/stats"):
                pass


def test_serve_forever_prints_how_to_connect_and_stops_on_sigterm(tmp_path: Path) -> None:
    """serve_forever prints URL, CA path, ids and the secret line, and exits cleanly on SIGTERM."""
    code = (
        "from pathlib import Path\n"
        "from proxy.mock import MockSettings, serve_forever\n"
        f"serve_forever(host='127.0.0.1', port=0, cert_dir=Path({str(tmp_path)!r}),"
        " settings=MockSettings())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-c", code]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:  # noqa: S603
        assert process.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("FREEBUSY_PROXY_CLIENT_SECRET=") for line in lines):
            line = process.stdout.readline()
            assert line, "serve_forever exited early"
            lines.append(line)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    text = "".join(lines)
    assert "https://127.0.0.1:" in text
    assert str(tmp_path / "mock-ca.pem") in text
    assert (tmp_path / "mock-ca.pem").exists()


def _idle_client(mock: RunningMock) -> ssl.SSLSocket:
    """A TLS client that makes one kept-alive request and reads the answer, then never reads
    again (a connection idle in requests' pool)."""
    host, port = "127.0.0.1", int(mock.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(mock.ca_file))
    tls = context.wrap_socket(
        socket.create_connection((host, port), timeout=5), server_hostname=host
    )
    tls.sendall(b"GET /_mock/organisation HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += tls.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    (length,) = (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(body) < length:
        body += tls.recv(65536)
    return tls


def _until_tcp_closed(tls: ssl.SSLSocket) -> None:
    """Read the connection's raw TCP bytes until the server closes it (5 s timeout)."""
    # Under a graceful TLS close only the server's close_notify arrives; TCP stays open.
    with socket.socket(fileno=os.dup(tls.fileno())) as raw:
        raw.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while raw.recv(4096):
                pass


async def test_close_cuts_idle_kept_alive_connections(mock: RunningMock) -> None:
    """close() ends a connection whose client never reads again at once, TCP and all, instead
    of waiting for a TLS goodbye that will not come (which left the transport open)."""
    tls = await asyncio.to_thread(_idle_client, mock)
    with tls:
        await mock.close()
        await asyncio.to_thread(_until_tcp_closed, tls)  # TimeoutError fails the test
