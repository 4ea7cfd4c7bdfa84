"""Benchmark: CBT-mini training speed and memory on this CPU (a short run of the real recipe).

    python bench/bench_train_mini.py [--steps 5]

Runs `configs/train/mini.yaml` for a few optimizer steps in a temporary folder and prints seconds per
optimizer step, steps/s, peak memory and the projected time for the full 3 epochs. The full run's own
figures are in models/cbt-mini/train_summary.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.config import load_config  # noqa: E402
from train.sft import run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    out = tempfile.mkdtemp(prefix="bench_train_")
    cfg = load_config(
        ROOT / "configs" / "train" / "mini.yaml",
        [f"output_dir={out}", f"max_steps={args.steps}", "max_eval_records=2"],
    )
    summary = run(cfg)
    per_step = summary["train_seconds"] / summary["global_step"]
    full_steps = math.ceil(summary["train_examples"] / cfg.grad_accum) * cfg.epochs
    print(
        json.dumps(
            {
                "steps": summary["global_step"],
                "seconds_per_step": round(per_step, 2),
                "steps_per_s": summary["steps_per_s"],
                "peak_rss_mb": summary["peak_rss_mb"],
                "projected_full_run_min": round(per_step * full_steps / 60, 1),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
