"""The thin SQL layer under the annotation store: one code path for SQLite and PostgreSQL.

SQL is written once with `?` placeholders and `{float}` / `{autoinc}` type slots; the dialect fills them in.
Connections come from a small pool (one transaction at a time each, so never shared between threads at once),
and every write runs in one short transaction that is committed (and, on SQLite with synchronous=FULL,
fsynced) before `transaction()` returns. The schema is versioned: MIGRATIONS are applied in order on open.
"""

from __future__ import annotations

import contextlib
import select
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BUSY_TIMEOUT_MS = 30_000
MAX_IDLE = 32  # idle connections kept for reuse; beyond that a returned connection is closed

# Ordered migrations: version -> statements. Never edit a shipped one; append a new version.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,"
        " created {float} NOT NULL)",
        "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, username TEXT NOT NULL REFERENCES users(username)"
        " ON DELETE CASCADE, created {float} NOT NULL, expires {float} NOT NULL)",
        "CREATE TABLE rating_items (item_id TEXT PRIMARY KEY, question_id TEXT NOT NULL, question TEXT NOT NULL,"
        " description TEXT NOT NULL, response TEXT NOT NULL, backbone TEXT NOT NULL, created {float} NOT NULL)",
        "CREATE TABLE label_items (item_id TEXT PRIMARY KEY, question_id TEXT NOT NULL, question TEXT NOT NULL,"
        " description TEXT NOT NULL, response TEXT NOT NULL, created {float} NOT NULL)",
        "CREATE TABLE ratings (rater TEXT NOT NULL, item_id TEXT NOT NULL REFERENCES rating_items(item_id),"
        " relevance INTEGER, structure INTEGER, helpfulness INTEGER, comment TEXT, skipped INTEGER NOT NULL"
        " DEFAULT 0, updated {float} NOT NULL, PRIMARY KEY (rater, item_id))",
        "CREATE TABLE labels (rater TEXT NOT NULL, item_id TEXT NOT NULL REFERENCES label_items(item_id),"
        " distortions TEXT, key_thought TEXT, confidence INTEGER, skipped INTEGER NOT NULL DEFAULT 0,"
        " updated {float} NOT NULL, PRIMARY KEY (rater, item_id))",
    ),
    # v2: the rater's "flag this item" switch, and failed-login records for throttling per user and client.
    2: (
        "ALTER TABLE ratings ADD COLUMN flag INTEGER",
        "CREATE TABLE login_failures (id {autoinc}, username TEXT NOT NULL, client TEXT NOT NULL, t {float} NOT NULL)",
        "CREATE INDEX login_failures_user ON login_failures (username, t)",
        "CREATE INDEX login_failures_client ON login_failures (client, t)",
    ),
}
LATEST_VERSION = max(MIGRATIONS)


@dataclass(frozen=True)
class Dialect:
    name: str
    float_type: str
    autoinc: str

    def sql(self, text: str) -> str:
        """Fill the type slots and, for PostgreSQL, turn `?` placeholders into `%s`."""
        text = text.replace("{float}", self.float_type).replace("{autoinc}", self.autoinc)
        return text.replace("?", "%s") if self.name == "postgresql" else text


SQLITE = Dialect("sqlite", "REAL", "INTEGER PRIMARY KEY AUTOINCREMENT")
POSTGRES = Dialect("postgresql", "DOUBLE PRECISION", "BIGSERIAL PRIMARY KEY")


class Tx:
    """A cursor wrapper for one transaction: `?`-style SQL in, tuples / dicts out."""

    def __init__(self, cur: Any, dialect: Dialect) -> None:
        self.cur, self.dialect = cur, dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        self.cur.execute(self.dialect.sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(self.dialect.sql(sql), [tuple(r) for r in rows])

    def all(self) -> list[dict[str, Any]]:
        names = [d[0] for d in self.cur.description]
        return [dict(zip(names, row, strict=True)) for row in self.cur.fetchall()]

    def one(self) -> dict[str, Any] | None:
        row = self.cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in self.cur.description], row, strict=True))

    def scalar(self) -> Any:
        row = self.cur.fetchone()
        return None if row is None else row[0]


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///abs/path` URL (or a plain path)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") - 1 :] if url.startswith("sqlite:////") else url[len("sqlite:///") :])
    if "://" in url:
        raise ValueError(f"database URL {url!r}: expected sqlite:///path or postgresql://user@host:port/db")
    return Path(url)


class Database:
    """Pooled connections to one SQLite file or PostgreSQL database, plus schema migrations."""

    def __init__(self, url: str) -> None:
        scheme = urlparse(url).scheme
        if scheme in ("postgresql", "postgres"):
            self.dialect, self.url, self.path = POSTGRES, url, None
        else:
            self.dialect, self.path = SQLITE, sqlite_path(url)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.url = f"sqlite:///{self.path.resolve()}"
        self._idle: list[Any] = []
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------ connections

    def _connect(self) -> Any:
        if self.dialect is POSTGRES:
            import psycopg

            return psycopg.connect(self.url, autocommit=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """Borrow a connection from the pool for one transaction.

        A pool, not one connection per thread: the app's worker threads come and go (anyio retires idle ones),
        and per-thread connections of dead threads stayed open until close(): a leak on PostgreSQL.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the annotation store is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None or not self._alive(conn):  # none idle, or the server went away (restart, failover)
            self._forget(conn)
            conn = self._connect()
            with self._lock:
                self._open.add(conn)
        try:
            yield conn
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < MAX_IDLE and not getattr(conn, "closed", False)
                if keep:
                    self._idle.append(conn)
            if not keep:
                self._forget(conn)

    def _alive(self, conn: Any) -> bool:
        """An idle PostgreSQL connection has nothing to read; if its socket is readable, the server has closed it
        (or sent the FATAL of a shutdown), so it is dropped before a transaction could fail on it."""
        if self.dialect is not POSTGRES:
            return True
        if conn.closed:
            return False
        if not hasattr(select, "poll"):  # not on Windows: the first call after a restart fails there instead
            return True
        try:
            poller = select.poll()  # poll, not select: no FD_SETSIZE limit in processes with many files open
            poller.register(conn.fileno(), select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def _forget(self, conn: Any) -> None:
        if conn is None:
            return
        with self._lock:
            self._open.discard(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def open_connections(self) -> int:
        """How many connections this store holds open (in use or idle)."""
        with self._lock:
            return len(self._open)

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        """One transaction; committed (durably) when the block ends, rolled back on any exception.

        SQLite writers take the write lock up front (BEGIN IMMEDIATE) so two writers never deadlock on an
        upgrade; PostgreSQL runs at READ COMMITTED and relies on ON CONFLICT for concurrent upserts.
        """
        with self.connection() as conn:
            if self.dialect is POSTGRES:
                with conn.transaction(), conn.cursor() as cur:
                    yield Tx(cur, self.dialect)
                return
            # Writers in this process queue on a lock instead of SQLite's sleep-and-retry busy handler, whose
            # back-off starved some threads for seconds under 16 concurrent raters; other processes still wait
            # through busy_timeout.
            with self._write_lock if write else contextlib.nullcontext():
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield Tx(cur, self.dialect)
                except BaseException:
                    conn.rollback()
                    raise
                else:
                    conn.commit()
                finally:
                    cur.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._open, self._idle = list(self._open), set(), []
        for conn in conns:
            with contextlib.suppress(Exception):  # a connection broken by a dead server is closed already
                conn.close()

    # ------------------------------------------------------------ schema

    def version(self) -> int:
        with self.transaction(write=False) as tx:
            if not self._has_table(tx, "schema_version"):
                return 0
            return int(tx.execute("SELECT MAX(version) FROM schema_version").scalar() or 0)

    def _has_table(self, tx: Tx, name: str) -> bool:
        if self.dialect is POSTGRES:
            return tx.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).scalar()
        return tx.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).scalar() is not None

    def migrate(self, target: int = LATEST_VERSION) -> int:
        """Apply the missing migrations up to `target` in one transaction (all or none); returns the version."""
        if self.dialect is POSTGRES:  # several app instances may open a fresh database at once
            with self.transaction() as tx:
                tx.execute("SELECT pg_advisory_xact_lock(727217)")
                return self._migrate(tx, target)
        with self.transaction() as tx:
            return self._migrate(tx, target)

    def _migrate(self, tx: Tx, target: int) -> int:
        if not self._has_table(tx, "schema_version"):
            tx.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied {float} NOT NULL)")
        current = int(tx.execute("SELECT MAX(version) FROM schema_version").scalar() or 0)
        if current > LATEST_VERSION:
            raise RuntimeError(f"database schema version {current} is newer than this code ({LATEST_VERSION})")
        for version in range(current + 1, target + 1):
            for statement in MIGRATIONS[version]:
                tx.execute(statement)
            tx.execute("INSERT INTO schema_version (version, applied) VALUES (?, ?)", (version, time.time()))
        return max(current, target)
