"""Benchmark: segment + extract distortions on 22,327 answers (the size of the paper's CBT QA set).

    python bench/bench_text_analysis.py [--n 22327]

Answers are the shipped sample set's, cycled to N (mean ~530 characters, like the paper's 522.8).
Target (issue): <= 10 s on the 2-core CPU. Times one process (segment, then extract) and then
`analyze_many` over all cores (what `python -m cbt analyze` uses). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbt.analyze import analyze_many
from cbt.distortions import extract_distortions
from cbt.io import load_sample
from cbt.sections import segment


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=22327)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the parallel run")
    args = p.parse_args()
    answers = [r.answer for r in load_sample()]
    texts = [answers[i % len(answers)] for i in range(args.n)]
    segment(texts[0])  # load lexicons and weights outside the timing
    t0 = time.perf_counter()
    for t in texts:
        segment(t)
    t1 = time.perf_counter()
    for t in texts:
        extract_distortions(t)
    t2 = time.perf_counter()
    analyze_many(texts, workers=args.workers)
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "answers": args.n,
                "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
                "segment_s": round(t1 - t0, 2),
                "distortions_s": round(t2 - t1, 2),
                "total_s": round(t2 - t0, 2),
                "ms_per_answer": round(1000 * (t2 - t0) / args.n, 3),
                f"total_s_{args.workers}_processes": round(t3 - t2, 2),
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                + platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
