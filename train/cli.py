"""`python -m cbt train` and `python -m cbt export` (dispatched here lazily by cbt/cli.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence


def train_main(argv: Sequence[str]) -> int:
    from train.config import load_config
    from train.sft import run

    p = argparse.ArgumentParser(prog="python -m cbt train", description="LoRA fine-tuning on CBT QA data")
    p.add_argument("--config", required=True, help="YAML recipe (configs/train/)")
    p.add_argument("overrides", nargs="*", help="key=value settings that override the YAML")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = run(load_config(args.config, args.overrides))
    if os.environ.get("RANK", "0") == "0":  # one summary from a multi-process run
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    return 0


def export_main(argv: Sequence[str]) -> int:
    from train.config import load_config
    from train.export import merge, write_llamafactory_yaml

    p = argparse.ArgumentParser(prog="python -m cbt export", description="merge an adapter; LLaMA-Factory YAML")
    p.add_argument("--config", required=True, help="the training recipe the adapter came from")
    p.add_argument("--merge-to", help="folder for the merged model")
    p.add_argument("--adapter", help="adapter folder (default: OUTPUT_DIR/adapter)")
    p.add_argument("--llamafactory", help="write LLaMA-Factory's YAML for the same run here")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    done = {}
    if args.merge_to:
        adapter = args.adapter or f"{cfg.output_dir}/adapter"
        done["merged"] = str(merge(cfg.model, adapter, args.merge_to, cfg.trust_remote_code))
    if args.llamafactory:
        done["llamafactory"] = str(write_llamafactory_yaml(cfg, args.llamafactory))
    if not done:
        p.error("nothing to do: give --merge-to and/or --llamafactory")
    sys.stdout.write(json.dumps(done) + "\n")
    return 0
