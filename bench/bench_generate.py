"""Benchmark: data-set generation against the loopback OpenAI-compatible server.

    python bench/bench_generate.py [--n 2000] [--latency 0.5] [--concurrency 16]

1. Throughput: N questions, every request answered after `latency` seconds, `concurrency` in flight.
   Ideal = concurrency / latency requests/s (32 for the defaults); target >= 80% of it.
2. Kill/resume: the CLI is SIGKILLed mid-run, then resumed; counts successful requests the server
   served twice for one question (target: at most the number in flight at the kill).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cbt.generate import load_config, run  # noqa: E402
from cbt.io import load_sample, write_jsonl  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402


def write_questions(path: Path, n: int) -> None:
    recs = load_sample()
    rows = [
        {
            "id": str(i),
            "question": f"{recs[i % len(recs)].question}（{i}）",
            "description": recs[i % len(recs)].description,
        }
        for i in range(n)
    ]
    write_jsonl(path, rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--kill-after", type=float, default=8.0)
    args = p.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    q = tmp / "q.jsonl"
    write_questions(q, args.n)
    result: dict = {"questions": args.n, "latency_s": args.latency, "concurrency": args.concurrency}
    with FakeOpenAI(latency=args.latency) as server:
        cfg = load_config(
            input=str(q),
            output=str(tmp / "a.jsonl"),
            base_url=server.base_url,
            model="gpt-4o-mini",
            concurrency=args.concurrency,
            progress=False,
        )
        t0 = time.perf_counter()
        summary = run(cfg)
        elapsed = time.perf_counter() - t0
        ideal = args.concurrency / args.latency
        result |= {
            "done": summary["done"],
            "seconds": round(elapsed, 1),
            "requests_per_s": round(summary["requests"] / elapsed, 2),
            "ideal_per_s": ideal,
            "share_of_ideal": round(summary["requests"] / elapsed / ideal, 3),
            "max_in_flight": server.max_in_flight,
        }
    with FakeOpenAI(latency=args.latency) as server:
        cmd = [
            sys.executable,
            "-m",
            "cbt",
            "generate",
            "--input",
            str(q),
            "--output",
            str(tmp / "b.jsonl"),
            "--base-url",
            server.base_url,
            "--model",
            "m",
            "--concurrency",
            str(args.concurrency),
            "--no-progress",
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(args.kill_after)
        in_flight_at_kill = server.in_flight
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        final = json.loads(resumed.stdout)
        result |= {
            "kill_after_s": args.kill_after,
            "in_flight_at_kill": in_flight_at_kill,
            "served_twice_after_resume": sum(n - 1 for n in server.ok_by_question.values()),
            "done_after_resume": final["done"],
        }
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
