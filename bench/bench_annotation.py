"""Benchmark: concurrent raters saving through the annotation API, on SQLite and on PostgreSQL.

    python bench/bench_annotation.py [--raters 16] [--saves 200] [--backends sqlite,postgresql] [--out FILE]
    python bench/bench_annotation.py serve --db URL --port N     # the app process the benchmark starts

For each backend: a fresh store with R raters and S items; a real app process (gr.Blocks with the named
endpoints of annotation/tabs/api.py, served like app.py: no SSR, unqueued saves); R client threads, each logs
in and makes S saves (POST /gradio_api/run/save_rating {"data": [token, item_id, relevance, ...]}), one HTTP
keep-alive connection per rater. Three runs on fresh items: "single" (one rater alone, back to back: the
baseline), "paced" (all R raters, each pausing uniform [0, 2 x --think-ms] between clicks, a fast human) and
"flat_out" (all R raters, no pause: a stress test). Then the rows are counted in the database: zero errors and
zero lost are required. The same runs also go straight to the store (no HTTP) for comparison.
PostgreSQL runs in a throwaway server (tests/pg.py) with fsync on, so commits are durable like SQLite's.
Prints a table and one JSON object (also written to --out), with the 1-minute load average before and after
each run: on a shared machine, other processes' load moves the tail latencies more than anything measured here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotation.store import AnnotationStore  # noqa: E402


def serve(url: str, port: int) -> None:
    """An app process with the annotation API on the store at `url` (blocks)."""
    import gradio as gr

    from annotation.tabs.api import add_annotation_api

    store = AnnotationStore(url)
    with gr.Blocks(title="annotation API") as demo:
        add_annotation_api(store)
    demo.queue(max_size=64, default_concurrency_limit=4)
    demo.launch(server_name="127.0.0.1", server_port=port, share=False, ssr_mode=False, run_history=False,
                enable_monitoring=False, show_error=True, footer_links=[])  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, log: Path) -> tuple[subprocess.Popen, int]:
    """Start `serve` in a child process and wait until its API answers; returns (process, port)."""
    port = free_port()
    env = os.environ | {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve", "--db", url, "--port",
                                 str(port)], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/gradio_api/info")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("app did not start in 180 s")


class ApiClient:
    """One keep-alive HTTP connection to the app; `call` posts {"data": [...]} to a named endpoint."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, name: str, *args: Any) -> Any:
        body = json.dumps({"data": list(args)})
        self.conn.request("POST", f"/gradio_api/run/{name}", body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        payload = json.loads(resp.read() or b"null")
        if resp.status != 200 or not isinstance(payload, dict) or "data" not in payload:
            raise RuntimeError(f"{name}: HTTP {resp.status}: {str(payload)[:300]}")
        return payload["data"][0]

    def close(self) -> None:
        self.conn.close()


MODES = ("single", "paced", "flat_out")  # one rater alone (the baseline), 16 paced, 16 flat out


def seed_store(url: str, raters: int, saves: int) -> tuple[list[str], dict[str, list[str]]]:
    """R raters (password 'pw') and S rating items per mode; returns the usernames and each mode's items."""
    store = AnnotationStore(url)
    names = [f"rater{i:02d}" for i in range(raters)]
    store.load_users(",".join(f"{n}:pw" for n in names))
    items = {mode: [f"{mode}-{i:04d}" for i in range(saves)] for mode in MODES}
    rows = [{"item_id": i, "question_id": i, "question": f"问题 {i}", "description": "描述", "response": "回答" * 50,
             "backbone": "bench"} for m in MODES for i in items[m]]  # fmt: skip
    store.import_rating_items(rows)
    store.close()
    return names, items


def _rater_saves(save, token: str, items: list[str], lat: list[float], errors: list[str], think_s: float) -> None:
    pause = random.Random(token)  # a rater pauses between clicks: uniform in [0, 2 * think] (mean: think)
    for n, item in enumerate(items):
        if think_s:
            time.sleep(pause.uniform(0, 2 * think_s))
        t0 = time.perf_counter()
        try:
            save(token, item, n % 3, (n + 1) % 3, (n + 2) % 3, f"comment {n}")
        except Exception as exc:
            errors.append(str(exc)[:200])
        lat.append(time.perf_counter() - t0)


def run_clients(tokens: list[str], items: list[str], make_save, think_s: float) -> dict[str, Any]:
    """Each rater in its own thread; returns latency stats in ms, errors and wall time."""
    lat: list[float] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=_rater_saves, args=(make_save(), t, items, lat, errors, think_s)) for t in tokens
    ]
    load_before, t0 = os.getloadavg()[0], time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in lat)
    return {"think_ms": round(think_s * 1000), "saves": len(ms), "errors": len(errors), "first_errors": errors[:3],
            "wall_s": round(wall, 2), "saves_per_s": round(len(ms) / wall, 1),
            "p50_ms": round(statistics.median(ms), 2), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
            "max_ms": round(ms[-1], 2),
            "load_avg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)]}  # fmt: skip


def count_saved(url: str, items: list[str]) -> int:
    """Rows in the database with all three scores, among these items (what the clients saved)."""
    wanted = set(items)
    store = AnnotationStore(url)
    try:
        return sum(1 for r in store.rating_rows() if r["item_id"] in wanted and r["helpfulness"] is not None)
    finally:
        store.close()


def _http_saver(port: int):
    """A save function over its own keep-alive connection (one per rater thread)."""
    client = ApiClient(port)

    def save(token: str, item: str, rel: int, struct: int, helpful: int, comment: str) -> Any:
        return client.call("save_rating", token, item, rel, struct, helpful, comment, None, None)

    return save


def _store_saver(store: AnnotationStore):
    def save(token: str, item: str, rel: int, struct: int, helpful: int, comment: str) -> Any:
        return store.save_rating(token, item, relevance=rel, structure=struct, helpfulness=helpful, comment=comment)

    return lambda: save


def bench_path(path: str, url: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Both modes (paced raters, then flat out) through one path ("http" or "store") on a fresh store."""
    names, items = seed_store(url, args.raters, args.saves)
    proc = store = None
    try:
        if path == "http":
            proc, port = start_server(url, tmp / f"app-{time.time_ns()}.log")
            login = ApiClient(port)
            tokens = [login.call("annotate_login", n, "pw") for n in names]
            make_save = lambda: _http_saver(port)  # noqa: E731
        else:
            store = AnnotationStore(url)
            tokens = [store.login(n, "pw").token for n in names]
            make_save = _store_saver(store)
        out = {}
        for mode in MODES:
            think = args.think_ms / 1000 if mode == "paced" else 0.0
            out[mode] = run_clients(tokens[:1] if mode == "single" else tokens, items[mode], make_save, think)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        if store is not None:
            store.close()
    for mode in MODES:
        out[mode]["rows"] = count_saved(url, items[mode])
        out[mode]["lost"] = out[mode]["saves"] - out[mode]["errors"] - out[mode]["rows"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve"))
    p.add_argument("--db")
    p.add_argument("--port", type=int)
    p.add_argument("--raters", type=int, default=16)
    p.add_argument("--saves", type=int, default=200)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--think-ms", type=float, default=250, help="paced mode: mean pause between a rater's saves")
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.mode == "serve":
        serve(args.db, args.port)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotation_"))
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
                               "raters": args.raters, "saves_per_rater": args.saves}  # fmt: skip
    for backend in args.backends.split(","):
        results[backend] = _bench_backend(backend, args, tmp)
    print_table(results)
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    runs = [r for b in args.backends.split(",") for path in results[b].values() for r in path.values()]
    ok = all(r["errors"] == 0 and r["lost"] == 0 for r in runs)
    return 0 if ok else 1


def _bench_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if backend == "sqlite":
        return {path: bench_path(path, f"sqlite:///{tmp}/{path}.sqlite3", args, tmp) for path in ("http", "store")}
    from tests.pg import PgServer

    server = PgServer(fsync=True).start()
    try:
        return {path: bench_path(path, server.new_database(), args, tmp) for path in ("http", "store")}
    finally:
        server.stop()


def print_table(results: dict[str, Any]) -> None:
    print(f"{'backend':<11} {'path':<6} {'mode':<9} {'think':>5} {'saves':>6} {'errors':>6} {'lost':>5} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'max ms':>7} {'saves/s':>8}  load avg")  # fmt: skip
    for backend, value in results.items():
        if not isinstance(value, dict):
            continue
        for path, modes in value.items():
            for mode, r in modes.items():
                print(
                    f"{backend:<11} {path:<6} {mode:<9} {r['think_ms']:>5} {r['saves']:>6} {r['errors']:>6} "
                    f"{r['lost']:>5} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['max_ms']:>7} {r['saves_per_s']:>8}  "
                    f"{r['load_avg_1min'][0]}->{r['load_avg_1min'][1]}"
                )


if __name__ == "__main__":
    sys.exit(main())
