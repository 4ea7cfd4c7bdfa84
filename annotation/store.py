"""The annotation store: raters, rating items (Table 5), labelling items (Table 3's ground truth) and their rows.

SQLite by default (`<data dir>/annotation.sqlite3`, WAL, synchronous=FULL), PostgreSQL through a URL for several
app instances; one code path (annotation.db). Every rater call takes a session token first and touches only that
rater's rows; every save is one upsert, committed before it returns, so a confirmed save survives a crash.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotation import auth, export
from annotation.db import Database, Tx
from annotation.rows import (
    LABEL,
    MAX_COMMENT,
    MAX_KEY_THOUGHT,
    RATING,
    AnnotationError,
    AuthError,
    Task,
    ThrottledError,
    check_distortions,
    check_flag,
    check_score,
    check_text,
    decode_row,
    item_text,
    rater_order,
    rating_item_id,
    row_status,
)
from annotation.votes import data_dir

__all__ = [
    "AnnotationError",
    "AnnotationStore",
    "AuthError",
    "Session",
    "ThrottledError",
    "rater_order",
    "rating_item_id",
]


@dataclass(frozen=True)
class Session:
    token: str
    username: str
    role: str


def default_url() -> str:
    """CBT_ANNOTATION_DB, else the SQLite file in the data directory."""
    return os.environ.get("CBT_ANNOTATION_DB") or f"sqlite:///{(data_dir() / 'annotation.sqlite3').resolve()}"


class AnnotationStore:
    """Thread-safe store over SQLite or PostgreSQL; creates or migrates the schema on open."""

    def __init__(self, url: str | None = None) -> None:
        self.db = Database(url or default_url())
        self.db.migrate()
        self._order_cache: dict[tuple[str, str, int], list[str]] = {}
        self._order_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.db.url

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AnnotationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ users and sessions

    def add_user(self, username: str, password: str, role: str = "rater") -> None:
        """Create a user, or reset an existing one's password and role (their open sessions end)."""
        try:
            name, role = auth.check_username(username), auth.check_role(role)
        except ValueError as exc:
            raise AnnotationError(str(exc)) from None
        if not isinstance(password, str) or len(password) < auth.MIN_PASSWORD:
            raise AnnotationError("password: must be a non-empty string")
        self._put_user(name, auth.hash_password(password), role)

    def _put_user(self, name: str, password_hash: str, role: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM sessions WHERE username = ?", (name,))
            tx.execute(
                "INSERT INTO users (username, password_hash, role, created) VALUES (?, ?, ?, ?) ON CONFLICT"
                " (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
                (name, password_hash, role, time.time()),
            )

    def load_users(self, path_or_env: str | os.PathLike | None = None) -> int:
        """Users from a YAML/JSON file, or from `name:pw[:role],...` text (default: env CBT_USERS)."""
        source = os.environ.get("CBT_USERS", "") if path_or_env is None else path_or_env
        try:
            is_file = Path(source).is_file()
        except OSError:
            is_file = False
        if not is_file and str(source).lower().endswith((".yaml", ".yml", ".json")):
            raise AnnotationError(f"users: file {source} not found")
        try:
            users = auth.read_users_file(source) if is_file else auth.parse_users_env(str(source))
            checked = [(auth.check_username(u["username"], "username"), u, auth.check_role(u["role"])) for u in users]
        except (ValueError, KeyError) as exc:
            raise AnnotationError(f"users: {exc}") from None
        with self.db.transaction(write=False) as tx:
            stored = {r["username"]: r for r in tx.execute("SELECT username, password_hash, role FROM users").all()}
        for name, user, role in checked:
            old = stored.get(name)
            if (
                old
                and old["role"] == role
                and (
                    user.get("password_hash") == old["password_hash"]
                    or ("password_hash" not in user and auth.verify_password(user["password"], old["password_hash"]))
                )
            ):
                continue  # unchanged: keep the user's open sessions (every app start loads the users again)
            self._put_user(name, user.get("password_hash") or auth.hash_password(user["password"]), role)
        return len(checked)

    def login(self, username: str, password: str, client: str = "") -> Session:
        """Check a password (throttled per user and per client) and open a 12-hour session."""
        name, client, now = str(username or "").strip(), str(client or ""), time.time()
        with self.db.transaction(write=False) as tx:
            self._check_throttle(tx, "username", name, name, now)
            if client:
                self._check_throttle(tx, "client", client, name, now)
            user = tx.execute("SELECT password_hash, role FROM users WHERE username = ?", (name,)).one()
        ok = auth.verify_password(str(password or ""), user["password_hash"] if user else auth.DUMMY_HASH)
        token = auth.new_token()
        with self.db.transaction() as tx:
            if not (ok and user):
                tx.execute("INSERT INTO login_failures (username, client, t) VALUES (?, ?, ?)", (name, client, now))
                tx.execute("DELETE FROM login_failures WHERE t < ?", (now - 24 * 3600,))
            else:
                tx.execute("DELETE FROM login_failures WHERE username = ?", (name,))
                tx.execute("DELETE FROM sessions WHERE expires < ?", (now,))
                tx.execute(
                    "INSERT INTO sessions (token_hash, username, created, expires) VALUES (?, ?, ?, ?)",
                    (auth.token_hash(token), name, now, now + auth.TOKEN_TTL_S),
                )
        if not (ok and user):
            raise AuthError("wrong username or password")
        return Session(token, name, user["role"])

    def login_oauth(self, hub_username: str, allowed: str | None = None) -> Session:
        """A session for a Hugging Face account (OAuth on a Space) that the deployment lists in CBT_HF_RATERS.

        The account is the store user "hf/<name>" with no usable password, so only the Hub's login opens it; a
        password account of that name is never taken over. `allowed` overrides the env (tests, the CLI).
        """
        raters = auth.parse_hf_raters(os.environ.get("CBT_HF_RATERS", "") if allowed is None else allowed)
        name = str(hub_username or "").strip()
        if name not in raters:
            raise AuthError(f"the Hugging Face account {name!r} is not a rater here (ask the admin)")
        user, role, now = auth.OAUTH_PREFIX + name, raters[name], time.time()
        token = auth.new_token()
        with self.db.transaction() as tx:
            row = tx.execute("SELECT password_hash FROM users WHERE username = ?", (user,)).one()
            if row and row["password_hash"] != auth.NO_PASSWORD:
                raise AuthError(f"{user!r} is a password account; log in with its password")
            tx.execute(
                "INSERT INTO users (username, password_hash, role, created) VALUES (?, ?, ?, ?) ON CONFLICT"
                " (username) DO UPDATE SET role = excluded.role",
                (user, auth.NO_PASSWORD, role, now),
            )
            tx.execute(
                "INSERT INTO sessions (token_hash, username, created, expires) VALUES (?, ?, ?, ?)",
                (auth.token_hash(token), user, now, now + auth.TOKEN_TTL_S),
            )
        return Session(token, user, role)

    @staticmethod
    def _check_throttle(tx: Tx, column: str, value: str, name: str, now: float) -> None:
        times = [
            r["t"]
            for r in tx.execute(
                f"SELECT t FROM login_failures WHERE {column} = ? AND t > ? ORDER BY t",
                (value, now - auth.FAILURE_WINDOW_S),
            ).all()
        ]
        if len(times) >= auth.MAX_FAILURES:
            wait = math.ceil(times[len(times) - auth.MAX_FAILURES] + auth.FAILURE_WINDOW_S - now)
            raise ThrottledError(f"too many failed logins for {name or value}; try again in {max(wait, 1)} s")

    def session(self, token: str) -> Session:
        with self.db.transaction(write=False) as tx:
            return self._auth(tx, token)

    def logout(self, token: str) -> None:
        if isinstance(token, str) and token:
            with self.db.transaction() as tx:
                tx.execute("DELETE FROM sessions WHERE token_hash = ?", (auth.token_hash(token),))

    @staticmethod
    def _auth(tx: Tx, token: Any, admin: bool = False) -> Session:
        if not isinstance(token, str) or not token:
            raise AuthError("not logged in")
        row = tx.execute(
            "SELECT s.username, s.expires, u.role FROM sessions s JOIN users u ON u.username = s.username"
            " WHERE s.token_hash = ?",
            (auth.token_hash(token),),
        ).one()
        if row is None or row["expires"] < time.time():
            raise AuthError("not logged in (session unknown or expired); log in again")
        if admin and row["role"] != "admin":
            raise AuthError(f"{row['username']} is not an admin")
        return Session(token, row["username"], row["role"])

    # ------------------------------------------------------------ items

    def import_rating_items(self, rows: Iterable[dict[str, Any]]) -> int:
        """Add (question, description, response, backbone) items; returns how many were new (re-import: 0)."""
        items = []
        for i, row in enumerate(rows):
            fields = {f: item_text(row, i, f) for f in ("question_id", "question", "response", "backbone")}
            fields["description"] = item_text(row, i, "description", empty=True)
            item_id = row.get("item_id") or rating_item_id(fields["question_id"], fields["backbone"])
            items.append({"item_id": str(item_id), **fields})
        return self._import(RATING, items, ("question_id", "question", "description", "response", "backbone"))

    def import_label_items(self, rows: Iterable[dict[str, Any]]) -> int:
        """Add labelling items (question + description; the response is kept but hidden by default)."""
        items = []
        for i, row in enumerate(rows):
            fields = {f: item_text(row, i, f) for f in ("question_id", "question")}
            fields["description"] = item_text(row, i, "description", empty=True)
            fields["response"] = item_text(row, i, "response", empty=True)
            items.append({"item_id": str(row.get("item_id") or fields["question_id"]), **fields})
        return self._import(LABEL, items, ("question_id", "question", "description", "response"))

    def _import(self, task: Task, items: list[dict[str, Any]], columns: tuple[str, ...]) -> int:
        seen: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(items):
            if item["item_id"] in seen and seen[item["item_id"]] != item:
                raise AnnotationError(f"rows[{i}].item_id: {item['item_id']!r} appears twice with different content")
            seen[item["item_id"]] = item
        now, new = time.time(), []
        with self.db.transaction() as tx:
            cols = ", ".join(columns)
            existing = {r["item_id"]: r for r in tx.execute(f"SELECT item_id, {cols} FROM {task.items}").all()}
            for item_id, item in seen.items():
                old = existing.get(item_id)
                changed = [c for c in columns if old is not None and old[c] != item[c]]
                if changed:
                    raise AnnotationError(
                        f"item_id {item_id!r}: already imported with a different {changed[0]}; raters may have"
                        " rated the old text, so import it under a new item_id"
                    )
                if old is None:
                    new.append(item)
            tx.executemany(
                f"INSERT INTO {task.items} (item_id, {cols}, created) VALUES (?, {', '.join('?' * len(columns))}, ?)",
                [(it["item_id"], *(it[c] for c in columns), now) for it in new],
            )
        return len(new)

    # ------------------------------------------------------------ the rater's view (shared by both tasks)

    def _order(self, tx: Tx, task: Task, username: str) -> list[str]:
        ids = [r["item_id"] for r in tx.execute(f"SELECT item_id FROM {task.items}").all()]
        key = (task.name, username, len(ids))
        with self._order_lock:
            cached = self._order_cache.get(key)
        if cached is None or set(cached) != set(ids):
            cached = rater_order(username, ids)
            with self._order_lock:
                self._order_cache[key] = cached
        return cached

    def _saved(self, tx: Tx, task: Task, username: str) -> dict[str, dict[str, Any]]:
        rows = tx.execute(
            f"SELECT item_id, {', '.join(task.fields)} FROM {task.rows} WHERE rater = ?", (username,)
        ).all()
        return {r["item_id"]: decode_row(task, r) for r in rows}

    def _view(self, tx: Tx, task: Task, username: str, item_id: str, order: list[str]) -> dict[str, Any]:
        item = tx.execute(
            f"SELECT item_id, question, description, response FROM {task.items} WHERE item_id = ?", (item_id,)
        ).one()
        if item is None:
            raise AnnotationError(f"item_id: unknown {task.name} item {item_id!r}")
        row = tx.execute(
            f"SELECT {', '.join(task.fields)} FROM {task.rows} WHERE rater = ? AND item_id = ?", (username, item_id)
        ).one()
        return {**item, "position": order.index(item_id) + 1, "total": len(order), "saved": decode_row(task, row)}

    def _next(self, task: Task, token: str) -> dict[str, Any] | None:
        with self.db.transaction(write=False) as tx:
            user = self._auth(tx, token).username
            order, saved = self._order(tx, task, user), self._saved(tx, task, user)
            for item_id in order:
                if row_status(task, saved.get(item_id, {})) not in ("done", "skipped"):
                    return self._view(tx, task, user, item_id, order)
        return None

    def _get(self, task: Task, token: str, item_id: str) -> dict[str, Any]:
        with self.db.transaction(write=False) as tx:
            user = self._auth(tx, token).username
            return self._view(tx, task, user, str(item_id), self._order(tx, task, user))

    def _list(self, task: Task, token: str) -> list[dict[str, Any]]:
        with self.db.transaction(write=False) as tx:
            user = self._auth(tx, token).username
            order, saved = self._order(tx, task, user), self._saved(tx, task, user)
        return [
            {"item_id": i, "position": n, "status": row_status(task, saved.get(i, {}))} for n, i in enumerate(order, 1)
        ]

    def _progress(self, task: Task, token: str) -> dict[str, int]:
        statuses = [r["status"] for r in self._list(task, token)]
        return {"done": statuses.count("done"), "skipped": statuses.count("skipped"), "total": len(statuses)}

    def _save(self, task: Task, token: str, item_id: Any, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Login first (a caller without one learns nothing about the input), then the item, then the values."""
        with self.db.transaction(write=False) as tx:  # checks first, so the write lock is held only for the upsert
            user = self._auth(tx, token).username
            known = isinstance(item_id, str) and tx.execute(
                f"SELECT 1 FROM {task.items} WHERE item_id = ?", (item_id,)
            ).scalar() is not None  # fmt: skip
        if not known:
            raise AnnotationError(f"item_id: unknown {task.name} item {item_id!r}")
        given = {k: v for k, v in check().items() if v is not None}
        cols = ["rater", "item_id", *given, "updated"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in [*given, "updated"])
        with self.db.transaction() as tx:
            row = tx.execute(
                f"INSERT INTO {task.rows} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                f" ON CONFLICT (rater, item_id) DO UPDATE SET {updates} RETURNING {', '.join(task.fields)}",
                (user, item_id, *given.values(), time.time()),
            ).one()
        return {"item_id": item_id, **decode_row(task, row)}

    # ------------------------------------------------------------ rating (Table 5)

    def rating_next(self, token: str) -> dict[str, Any] | None:
        return self._next(RATING, token)

    def rating_get(self, token: str, item_id: str) -> dict[str, Any]:
        return self._get(RATING, token, item_id)

    def rating_list(self, token: str) -> list[dict[str, Any]]:
        return self._list(RATING, token)

    def rating_progress(self, token: str) -> dict[str, int]:
        return self._progress(RATING, token)

    def save_rating(
        self,
        token: str,
        item_id: str,
        *,
        relevance: int | None = None,
        structure: int | None = None,
        helpfulness: int | None = None,
        comment: str | None = None,
        flag: bool | None = None,
        skipped: bool | None = None,
    ) -> dict[str, Any]:
        """Upsert the rater's row for one item; None leaves a field as it was. Durable when it returns."""

        def check() -> dict[str, Any]:
            values: dict[str, Any] = {}
            for name, value in (("relevance", relevance), ("structure", structure), ("helpfulness", helpfulness)):
                values[name] = None if value is None else check_score(name, value, (0, 1, 2))
            values["comment"] = None if comment is None else check_text("comment", comment, MAX_COMMENT)
            values["flag"] = None if flag is None else check_flag("flag", flag)
            values["skipped"] = None if skipped is None else check_flag("skipped", skipped)
            return values

        return self._save(RATING, token, item_id, check)

    # ------------------------------------------------------------ distortion labelling (Table 3)

    def label_next(self, token: str) -> dict[str, Any] | None:
        return self._next(LABEL, token)

    def label_get(self, token: str, item_id: str) -> dict[str, Any]:
        return self._get(LABEL, token, item_id)

    def label_list(self, token: str) -> list[dict[str, Any]]:
        return self._list(LABEL, token)

    def label_progress(self, token: str) -> dict[str, int]:
        return self._progress(LABEL, token)

    def save_label(
        self,
        token: str,
        item_id: str,
        *,
        distortions: list[str] | None = None,
        key_thought: str | None = None,
        confidence: int | None = None,
        skipped: bool | None = None,
    ) -> dict[str, Any]:
        """Upsert the rater's label for one item; distortions are taxonomy ids or ['none']."""

        def check() -> dict[str, Any]:
            return {
                "distortions": None if distortions is None else check_distortions(distortions),
                "key_thought": None
                if key_thought is None
                else check_text("key_thought", key_thought, MAX_KEY_THOUGHT),
                "confidence": None if confidence is None else check_score("confidence", confidence, (1, 2, 3)),
                "skipped": None if skipped is None else check_flag("skipped", skipped),
            }

        return self._save(LABEL, token, item_id, check)

    # ------------------------------------------------------------ admin

    def _require_admin(self, token: str) -> Session:
        with self.db.transaction(write=False) as tx:
            return self._auth(tx, token, admin=True)

    def admin_progress(self, token: str) -> list[dict[str, Any]]:
        self._require_admin(token)
        return self.progress_rows()

    def export_ratings(self, token: str) -> list[dict[str, Any]]:
        self._require_admin(token)
        return self.rating_rows()

    def export_labels(self, token: str) -> list[dict[str, Any]]:
        self._require_admin(token)
        return self.label_rows()

    def agreement(self, token: str) -> dict[str, Any]:
        self._require_admin(token)
        return export.agreement(self.rating_rows(), self.label_rows())

    # Operator access (the CLI runs with direct database access; the UI goes through the token methods above).

    def progress_rows(self) -> list[dict[str, Any]]:
        """Per rater and task: done / partial / skipped / total."""
        return export.progress_rows(self.db)

    def rating_rows(self) -> list[dict[str, Any]]:
        """All ratings in the eval row format, sorted by (question_id, backbone, rater)."""
        return export.rating_rows(self.db)

    def label_rows(self) -> list[dict[str, Any]]:
        """Saved labels (not skipped) in the eval row format, sorted by (question_id, rater)."""
        return export.label_rows(self.db)

    def backup(self, dest_path: str | os.PathLike) -> Path:
        """A consistent copy of the SQLite file through SQLite's online backup API (safe while raters save)."""
        if self.db.path is None:
            raise AnnotationError(
                "backup: this store is on PostgreSQL; back it up with pg_dump (e.g. pg_dump -Fc URL > file.dump)"
            )
        return export.backup_sqlite(self.db.path, dest_path)
