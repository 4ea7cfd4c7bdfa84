"""Load benchmark: many people on one app at once, through its HTTP API, against a fresh `python app.py`.

    python bench/bench_load.py [--sessions 20] [--seconds 120] [--think 7] [--raters 16] [--stress]

Phases (each prints one JSON line, then a summary line):
1. chat: `--sessions` gradio_client sessions on the streamed `chat` endpoint (retrieval backbone), each sending
   a message, reading the stream to its end, then pausing `--think` seconds (a person reading), for `--seconds`.
   Per reply: time to first update and to the end; errors; rate-limit refusals; the queue length, sampled from
   /gradio_api/queue/status every 0.25 s (bounded by queue max_size). The app runs with its default
   per-session limit; the per-client limit is raised because every simulated person shares the loopback address.
   --stress: no think time and no limits (the throughput ceiling of this machine).
2. overflow: a slow backbone (loopback OpenAI-compatible server, 1 s per answer) with CBT_QUEUE_MAX=8 and 40
   simultaneous calls: how many were turned away with "queue is full" instead of waiting without bound.
3. raters: `--raters` people logged in through the annotation API saving ratings at once (unqueued POSTs) for
   the same `--seconds`, if the app has that API; rows in the store must equal the saves that succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cbt.io import load_sample  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(tmp: Path, backbones: str, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    cfg = tmp / "backbones.yaml"
    cfg.write_text(backbones, encoding="utf-8")
    port = free_port()
    env = os.environ | {"GRADIO_SERVER_PORT": str(port), "CBT_BACKBONES": str(cfg), "CBT_DATA_DIR": str(tmp)}
    log = open(tmp / "app.log", "wb")  # noqa: SIM115 - lives as long as the app
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env | env_extra, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(480):
        try:
            httpx.get(url, timeout=2)
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None:
                break
            time.sleep(0.25)
    proc.kill()
    raise SystemExit(f"app did not start: {(tmp / 'app.log').read_text()[-2000:]}")


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank), in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


class QueueSampler(threading.Thread):
    """Polls /gradio_api/queue/status; keeps the largest queue length seen."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.max_size, self.samples, self.stop = url, 0, 0, threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                try:
                    size = http.get(self.url + "gradio_api/queue/status").json().get("queue_size", 0)
                    self.max_size, self.samples = max(self.max_size, size), self.samples + 1
                except (httpx.HTTPError, ValueError):
                    pass
                self.stop.wait(0.25)


def run_sessions(n: int, seconds: float, work: Callable[[int, dict], None]) -> dict:
    """`n` threads each calling work(i, stats) until `seconds` pass; returns the merged stats."""
    stats: dict = {"first": [], "total": [], "errors": [], "limited": 0, "ok": 0, "lock": threading.Lock()}
    deadline = time.monotonic() + seconds

    def loop(i: int) -> None:
        while time.monotonic() < deadline:
            work(i, stats)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats


def chat_phase(url: str, args: argparse.Namespace) -> dict:
    from gradio_client import Client

    prompts = [f"{r.question}\n{r.description}"[:600] for r in load_sample()[:60]]
    clients = [Client(url, verbose=False) for _ in range(args.sessions)]
    for c in clients:  # warm-up, not timed: the first call of a session opens its event stream (~2 s here)
        c.predict("你好", "retrieval", api_name="/chat")
    think = 0.0 if args.stress else args.think

    def work(i: int, stats: dict) -> None:
        t0, first = time.perf_counter(), None
        try:
            job = clients[i].submit(prompts[(i * 7 + stats["ok"]) % len(prompts)], "retrieval", api_name="/chat")
            for _ in job:
                first = first or time.perf_counter()
            job.result()
            with stats["lock"]:
                stats["first"].append((first or time.perf_counter()) - t0)
                stats["total"].append(time.perf_counter() - t0)
                stats["ok"] += 1
        except Exception as exc:  # counted, not fatal: the benchmark reports them
            if "too many requests" in str(exc):
                with stats["lock"]:
                    stats["limited"] += 1
            else:
                stats["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
        time.sleep(think)

    sampler = QueueSampler(url)
    sampler.start()
    t0 = time.perf_counter()
    stats = run_sessions(args.sessions, args.seconds, work)
    wall = time.perf_counter() - t0
    sampler.stop.set()
    return {
        "phase": "chat-stress" if args.stress else "chat", "sessions": args.sessions, "seconds": round(wall, 1),
        "think_s": think, "replies": stats["ok"], "replies_per_s": round(stats["ok"] / wall, 2),
        "errors": len(stats["errors"]), "rate_limited": stats["limited"],
        "first_update_p50_ms": pct(stats["first"], 0.5), "first_update_p95_ms": pct(stats["first"], 0.95),
        "reply_p50_ms": pct(stats["total"], 0.5), "reply_p95_ms": pct(stats["total"], 0.95),
        "reply_max_ms": pct(stats["total"], 1.0), "queue_max_seen": sampler.max_size,
        "queue_samples": sampler.samples, "error_examples": stats["errors"][:3],
    }  # fmt: skip


def overflow_phase(tmp: Path) -> dict:
    from gradio_client import Client

    from tests.fake_openai import FakeOpenAI

    backbones = "default: slow\nbackbones:\n  slow: {type: openai, label: Slow, base_url: '${SLOW_URL}', model: m}\n"
    with FakeOpenAI(latency=1.0) as server:
        env = {"CBT_QUEUE_MAX": "8", "CBT_RATE_SESSION": "0", "CBT_RATE_CLIENT": "0", "SLOW_URL": server.base_url}
        env["OPENAI_API_KEY"] = "x"
        (tmp / "overflow").mkdir()
        proc, url = start_app(tmp / "overflow", backbones, env)
        try:
            clients = [Client(url, verbose=False) for _ in range(40)]
            results: list[str] = []

            def one(i: int) -> None:
                try:
                    clients[i].submit(f"考研失败{i}，怎么办？", "slow", api_name="/chat").result(timeout=120)
                    results.append("ok")
                except Exception as exc:
                    results.append("full" if "queue is full" in str(exc).lower() else f"error: {exc}"[:120])

            threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    errors = [r for r in results if r not in ("ok", "full")]
    return {
        "phase": "overflow", "calls": 40, "queue_max_size": 8, "concurrency_limit": 4, "served": results.count("ok"),
        "turned_away_queue_full": results.count("full"), "other_errors": len(errors), "seconds": round(wall, 1),
        "error_examples": errors[:3],
    }  # fmt: skip


def seed_annotation(tmp: Path, raters: int) -> tuple[str, list[tuple[str, str]]]:
    """A store with sample-set rating items; returns its URL and the raters' (name, password)."""
    from annotation.store import AnnotationStore

    url = f"sqlite:///{tmp / 'load.sqlite3'}"
    users = [(f"rater{i:02d}", f"pw-{i:02d}-load") for i in range(raters)]
    rows = [{"question_id": r.id, "question": r.question, "description": r.description, "response": r.answer,
             "backbone": "retrieval"} for r in load_sample()]  # fmt: skip
    with AnnotationStore(url) as store:
        store.import_rating_items(rows)
        for name, pw in users:
            store.add_user(name, pw)
    return url, users


def raters_phase(url: str, db_url: str, users: list[tuple[str, str]], seconds: float) -> dict:
    http = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=64))

    def call(name: str, *data: object) -> object:
        r = http.post(f"gradio_api/run/{name}", json={"data": list(data)})
        if r.status_code != 200:
            raise RuntimeError(f"{name}: HTTP {r.status_code}: {r.text[:150]}")
        return r.json()["data"][0]

    tokens = [call("annotate_login", name, pw) for name, pw in users]

    def work(i: int, stats: dict) -> None:
        try:
            item = call("rating_next", tokens[i])
            if not item:
                time.sleep(0.5)
                return
            t0 = time.perf_counter()
            call("save_rating", tokens[i], item["item_id"], i % 3, (i + 1) % 3, 2, f"load {i}", False, False)
            with stats["lock"]:
                stats["total"].append(time.perf_counter() - t0)
                stats["ok"] += 1
        except Exception as exc:
            stats["errors"].append(str(exc)[:200])

    t0 = time.perf_counter()
    stats = run_sessions(len(users), seconds, work)
    wall = time.perf_counter() - t0
    from annotation.store import AnnotationStore

    with AnnotationStore(db_url) as store:
        rows = len(store.rating_rows())
    return {
        "phase": "raters", "raters": len(users), "seconds": round(wall, 1), "saves": stats["ok"],
        "saves_per_s": round(stats["ok"] / wall, 1), "errors": len(stats["errors"]),
        "save_p50_ms": pct(stats["total"], 0.5), "save_p95_ms": pct(stats["total"], 0.95),
        "save_max_ms": pct(stats["total"], 1.0), "rows_in_store": rows, "error_examples": stats["errors"][:3],
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--think", type=float, default=7.0, help="pause after each reply (s); 7 s stays under 10/min")
    p.add_argument("--raters", type=int, default=16)
    p.add_argument("--stress", action="store_true", help="no think time, no rate limits")
    p.add_argument("--skip", nargs="*", default=[], choices=["chat", "overflow", "raters"])
    args = p.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench_load_"))
    db_url, users = seed_annotation(tmp, args.raters)
    limits = {"CBT_RATE_CLIENT": "0"} | ({"CBT_RATE_SESSION": "0"} if args.stress else {})
    users_env = ",".join(f"{n}:{pw}" for n, pw in users)
    backbones = "default: retrieval\nbackbones:\n  retrieval: {type: retrieval, label: Retrieval}\n"
    proc, url = start_app(tmp, backbones, limits | {"CBT_ANNOTATION_DB": db_url, "CBT_USERS": users_env})
    results = []
    try:
        if "chat" not in args.skip:
            results.append(chat_phase(url, args))
        if "raters" not in args.skip:
            names = httpx.get(url + "gradio_api/info", timeout=30).json()["named_endpoints"]
            if "/save_rating" in names and "/annotate_login" in names:
                results.append(raters_phase(url, db_url, users, args.seconds))
            else:
                results.append({"phase": "raters", "skipped": "the app has no annotation API (save_rating) yet"})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if "overflow" not in args.skip:
        results.append(overflow_phase(tmp))
    for r in results:
        print(json.dumps(r | {"machine": machine}, ensure_ascii=False))


if __name__ == "__main__":
    main()
