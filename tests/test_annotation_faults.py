"""Fault tests with real processes and real files: SIGKILL while raters save, then every confirmed save is there.

Store level: a child process saves through AnnotationStore and prints each save once the call has returned;
the test SIGKILLs it at a random moment (seeded; the seed is in every failure message) and reopens the store.
App level: a real app process serves the annotation API (bench/bench_annotation.py serve); client threads
save over HTTP, the test SIGKILLs the app mid-stream, and every save that got its HTTP 200 must be in the file.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from annotation.store import AnnotationStore
from tests.pg import pg_server  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
RATERS = ("r0", "r1", "r2", "r3")
N_ITEMS = 150

CHILD = r"""
import sys, threading
from annotation.store import AnnotationStore
store = AnnotationStore(sys.argv[1])
out = threading.Lock()

def work(name):
    token = store.login(name, "pw").token
    for n, row in enumerate(store.rating_list(token)):
        s = store.save_rating(token, row["item_id"], relevance=n % 3, structure=(n + 1) % 3,
                              helpfulness=(n + 2) % 3, comment=f"{name}-{n}")
        with out:
            sys.stdout.write(f"{name} {row['item_id']} {s['relevance']} {s['structure']} {s['helpfulness']} "
                             f"{s['comment']}\n")
            sys.stdout.flush()

threads = [threading.Thread(target=work, args=(name,)) for name in sys.argv[2:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def _seed_store(url: str) -> None:
    store = AnnotationStore(url)
    store.load_users(",".join(f"{r}:pw" for r in RATERS))
    store.import_rating_items([{"question_id": f"q{i}", "question": f"问题{i}", "description": "", "response": "回答",
                                "backbone": "b"} for i in range(N_ITEMS)])  # fmt: skip
    store.close()


def _saved(url: str) -> dict[tuple[str, str], tuple]:
    store = AnnotationStore(url)
    try:
        return {(r["rater"], r["item_id"]): (r["relevance"], r["structure"], r["helpfulness"], r["comment"])
                for r in store.rating_rows()}  # fmt: skip
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def fault_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/faults.sqlite3"
    return request.getfixturevalue("pg_server").new_database()


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_during_store_saves_keeps_every_confirmed_save(fault_url: str, seed: int) -> None:
    _seed_store(fault_url)
    kill_after = random.Random(seed).randint(20, 250)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, fault_url, *RATERS], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=os.environ | {"PYTHONPATH": str(ROOT)})  # fmt: skip
    confirmed = []
    for line in proc.stdout:
        confirmed.append(line.decode())
        if len(confirmed) >= kill_after:
            os.kill(proc.pid, signal.SIGKILL)
            break
    rest, err = proc.communicate(timeout=60)
    confirmed += [line + "\n" for line in rest.decode().split("\n")[:-1]]  # complete lines only
    assert proc.returncode == -signal.SIGKILL, f"seed {seed}: child ended before the kill: {err.decode()[-800:]}"
    saved = _saved(fault_url)
    for line in confirmed:
        rater, item, rel, struct, helpful, comment = line.split()
        got = saved.get((rater, item))
        assert got == (int(rel), int(struct), int(helpful), comment), f"seed {seed}: confirmed save lost: {line}"
    assert len(saved) >= len(confirmed)  # at most the in-flight saves were committed without being printed
    assert len(saved) - len(confirmed) <= len(RATERS), f"seed {seed}: rows appeared that nobody saved"
    if fault_url.startswith("sqlite"):
        conn = sqlite3.connect(fault_url[len("sqlite:///") :])
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


# ---------------------------------------------------------------- through the app's HTTP API


def _http_rater(port: int, token: str, confirmed: list, stop: threading.Event) -> None:
    from bench.bench_annotation import ApiClient

    client, n = ApiClient(port), 0
    try:
        while not stop.is_set():
            item = client.call("rating_next", token)
            if item is None:
                return
            saved = client.call("save_rating", token, item["item_id"], n % 3, (n + 1) % 3, (n + 2) % 3, f"c{n}",
                                None, None)  # fmt: skip
            confirmed.append((token, item["item_id"], item["position"], saved))
            n += 1
    except Exception:  # the app was killed: the save in flight is not confirmed
        return


def test_sigkill_app_while_raters_save_over_http(tmp_path) -> None:
    from bench.bench_annotation import ApiClient, start_server

    url = f"sqlite:///{tmp_path}/app.sqlite3"
    _seed_store(url)
    proc, port = start_server(url, tmp_path / "app.log")
    try:
        client = ApiClient(port)
        # bad input over HTTP: a clear error naming the field, nothing written
        alice = client.call("annotate_login", "r0", "pw")
        first = client.call("rating_next", alice)["item_id"]
        with pytest.raises(RuntimeError, match="relevance: must be one of 0, 1, 2, got 3"):
            client.call("save_rating", alice, first, 3, None, None, None, None, None)
        with pytest.raises(RuntimeError, match="item_id: unknown rating item 'nope'"):
            ApiClient(port).call("save_rating", alice, "nope", 1, None, None, None, None, None)
        assert _saved(url) == {}
        # two tabs of one rater, double clicks: one row
        tabs = [alice, client.call("annotate_login", "r0", "pw")]

        def click(token: str) -> None:
            ApiClient(port).call("save_rating", token, first, 1, None, None, None, None, None)

        clicks = [threading.Thread(target=click, args=(t,)) for t in tabs * 3]
        for t in clicks:
            t.start()
        for t in clicks:
            t.join()
        assert list(_saved(url)) == [("r0", first)]
        # four raters save; SIGKILL the app at a random moment
        tokens = {name: client.call("annotate_login", name, "pw") for name in RATERS[1:]}
        confirmed: list = []
        stop = threading.Event()
        threads = [threading.Thread(target=_http_rater, args=(port, tok, confirmed, stop)) for tok in tokens.values()]
        for t in threads:
            t.start()
        kill_after = random.Random(7).randint(30, 120)
        while len(confirmed) < kill_after and any(t.is_alive() for t in threads):
            threading.Event().wait(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        for t in threads:
            t.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(confirmed) >= kill_after
    names = {tok: name for name, tok in tokens.items()}
    saved = _saved(url)
    for token, item, _, row in confirmed:
        got = saved[(names[token], item)]
        assert got == (row["relevance"], row["structure"], row["helpfulness"], row["comment"])
    # after the restart each rater resumes right after their last confirmed save (or the one in flight)
    store = AnnotationStore(url)
    try:
        for name in RATERS[1:]:
            last = max((pos for tok, _, pos, _ in confirmed if names[tok] == name), default=0)
            resumed = store.rating_next(store.login(name, "pw").token)["position"]
            assert resumed in (last + 1, last + 2), (name, last, resumed)
    finally:
        store.close()
