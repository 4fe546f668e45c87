"""A real redis-server on a free port, for the cluster tests: started, stopped, restarted."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
from pathlib import Path

import redis.asyncio as redis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process without persistence (``--save '' --appendonly no``)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where the proxy reaches it."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client of the test's own (close it with ``aclose()``)."""
        return redis.Redis(host="127.0.0.1", port=self.port)

    async def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: apt-get install redis-server (.ci/run does it)"
            )
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--loglevel", "warning",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client()
        try:
            async with asyncio.timeout(20):
                while True:
                    try:
                        if await client.ping():
                            return
                    except (redis.ConnectionError, OSError):
                        if self._process.returncode is not None:
                            raise RuntimeError("redis-server exited at start") from None
                        # Nothing to await but the server's socket: ask again shortly.
                        await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """Stop the server at once (SIGKILL: no goodbye to clients) and wait for it."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)
            await self._process.wait()
        self._process = None
