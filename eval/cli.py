"""`python -m cbt predict | evaluate | report`: argv in, exit code out; errors are one line on stderr."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cbt.io import DataError


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 2


def _guarded(run: Callable[[], int]) -> int:
    """Bad input (files, settings, backbones) ends with one line naming what is wrong, not a traceback."""
    from eval.predict import PredictError

    try:
        return run()
    except (DataError, PredictError, ValueError, FileNotFoundError, KeyError) as exc:
        return _fail(str(exc).strip("'\""))


def _overrides(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        value = getattr(args, name, None)
        if value is None or value is False:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        out.append(f"{name}={value}")
    return out


def predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cbt predict", description="Answer a test file with one backbone.")
    p.add_argument("--backbone", help="backbone id (configs/backbones.yaml); openai: set OPENAI_BASE_URL/MODEL")
    p.add_argument("--input", help="questions: CBT QA JSONL/JSON or PsyQA JSON")
    p.add_argument("--output", help="predictions JSONL (resumable: rerun to continue)")
    p.add_argument("--config", help="YAML with PredictConfig settings (flags override it)")
    p.add_argument("--backbones-config", dest="backbones_config", help="backbones YAML (default: CBT_BACKBONES)")
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--limit", type=int)
    p.add_argument("--no-progress", dest="no_progress", action="store_true")
    return p


PREDICT_FLAGS = ("backbone", "input", "output", "backbones_config", "batch_size", "concurrency", "max_new_tokens",
                 "temperature", "seed", "limit")  # fmt: skip


def predict_main(argv: Sequence[str]) -> int:
    """Exit 0 when every question has an answer in the output file."""
    args = predict_parser().parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    def run() -> int:
        from eval.config import PredictConfig, load_config
        from eval.predict import run_predict

        overrides = _overrides(args, PREDICT_FLAGS) + (["progress=false"] if args.no_progress else [])
        summary = run_predict(load_config(PredictConfig, args.config, overrides))
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        return 0

    return _guarded(run)


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cbt evaluate", description="Score predictions against references.")
    p.add_argument("--predictions", help="predictions JSONL/JSON (id + prediction)")
    p.add_argument("--references", help="reference records (id or questionID + answer)")
    p.add_argument("--config", help="YAML with EvalConfig settings (flags override it)")
    p.add_argument(
        "--metrics", help="comma-separated: bleu,chrf,meteor,structure,distortion_coverage,bertscore,bleurt"
    )
    p.add_argument("--reference-field", dest="reference_field", help="reference text field (autocbt: cbt_answer)")
    p.add_argument("--prediction-field", dest="prediction_field", help="prediction text field (default prediction)")
    p.add_argument("--bertscore-model", dest="bertscore_model", help="local encoder directory for BERTScore")
    p.add_argument("--bleurt-checkpoint", dest="bleurt_checkpoint", help="local BLEURT-style checkpoint directory")
    p.add_argument("--n-boot", dest="n_boot", type=int, help="bootstrap resamples (default 1000; 0: no CIs)")
    p.add_argument("--seed", type=int)
    p.add_argument("--allow-missing", dest="allow_missing", action="store_true", help="score the shared ids only")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--per-item", dest="per_item", help="write per-item scores to this JSONL")
    p.add_argument("--compare", help="second predictions file: paired bootstrap A (--predictions) vs B")
    return p


EVAL_FLAGS = ("predictions", "references", "metrics", "reference_field", "prediction_field", "bertscore_model",
              "bleurt_checkpoint", "n_boot", "seed", "allow_missing")  # fmt: skip


def _per_item_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    scored = {m: r["per_item"] for m, r in result["metrics"].items() if "per_item" in r}
    return [{"id": i, **{m: v[k] for m, v in scored.items()}} for k, i in enumerate(result["ids"])]


def evaluate_main(argv: Sequence[str]) -> int:
    """Exit 0 with the scores; 2 with one line naming the file:line or setting at fault."""
    args = evaluate_parser().parse_args(list(argv))

    def run() -> int:
        from cbt.io import write_jsonl
        from eval.config import EvalConfig, load_config
        from eval.scoring import compare, format_text_table, run_evaluate

        cfg = load_config(EvalConfig, args.config, _overrides(args, EVAL_FLAGS))
        result = run_evaluate(cfg)
        if args.per_item:
            write_jsonl(args.per_item, _per_item_rows(result))
        comparison = compare(cfg, args.compare) if args.compare else None
        if args.json:
            slim = {**result, "metrics": {m: {k: v for k, v in r.items() if k != "per_item"}
                                          for m, r in result["metrics"].items()}}  # fmt: skip
            slim.pop("ids")
            if comparison is not None:
                slim["comparison"] = comparison
            sys.stdout.write(json.dumps(slim, ensure_ascii=False) + "\n")
            return 0
        sys.stdout.write(format_text_table(result))
        for c in comparison or []:
            sys.stdout.write(_comparison_line(c))
        return 0

    return _guarded(run)


def _comparison_line(c: dict[str, Any]) -> str:
    if "skipped" in c:
        return f"compare {c['metric']}: skipped - {c['skipped']}\n"
    lo, hi = c["ci95"]
    return (f"compare {c['metric']}: A {c['a']:.3f} - B {c['b']:.3f} = {c['delta']:+.3f} "
            f"[95% CI {lo:+.3f}, {hi:+.3f}], p = {c['p_value']:.4f} (paired bootstrap, n={c['n']})\n")  # fmt: skip


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cbt report", description="Tables 3-5 and charts into a folder.")
    p.add_argument("--predictions", nargs="+", help="one predictions file per Table 4 row")
    p.add_argument("--references", help="reference records, paired by id")
    p.add_argument("--out", help="report folder")
    p.add_argument("--names", nargs="+", help="row names, one per predictions file (default: their backbone)")
    p.add_argument("--labels", help="distortion labels JSONL (Table 3)")
    p.add_argument("--ratings", help="human ratings JSONL (Table 5)")
    p.add_argument("--config", help="YAML with ReportConfig settings (flags override it)")
    p.add_argument("--metrics", help="comma-separated metric names")
    p.add_argument("--reference-field", dest="reference_field")
    p.add_argument("--prediction-field", dest="prediction_field")
    p.add_argument("--bertscore-model", dest="bertscore_model")
    p.add_argument("--bleurt-checkpoint", dest="bleurt_checkpoint")
    p.add_argument("--n-boot", dest="n_boot", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--allow-missing", dest="allow_missing", action="store_true")
    p.add_argument("--title")
    p.add_argument("--notes", help="Markdown put under the report's heading")
    return p


REPORT_FLAGS = ("predictions", "references", "out", "names", "labels", "ratings", "metrics", "reference_field",
                "prediction_field", "bertscore_model", "bleurt_checkpoint", "n_boot", "seed", "allow_missing",
                "title", "notes")  # fmt: skip


def report_main(argv: Sequence[str]) -> int:
    """Exit 0 after writing the report folder; prints {kind: path} as JSON."""
    args = report_parser().parse_args(list(argv))

    def run() -> int:
        from eval.config import ReportConfig, load_config
        from eval.report import write_report

        cfg = load_config(ReportConfig, args.config, _overrides(args, REPORT_FLAGS))
        sys.stdout.write(json.dumps(write_report(cfg), ensure_ascii=False) + "\n")
        return 0

    return _guarded(run)
