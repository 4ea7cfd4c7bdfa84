"""Ratings and labels out of the store: eval row formats, JSONL / CSV / Hugging Face dataset folders, backups,
and inter-rater agreement (computed by eval.agreement, the project's one implementation).

Every writer is deterministic (same rows, same bytes: fixed column order, sorted rows, no timestamps) and atomic.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from annotation.db import Database
from annotation.rows import TASKS, AnnotationError, decode_row, row_status
from cbt.io import atomic_write_text, dumps_jsonl
from cbt.taxonomy import DISTORTION_IDS

RATING_COLUMNS = ("item_id", "question_id", "backbone", "rater", "relevance", "structure", "helpfulness", "comment",
                  "flag", "skipped")  # fmt: skip
LABEL_COLUMNS = ("item_id", "question_id", "rater", "distortions", "key_thought", "confidence")
COLUMNS = {"ratings": RATING_COLUMNS, "labels": LABEL_COLUMNS}
METRICS = ("relevance", "structure", "helpfulness")
FORMATS = ("jsonl", "csv", "hf")


# ---------------------------------------------------------------- rows from the database


def progress_rows(db: Database) -> list[dict[str, Any]]:
    """Per rater and task: done / partial / skipped / total, for every rater account and anyone with rows."""
    out = []
    with db.transaction(write=False) as tx:
        raters = {r["username"] for r in tx.execute("SELECT username FROM users WHERE role = 'rater'").all()}
        for task in TASKS:
            total = tx.execute(f"SELECT COUNT(*) FROM {task.items}").scalar()
            counts: dict[str, dict[str, int]] = {r: {} for r in raters}
            for row in tx.execute(f"SELECT rater, {', '.join(task.fields)} FROM {task.rows}").all():
                status = row_status(task, decode_row(task, row))
                mine = counts.setdefault(row["rater"], {})
                mine[status] = mine.get(status, 0) + 1
            for rater in sorted(counts):
                counted = {k: counts[rater].get(k, 0) for k in ("done", "partial", "skipped")}
                out.append({"rater": rater, "task": task.name, **counted, "total": total})
    return out


def rating_rows(db: Database) -> list[dict[str, Any]]:
    """All ratings in the eval row format, sorted by (question_id, backbone, rater)."""
    with db.transaction(write=False) as tx:
        rows = tx.execute(
            "SELECT r.item_id, i.question_id, i.backbone, r.rater, r.relevance, r.structure, r.helpfulness,"
            " r.comment, r.flag, r.skipped FROM ratings r JOIN rating_items i ON i.item_id = r.item_id"
            " ORDER BY i.question_id, i.backbone, r.rater, r.item_id"
        ).all()
    for row in rows:
        row["comment"] = row["comment"] or ""
        row["flag"], row["skipped"] = bool(row["flag"]), bool(row["skipped"])
    return rows


def label_rows(db: Database) -> list[dict[str, Any]]:
    """Saved labels (not skipped) in the eval row format ([] distortions for 'none'), by (question_id, rater)."""
    with db.transaction(write=False) as tx:
        rows = tx.execute(
            "SELECT l.item_id, i.question_id, l.rater, l.distortions, l.key_thought, l.confidence, l.skipped"
            " FROM labels l JOIN label_items i ON i.item_id = l.item_id ORDER BY i.question_id, l.rater, l.item_id"
        ).all()
    return [
        {"item_id": row["item_id"], "question_id": row["question_id"], "rater": row["rater"],
         "distortions": [d for d in json.loads(row["distortions"]) if d != "none"],
         "key_thought": row["key_thought"] or "", "confidence": row["confidence"]}
        for row in rows
        if row["distortions"] is not None and not row["skipped"]
    ]  # fmt: skip


def backup_sqlite(source: Path, dest_path: str | os.PathLike) -> Path:
    """Copy a live SQLite file with the online backup API into a temp file, then rename it into place."""
    dest = Path(dest_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        src, dst = sqlite3.connect(source), sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        finally:
            dst.close()
            src.close()
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


# ---------------------------------------------------------------- files


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


def dumps_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header, `\\n` line ends, lists joined by ';', booleans as true/false.

    >>> dumps_csv([{"a": ["x", "y"], "b": True}], ["a", "b"])
    'a,b\\nx;y,true\\n'
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def dataset_card(what: str, rows: Sequence[dict[str, Any]]) -> str:
    """README.md for a Hugging Face dataset folder: YAML front matter naming the data file, then a description."""
    columns = "\n".join(f"- `{c}`" for c in COLUMNS[what])
    task = "Table 5 ratings (0-2)" if what == "ratings" else "Table 3 distortion labels (ground truth)"
    return (
        f"---\nconfigs:\n- config_name: {what}\n  data_files:\n  - split: train\n    path: data/{what}.jsonl\n"
        "language:\n- zh\nlicense: other\n---\n\n"
        f"# CBT-LLM Studio annotations: {what}\n\n"
        f"{task} from the annotation store of CBT-LLM Studio, {len(rows)} rows, one per (rater, item).\n"
        f'Load with `datasets.load_dataset("<this folder>")`.\n\nColumns:\n{columns}\n'
    )


def write_export(rows: Sequence[dict[str, Any]], what: str, fmt: str, out: str | os.PathLike) -> list[Path]:
    """Write rows as JSONL, CSV or a dataset folder; returns the files written."""
    if what not in COLUMNS:
        raise AnnotationError(f"what: must be ratings or labels, got {what!r}")
    if fmt not in FORMATS:
        raise AnnotationError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    ordered = [{c: row.get(c) for c in COLUMNS[what]} for row in rows]
    target = Path(out)
    if fmt == "jsonl":
        return [atomic_write_text(target, dumps_jsonl(ordered))]
    if fmt == "csv":
        return [atomic_write_text(target, dumps_csv(ordered, COLUMNS[what]))]
    if target.exists() and not target.is_dir():
        raise AnnotationError(f"out: {target} exists and is not a folder (hf writes a dataset folder)")
    return [
        atomic_write_text(target / "data" / f"{what}.jsonl", dumps_jsonl(ordered)),
        atomic_write_text(target / "README.md", dataset_card(what, ordered)),
    ]


# ---------------------------------------------------------------- agreement


def agreement(ratings: Sequence[dict[str, Any]], labels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per rating metric: Krippendorff's alpha (ordinal) and the mean pairwise quadratic-weighted kappa on the 0-2
    scale; per distortion type: mean pairwise Cohen's kappa of "chose it". None where undefined (too few raters)."""
    from eval import agreement as ag

    out: dict[str, Any] = {"ratings": {}, "distortions": {}}
    for metric in METRICS:
        raters, units, matrix = ag.rating_matrix(ratings, metric)
        pairs = ag.pairwise_kappa(ratings, metric, weights="quadratic", labels=[0, 1, 2])
        out["ratings"][metric] = {
            "alpha_ordinal": ag.krippendorff_alpha(matrix, level="ordinal") if len(raters) >= 2 else None,
            "weighted_kappa": pairs["kappa"], "raters": len(raters), "units": len(units), "pairs": pairs["n_pairs"],
        }  # fmt: skip
    out["distortions"] = ag.distortion_kappa(labels, DISTORTION_IDS, unit="item_id")
    return out
