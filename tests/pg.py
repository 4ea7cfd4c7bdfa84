"""A throwaway PostgreSQL server for tests and benchmarks: initdb in a temp dir, loopback port, trust auth.

initdb refuses to run as root, so as root the server runs as the `postgres` user (Debian's package creates
it) through runuser. `find_bin()` returns None when no PostgreSQL is installed; callers skip with a reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SKIP_REASON = "PostgreSQL not installed (Debian: apt-get install -y postgresql)"


def find_bin() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb, or the one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """Start with `start()`, get databases with `new_database()`, drop everything with `stop()`."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.bin = find_bin()
        if self.bin is None:
            raise RuntimeError(SKIP_REASON)
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="cbt-pg-"))
        self.data, self.port = self.root / "data", _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> PgServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")  # fmt: skip
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.fsync:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log, self._opts = self.root / "server.log", opts
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start")
        return self

    def crash_and_restart(self) -> None:
        """Immediate shutdown (no checkpoint: recovery replays the WAL on start, as after a crash), then start."""
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self._run(pg_ctl, "-D", str(self.data), "-o", self._opts, "-l", str(self.root / "server.log"), "-w", "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty place for one test: a new schema, selected by search_path in the URL (much cheaper
        than CREATE DATABASE, which copies a template and left ~500 MB to delete after the suite)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self._as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_server_fixture():  # defined lazily so that importing this module never needs pytest
    import pytest

    @pytest.fixture(scope="session")
    def pg_server():
        """One throwaway server per test session (fsync off: these tests check behaviour, not durability)."""
        if find_bin() is None:
            pytest.skip(SKIP_REASON)
        server = PgServer(fsync=False).start()
        yield server
        server.stop()

    return pg_server


pg_server = _pg_server_fixture()
