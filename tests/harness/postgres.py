"""A real PostgreSQL for the tests, started from the machine's binaries.

``initdb`` refuses to run as root, so as root the cluster is made and run by the
``postgres`` user (``runuser``); its directory must be writable by that user. The
server listens on 127.0.0.1 and a socket in its own directory, trusts local
connections, and is stopped (and its files removed) at the end of the session.
Each test gets its own database, created and dropped around it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Debian's packages put the binaries under a versioned directory, not on PATH.
_SEARCH = ("/usr/local/bin", "/usr/lib/postgresql/*/bin")


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None when missing."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for pattern in _SEARCH:
        for directory in sorted(Path("/").glob(pattern.lstrip("/")), reverse=True):
            if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
                return directory
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    user: str

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*_as_owner(), *args], check=True, capture_output=True, text=True, timeout=60
        )

    @classmethod
    def start(cls, bindir: Path) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="owui-bridge-pg-"))
        user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        server = cls(bindir, root, _free_port(), user)
        try:
            server._run(str(bindir / "initdb"), "-D", str(server.data), "-A", "trust", "-U",
                        user, "--no-sync")  # fmt: skip
            server._run(
                str(bindir / "pg_ctl"), "-D", str(server.data), "-w", "-l",
                str(root / "log"), "-o",
                f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}") from exc
        return server

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def psql_admin(self, sql: str) -> None:
        """Run one statement on the maintenance database (CREATE/DROP DATABASE)."""
        import asyncio

        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(self.url())
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(go())

    def database(self) -> Iterator[str]:
        """A new empty database for one test; dropped afterwards."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.psql_admin(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            self.psql_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
