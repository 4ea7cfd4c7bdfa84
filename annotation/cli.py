"""`python -m cbt annotate <command>`: the operator's side of the annotation store (direct database access).

    python -m cbt annotate init --db sqlite:///data/annotation.sqlite3
    CBT_PW=... python -m cbt annotate add-user alice --role rater --password-env CBT_PW
    python -m cbt annotate import-ratings preds_cbt-mini.jsonl preds_retrieval.jsonl --questions test.jsonl
    python -m cbt annotate sample-labels test.jsonl --n 500 --seed 0
    python -m cbt annotate export --what ratings --format csv --out ratings.csv
    python -m cbt annotate backup --to backups/annotation-2026-11-26.sqlite3
    python -m cbt annotate progress | agreement

--db (or env CBT_ANNOTATION_DB) picks the store; the default is <data dir>/annotation.sqlite3.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from annotation.export import FORMATS, write_export
from annotation.rows import AnnotationError, rating_item_id
from annotation.sampling import sample_ids
from annotation.store import AnnotationStore
from annotation.store import default_url as store_default
from cbt.io import DataError, iter_jsonl, load_cbtqa, load_questions, write_jsonl


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=1) + "\n")


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise AnnotationError(f"--password-env: environment variable {args.password_env} is not set or empty")
        return value
    if args.password is not None:
        sys.stderr.write("warning: --password puts the password in the shell history; prefer --password-env\n")
        return args.password
    first = getpass.getpass(f"password for {args.name}: ")
    if first != getpass.getpass("again: "):
        raise AnnotationError("password: the two entries differ")
    return first


def cmd_init(store: AnnotationStore, args: argparse.Namespace) -> int:
    _print({"db": store.url, "schema_version": store.db.version()})
    return 0


def cmd_add_user(store: AnnotationStore, args: argparse.Namespace) -> int:
    store.add_user(args.name, _password(args), args.role)
    _print({"user": args.name, "role": args.role})
    return 0


def cmd_hash_password(store: AnnotationStore | None, args: argparse.Namespace) -> int:
    from annotation.auth import hash_password

    sys.stdout.write(hash_password(_password(args)) + "\n")
    return 0


def cmd_load_users(store: AnnotationStore, args: argparse.Namespace) -> int:
    _print({"users": store.load_users(args.file)})
    return 0


def prediction_items(paths: Sequence[str], questions: str | None) -> list[dict[str, Any]]:
    """Rating items from predictions files; question/description joined from the test file where missing."""
    known = {r.id: r for r in load_questions(questions)} if questions else {}
    items = []
    for path in paths:
        for line, row in iter_jsonl(path):
            if not isinstance(row, dict):
                raise DataError(path, line, "expected a JSON object")
            for field in ("id", "prediction", "backbone"):
                if not isinstance(row.get(field), str) or not row[field].strip():
                    raise DataError(path, line, f"field '{field}' must be a non-empty string")
            ref = known.get(row["id"])
            if "question" not in row and ref is None:
                hint = f"not in {questions}" if questions else "give the test file with --questions"
                raise DataError(path, line, f"id '{row['id']}' has no question ({hint})")
            items.append({
                "item_id": rating_item_id(row["id"], row["backbone"]),
                "question_id": row["id"],
                "question": row.get("question") or ref.question,
                "description": row.get("description", ref.description if ref else "") or "",
                "response": row["prediction"],
                "backbone": row["backbone"],
            })  # fmt: skip
    return items


def cmd_import_ratings(store: AnnotationStore, args: argparse.Namespace) -> int:
    items = prediction_items(args.predictions, args.questions)
    _print({"rows": len(items), "new_items": store.import_rating_items(items)})
    return 0


def cmd_sample_labels(store: AnnotationStore, args: argparse.Namespace) -> int:
    records = {r.id: r for r in load_cbtqa(args.test)}
    try:
        chosen = sample_ids(list(records), args.n, args.seed)
    except AnnotationError as exc:
        raise AnnotationError(f"{args.test}: --{exc}") from None
    rows = [{"item_id": i, "question_id": i, "question": records[i].question,
             "description": records[i].description, "response": records[i].answer} for i in chosen]  # fmt: skip
    if args.out:
        write_jsonl(args.out, rows)
    _print({"sampled": len(rows), "new_items": store.import_label_items(rows), "seed": args.seed})
    return 0


def cmd_export(store: AnnotationStore, args: argparse.Namespace) -> int:
    rows = store.rating_rows() if args.what == "ratings" else store.label_rows()
    files = write_export(rows, args.what, args.format, args.out)
    _print({"rows": len(rows), "files": [str(f) for f in files]})
    return 0


def cmd_backup(store: AnnotationStore, args: argparse.Namespace) -> int:
    _print({"backup": str(store.backup(args.to))})
    return 0


def cmd_progress(store: AnnotationStore, args: argparse.Namespace) -> int:
    rows = store.progress_rows()
    if args.json:
        _print(rows)
        return 0
    sys.stdout.write(f"{'rater':<20} {'task':<7} {'done':>6} {'partial':>8} {'skipped':>8} {'total':>6}\n")
    for r in rows:
        line = f"{r['rater']:<20} {r['task']:<7} {r['done']:>6} {r['partial']:>8} {r['skipped']:>8} {r['total']:>6}"
        sys.stdout.write(line + "\n")
    return 0


def cmd_agreement(store: AnnotationStore, args: argparse.Namespace) -> int:
    from annotation.export import agreement

    _print(agreement(store.rating_rows(), store.label_rows()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cbt annotate", description=__doc__.split("\n")[0])
    db_help = "sqlite:///path or postgresql://user@host:port/db (env CBT_ANNOTATION_DB)"
    parser.add_argument("--db", help=db_help)
    common = argparse.ArgumentParser(add_help=False)  # --db before or after the command name
    common.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text)

    add("init", "create or migrate the store").set_defaults(func=cmd_init)
    p = add("add-user", "add a rater or admin (or reset their password)")
    p.add_argument("name")
    p.add_argument("--role", choices=("rater", "admin"), default="rater")
    p.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    p.add_argument("--password", help="the password itself (visible in shell history; for scripts only)")
    p.set_defaults(func=cmd_add_user)
    p = add("hash-password", "print an scrypt hash for the password_hash field of a users file")
    p.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    p.add_argument("--password", help="the password itself (visible in shell history; for scripts only)")
    p.set_defaults(func=cmd_hash_password, name="this user")
    p = add("load-users", "users from a YAML/JSON file, or from env CBT_USERS when no file")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_load_users)
    p = add("import-ratings", "rating items from `python -m cbt predict` outputs")
    p.add_argument("predictions", nargs="+")
    p.add_argument("--questions", help="the CBT QA test file, for question/description missing from predictions")
    p.set_defaults(func=cmd_import_ratings)
    p = add("sample-labels", "a seeded random sample of the test split to label")
    p.add_argument("test")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the sample as JSONL")
    p.set_defaults(func=cmd_sample_labels)
    p = add("export", "ratings or labels as JSONL, CSV or a Hugging Face dataset folder")
    p.add_argument("--what", choices=("ratings", "labels"), required=True)
    p.add_argument("--format", choices=FORMATS, default="jsonl")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export)
    p = add("backup", "copy the SQLite store with the online backup API")
    p.add_argument("--to", required=True)
    p.set_defaults(func=cmd_backup)
    p = add("progress", "per rater and task: done, partial, skipped, total")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_progress)
    add("agreement", "Krippendorff's alpha, weighted and per-distortion kappa").set_defaults(func=cmd_agreement)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.func is cmd_hash_password:  # needs no store
        try:
            return cmd_hash_password(None, args)
        except AnnotationError as exc:
            sys.stderr.write(f"annotate hash-password: error: {exc}\n")
            return 2
    try:
        store = AnnotationStore(args.db)
    except Exception as exc:  # a bad URL or an unreachable server: one line, not a traceback
        reason = " ".join(str(exc).split())
        sys.stderr.write(f"annotate: error: cannot open the store {args.db or store_default()}: {reason}\n")
        return 1
    try:
        return args.func(store, args)
    except (AnnotationError, DataError, ValueError, OSError) as exc:
        sys.stderr.write(f"annotate {args.command}: error: {' '.join(str(exc).split())}\n")
        return 2
    finally:
        store.close()
