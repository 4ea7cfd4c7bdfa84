"""Benchmark: what the app adds on top of a backend, and retrieval latency.

    python bench/bench_app.py [--model PATH] [--n 8] [--max-new-tokens 64]

Starts `python app.py` with two backbones (retrieval, and the hf model at PATH; default: the tiny test
model, built on the fly) and compares, on the same prompts, greedy:
- the raw backend in this process: time to first token, tokens/s;
- the same through the app's `chat` endpoint with gradio_client: time to first update, tokens/s;
- retrieval replies (crisis check, retrieval, segmentation): in process, through the streamed `chat`
  endpoint with gradio_client, and through the unqueued `reply` endpoint over plain HTTP; p95 over 200
  requests each (target p95 <= 50 ms).
Targets: the app adds <= 10% to tokens/s and <= 150 ms to first token. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cbt.backends.base import GenParams  # noqa: E402
from cbt.backends.hf import HFBackend  # noqa: E402
from cbt.io import load_sample  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: str, adapter: str | None, tmp: Path) -> tuple[subprocess.Popen, str]:
    cfg = tmp / "backbones.yaml"
    extra = f", adapter: '{adapter}'" if adapter else ""
    cfg.write_text(
        f"default: hf\nbackbones:\n  hf: {{type: hf, label: HF, model: '{model}', device: cpu{extra}}}\n"
        "  retrieval: {type: retrieval, label: Retrieval}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = os.environ | {
        "GRADIO_SERVER_PORT": str(port),
        "CBT_BACKBONES": str(cfg),
        "CBT_DATA_DIR": str(tmp),
        "CBT_RATE_SESSION": "0",  # the bench is one client making hundreds of calls: no rate limit
        "CBT_RATE_CLIENT": "0",
    }
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("app did not start")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="hf model folder (default: a tiny model built now)")
    p.add_argument("--adapter", help="LoRA adapter folder for that model (e.g. models/cbt-mini/adapter)")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_app_"))
    model = args.model
    if not model:
        from tests.tiny_model import build_tiny_model

        model = str(build_tiny_model(tmp / "tiny"))
    prompts = [r.question + "\n" + r.description for r in load_sample()[: args.n]]
    params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.0)  # as the app's endpoint builds it

    raw = HFBackend(model, adapter=args.adapter, device="cpu")
    raw.load()
    tokenizer = raw.tokenizer

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def run_raw(text: str) -> tuple[float, float, int]:
        t0 = time.perf_counter()
        first, reply = None, ""
        for piece in raw.stream([{"role": "user", "content": text}], params):
            first = first or time.perf_counter()
            reply += piece
        return (first or time.perf_counter()) - t0, time.perf_counter() - t0, count(reply)

    run_raw(prompts[0])  # warm-up
    raw_rows = [run_raw(t) for t in prompts]

    proc, url = start_app(model, args.adapter, tmp)
    try:
        from gradio_client import Client

        client = Client(url, verbose=False)
        for _ in range(120):  # the hf backbone loads in the background
            try:
                client.predict("热身", "hf", "", 8, 0.0, api_name="/chat")
                break
            except Exception:  # still loading
                time.sleep(1)

        def run_app(text: str, backbone: str) -> tuple[float, float, str]:
            t0 = time.perf_counter()
            first, reply = None, ""
            job = client.submit(text, backbone, "", args.max_new_tokens, 0.0, api_name="/chat")
            for update in job:
                first = first or time.perf_counter()
                reply = update
            return (first or time.perf_counter()) - t0, time.perf_counter() - t0, reply

        app_rows = [run_app(t, "hf") for t in prompts]
        retrieval = sorted(run_app(prompts[i % len(prompts)], "retrieval")[1] for i in range(200))
        import httpx

        http = httpx.Client(base_url=url, timeout=30)
        unqueued = []
        for i in range(200):  # the unqueued `reply` endpoint over plain HTTP
            t0 = time.perf_counter()
            r = http.post("gradio_api/run/reply", json={"data": [prompts[i % len(prompts)], "retrieval", ""]})
            r.raise_for_status()
            unqueued.append(time.perf_counter() - t0)
        unqueued.sort()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    def tps(rows: list, tokens: list[int]) -> float:
        return sum(tokens) / sum(r[1] - r[0] for r in rows)

    from cbt.backends.retrieval import RetrievalBackend
    from cbt.chat import respond

    backend = RetrievalBackend(load_sample())
    direct = []
    for i in range(200):
        t0 = time.perf_counter()
        list(respond(prompts[i % len(prompts)], [], backend, "", params))
        direct.append(time.perf_counter() - t0)
    direct.sort()
    raw_tokens = [r[2] for r in raw_rows]
    app_tokens = [count(r[2]) for r in app_rows]
    result = {
        "model": (model + (f" + {args.adapter}" if args.adapter else "")) if args.model else "tiny test model",
        "prompts": args.n,
        "raw_first_token_ms": round(1000 * statistics.median(r[0] for r in raw_rows), 1),
        "app_first_update_ms": round(1000 * statistics.median(r[0] for r in app_rows), 1),
        "raw_tokens_per_s": round(tps(raw_rows, raw_tokens), 1),
        "app_tokens_per_s": round(tps(app_rows, app_tokens), 1),
        "retrieval_direct_p95_ms": round(1000 * direct[int(len(direct) * 0.95)], 2),
        "retrieval_p50_ms": round(1000 * retrieval[len(retrieval) // 2], 1),
        "retrieval_p95_ms": round(1000 * retrieval[int(len(retrieval) * 0.95)], 1),
        "retrieval_reply_http_p50_ms": round(1000 * unqueued[len(unqueued) // 2], 1),
        "retrieval_reply_http_p95_ms": round(1000 * unqueued[int(len(unqueued) * 0.95)], 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
