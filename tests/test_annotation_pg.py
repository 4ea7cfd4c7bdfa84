"""PostgreSQL specifics of the annotation store, against real servers started by the tests (tests/pg.py).

The store's shared suite also runs on PostgreSQL (tests/test_annotation_store.py); here: several app instances
on one database, concurrent first opens, the v1 -> v2 migration, a server crash (immediate shutdown) with fsync
on, and exports that are byte-identical to SQLite's for the same data.
"""

from __future__ import annotations

import threading

import pytest

from annotation.db import Database
from annotation.export import write_export
from annotation.store import AnnotationError, AnnotationStore
from tests import pg
from tests.pg import SKIP_REASON, PgServer, find_bin
from tests.test_annotation_store import cheap_scrypt, label_rows, rating_rows  # noqa: F401  (autouse fixture)

pg_server = pg.pg_server  # the session's throwaway server (fixture)


def _fill(store: AnnotationStore) -> None:
    store.load_users("alice:pw,bob:pw,boss:pw:admin")
    store.import_rating_items(rating_rows())
    store.import_label_items(label_rows())


def test_two_app_instances_share_one_database(pg_server) -> None:
    url = pg_server.new_database()
    first, second = AnnotationStore(url), AnnotationStore(url)
    try:
        _fill(first)
        items = [r["item_id"] for r in first.rating_list(first.login("alice", "pw").token)]
        errors: list[BaseException] = []

        def rate(store: AnnotationStore, rater: str, value: int) -> None:
            try:
                token = store.login(rater, "pw").token
                for item in items:
                    store.save_rating(token, item, relevance=value, structure=value, helpfulness=value)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        # alice saves the same items from both instances at once (two tabs on two servers); bob from one
        jobs = [(first, "alice", 1), (second, "alice", 2), (second, "bob", 0), (first, "bob", 0)]
        threads = [threading.Thread(target=rate, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        rows = second.export_ratings(second.login("boss", "pw").token)
        assert len(rows) == 2 * len(items)  # one row per (rater, item), whatever the interleaving
        assert {r["relevance"] for r in rows if r["rater"] == "alice"} <= {1, 2}
    finally:
        first.close()
        second.close()


def test_concurrent_first_opens_migrate_once(pg_server) -> None:
    url = pg_server.new_database()
    stores: list[AnnotationStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            stores.append(AnnotationStore(url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 4
    with stores[0].db.transaction(write=False) as tx:
        assert [r["version"] for r in tx.execute("SELECT version FROM schema_version ORDER BY version").all()] == [
            1,
            2,
        ]
    for store in stores:
        store.close()


def test_version_1_database_is_migrated(pg_server) -> None:
    url = pg_server.new_database()
    old = Database(url)
    old.migrate(target=1)
    with old.transaction() as tx:
        tx.execute("INSERT INTO rating_items VALUES ('i1', 'q1', 'Q', '', 'R', 'b', 0)")
        tx.execute("INSERT INTO ratings (rater, item_id, relevance, skipped, updated) VALUES ('alice', 'i1', 2, 0, 0)")
    old.close()
    store = AnnotationStore(url)
    try:
        assert store.db.version() == 2
        store.add_user("alice", "pw")
        token = store.login("alice", "pw").token
        assert store.rating_get(token, "i1")["saved"]["relevance"] == 2
        assert store.save_rating(token, "i1", flag=True)["flag"] is True
    finally:
        store.close()


def test_backup_points_to_pg_dump(pg_server, tmp_path) -> None:
    store = AnnotationStore(pg_server.new_database())
    try:
        with pytest.raises(AnnotationError, match="pg_dump"):
            store.backup(tmp_path / "x.sqlite3")
    finally:
        store.close()


def test_exports_are_byte_identical_to_sqlite(pg_server, tmp_path) -> None:
    outputs = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path}/same.sqlite3"), ("pg", pg_server.new_database())):
        store = AnnotationStore(url)
        try:
            _fill(store)
            for rater, value in (("bob", 0), ("alice", 2)):
                token = store.login(rater, "pw").token
                for n, row in enumerate(store.rating_list(token)):
                    store.save_rating(token, row["item_id"], relevance=value, comment=f'第{n}条, "quoted"')
                for row in store.label_list(token)[:3]:
                    store.save_label(token, row["item_id"], distortions=["catastrophizing", "labeling"], confidence=1)
            for what, rows in (("ratings", store.rating_rows()), ("labels", store.label_rows())):
                for fmt in ("jsonl", "csv"):
                    path = write_export(rows, what, fmt, tmp_path / f"{name}.{what}.{fmt}")[0]
                    outputs[(name, what, fmt)] = path.read_bytes()
        finally:
            store.close()
    for what in ("ratings", "labels"):
        for fmt in ("jsonl", "csv"):
            assert outputs[("pg", what, fmt)] == outputs[("sqlite", what, fmt)], (what, fmt)
    assert outputs[("pg", "ratings", "jsonl")].count(b"\n") == 24


def test_confirmed_saves_survive_a_server_crash(tmp_path) -> None:
    if find_bin() is None:
        pytest.skip(SKIP_REASON)
    server = PgServer(fsync=True).start()
    try:
        url = server.new_database()
        store = AnnotationStore(url)
        _fill(store)
        token = store.login("alice", "pw").token
        confirmed = [store.save_rating(token, row["item_id"], relevance=1, structure=2, helpfulness=0)["item_id"]
                     for row in store.rating_list(token)[:8]]  # fmt: skip
        idle = store.db.open_connections()
        server.crash_and_restart()
        assert store.rating_progress(token)["done"] == 8  # the pooled connections the crash broke are replaced
        assert store.db.open_connections() <= idle
        store.close()
        store = AnnotationStore(url)
        rows = store.export_ratings(store.login("boss", "pw").token)
        assert sorted(r["item_id"] for r in rows) == sorted(confirmed)
        assert all((r["relevance"], r["structure"], r["helpfulness"]) == (1, 2, 0) for r in rows)
        store.close()
    finally:
        server.stop()
