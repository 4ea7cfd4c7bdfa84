"""`python -m cbt <command>`: the one command-line entry point.

Core commands live here; the training, evaluation and annotation commands are dispatched lazily to their
packages' own cli modules, so `python -m cbt safety` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence

from cbt.io import DataError

# Subcommands served by other packages: name -> "module:function(argv) -> int".
EXTERNAL_COMMANDS: dict[str, str] = {
    "segmenter-train": "cbt.segmenter_train:main",
    "safety-train": "cbt.safety_model:main",
    "train": "train.cli:train_main",
    "export": "train.cli:export_main",
    "prepare-mini": "train.mini:main",
    "predict": "eval.cli:predict_main",
    "evaluate": "eval.cli:evaluate_main",
    "report": "eval.cli:report_main",
    "annotate": "annotation.cli:main",
    "push-space": "cbt.space:main",
}


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError("<stdin>", None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")


def cmd_stats(args: argparse.Namespace) -> int:
    from cbt.io import SAMPLE_PATH, load_cbtqa
    from cbt.stats import compute_stats, format_tables

    path = args.file or SAMPLE_PATH
    stats = compute_stats(load_cbtqa(path), source=args.distortions)
    if args.json:
        _print_json({"file": str(path), **stats.to_dict()})
    else:
        sys.stdout.write(f"File: {path}\n\n" + format_tables(stats))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from cbt.io import SAMPLE_PATH, load_cbtqa
    from cbt.prompter import Prompter
    from cbt.split import export_split, split_records

    records = load_cbtqa(args.input or SAMPLE_PATH)
    train, test = split_records(records, test_ratio=args.test_ratio, seed=args.seed)
    written = export_split(train, test, args.out, name=args.name, prompter=Prompter(args.instruction_lang))
    _print_json({"train": len(train), "test": len(test), "files": {k: str(v) for k, v in written.items()}})
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from cbt.sections import segment

    _print_json(segment(_read_stdin()).to_dict())
    return 0


def cmd_distortions(args: argparse.Namespace) -> int:
    from cbt.distortions import extract_distortions

    _print_json({"distortions": extract_distortions(_read_stdin())})
    return 0


def cmd_safety(args: argparse.Namespace) -> int:
    from cbt.safety import assess

    _print_json(assess(_read_stdin()).to_dict())
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from cbt.analyze import analyze_answers, load_texts

    report = analyze_answers(load_texts(args.file, args.field), workers=args.workers)
    _print_json({"file": args.file, **report.to_dict()})
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import logging

    from cbt.generate import load_config, run

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(
        args.config,
        input=args.input,
        output=args.output,
        base_url=args.base_url,
        model=args.model,
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        budget_usd=args.budget_usd,
        rpm=args.rpm,
        tpm=args.tpm,
        lang=args.lang,
        example=args.example,
        batch=args.batch or None,
        retry_failed=args.retry_failed or None,
        poll_s=args.poll_s,
        progress=not args.no_progress,
    )
    result = run(cfg)
    _print_json(result)
    return 0 if result["stopped"] is None else 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cbt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("stats", help="Tables 1-2 (lengths, distortions) for a CBT QA file")
    p.add_argument("file", nargs="?", help="CBT QA JSONL/JSON (default: the shipped sample set)")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    p.add_argument(
        "--distortions",
        choices=["auto", "text", "labels"],
        default="auto",
        help="where distortions come from: recorded labels, the extractor on the text, or auto "
        "(labels when every record has them)",
    )
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("split", help="seeded train/test split + alpaca and LLaMA-Factory export")
    p.add_argument("--input", help="CBT QA JSONL/JSON (default: the shipped sample set)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--test-ratio", type=float, default=0.1)
    p.add_argument("--name", default="cbt_qa", help="dataset name in dataset_info.json")
    p.add_argument("--instruction-lang", choices=["en", "zh"], default="en")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("generate", help="CBT answers for PsyQA-style questions from an OpenAI-compatible API")
    p.add_argument("--input", required=True, help="PsyQA JSON or our JSONL of questions")
    p.add_argument("--output", required=True, help="JSONL, one record per question id (plus .ledger/.failures)")
    p.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://localhost:8000/v1")
    p.add_argument("--model", required=True)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--max-requests", type=int, help="stop after this many requests in this run")
    p.add_argument("--budget-usd", type=float, help="stop cleanly before spending could exceed this")
    p.add_argument("--rpm", type=float, help="requests-per-minute limit")
    p.add_argument("--tpm", type=float, help="tokens-per-minute limit")
    p.add_argument("--lang", choices=["zh", "en"], help="language of the CBT prompt")
    p.add_argument("--example", help="JSON {question, description, answer}: a worked example in the prompt")
    p.add_argument("--batch", action="store_true", help="use the OpenAI Batch API (half price, slower)")
    p.add_argument("--poll-s", type=float, help="batch mode: seconds between status checks")
    p.add_argument("--retry-failed", action="store_true", help="try ids recorded as failed again")
    p.add_argument("--config", help="YAML defaults (default: configs/generation.yaml)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("analyze", help="sections and distortions over a file of answers (JSON)")
    p.add_argument("file", help="JSON array or JSON Lines")
    p.add_argument("--field", default="answer", help="the field holding each answer (default: answer)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for large files")
    p.set_defaults(func=cmd_analyze)

    for name, func, text in (
        ("segment", cmd_segment, "stdin: a response; JSON: section spans and structure score"),
        ("distortions", cmd_distortions, "stdin: text; JSON: the distortion ids it names"),
        ("safety", cmd_safety, "stdin: a user message; JSON: crisis, level, reasons"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=func)

    for name in EXTERNAL_COMMANDS:
        sub.add_parser(name, help=f"see `python -m cbt {name} --help`", add_help=False)
    return parser


def _external(name: str) -> Callable[[Sequence[str]], int]:
    module, func = EXTERNAL_COMMANDS[name].split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in EXTERNAL_COMMANDS:
            return _external(argv[0])(argv[1:])
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        return args.func(args)
    except (DataError, ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
