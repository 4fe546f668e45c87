"""A real PostgreSQL server for tests: Debian's binaries, a throw-away cluster, a free port.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(``runuser``); otherwise to whoever runs the tests. Password authentication is on, so the
proxy's FREEBUSY_PROXY_DATABASE_PASSWORD path is what the tests exercise.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


@dataclass(frozen=True, kw_only=True)
class PostgresServer:
    """A running cluster: where it listens, and the superuser's password."""

    host: str
    port: int
    password: str
    folder: Path

    def url(self, database: str) -> str:
        """The storage_url of ``database`` (no password: that comes from the environment)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(
            "PostgreSQL is not installed: apt-get install postgresql (.ci/run does it)"
        )
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *command] if os.geteuid() == 0 else command


def start_postgres() -> PostgresServer:
    """initdb a cluster in a fresh folder and start it on a free loopback port."""
    bin_dir = _bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="freebusy-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SUPERUSER)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    password = secrets.token_urlsafe(24)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    data = folder / "data"
    subprocess.run(  # noqa: S603 (our own arguments)
        _as_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(  # noqa: S603 (our own arguments)
        _as_owner(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    return PostgresServer(host="127.0.0.1", port=port, password=password, folder=folder)


def stop_postgres(server: PostgresServer) -> None:
    """Stop the cluster and remove its folder."""
    subprocess.run(  # noqa: S603 (our own arguments)
        _as_owner(
            [
                str(_bin_dir() / "pg_ctl"),
                "-D",
                str(server.folder / "data"),
                "-m",
                "immediate",
                "stop",
            ]
        ),
        check=False,
        capture_output=True,
    )
    shutil.rmtree(server.folder, ignore_errors=True)
