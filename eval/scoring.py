"""Pair predictions with references by id and score them: what `python -m cbt evaluate` and the tab run.

    python -m cbt evaluate --predictions P --references R [--json] [--compare P2]

Pairing is by id (`id`, or PsyQA's `questionID`); unmatched ids are an error that lists them, unless
allow_missing. Scores come from eval.metrics, the one metrics module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cbt.io import DataError, PathLike, iter_json_objects
from eval.config import EvalConfig

ID_FIELDS = ("id", "questionID")
NAMES = {
    "bleu": "BLEU",
    "chrf": "chrF",
    "meteor": "METEOR",
    "structure": "Structure",
    "distortion_coverage": "Distortion coverage",
    "bertscore": "BERTScore",
    "bleurt": "BLEURT",
}
PERCENT = {"bleu", "chrf", "meteor"}  # reported 0-100 by eval.metrics; the rest 0-1


@dataclass
class TextFile:
    """Texts of one predictions or references file, by id, with the line each came from."""

    path: str
    texts: dict[str, str]
    lines: dict[str, int]
    backbone: str = ""


@dataclass
class Paired:
    ids: list[str]
    hyps: list[str]
    refs: list[str]
    missing: list[str] = field(default_factory=list)  # references without a prediction
    extra: list[str] = field(default_factory=list)  # predictions without a reference


def load_texts(path: PathLike, text_field: str) -> TextFile:
    """id -> text from JSONL or a JSON array; errors name file:line and the field."""
    texts: dict[str, str] = {}
    lines: dict[str, int] = {}
    backbone = ""
    for line, obj in iter_json_objects(path):
        if not isinstance(obj, dict):
            raise DataError(path, line, f"expected a JSON object, got {type(obj).__name__}")
        key = next((k for k in ID_FIELDS if k in obj), None)
        if key is None or isinstance(obj[key], bool) or not isinstance(obj[key], str | int):
            raise DataError(path, line, "missing field 'id' (or 'questionID'): a string or integer")
        rid = str(obj[key])
        if rid in texts:
            raise DataError(path, line, f"duplicate id '{rid}' (first on line {lines[rid]})")
        text = obj.get(text_field)
        if not isinstance(text, str):
            got = "missing" if text_field not in obj else f"a {type(text).__name__}"
            raise DataError(path, line, f"field '{text_field}' must be a string, is {got} (keys: {sorted(obj)})")
        texts[rid], lines[rid] = text, line
        backbone = backbone or str(obj.get("backbone") or "")
    if not texts:
        raise DataError(path, None, "no records")
    return TextFile(str(path), texts, lines, backbone)


def _preview(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f" ... ({len(ids)} in all)" if len(ids) > 5 else "")


def pair_by_id(preds: TextFile, refs: TextFile, allow_missing: bool = False) -> Paired:
    """Predictions and references in the references' order; unmatched ids are an error unless allowed."""
    missing = [i for i in refs.texts if i not in preds.texts]
    extra = [i for i in preds.texts if i not in refs.texts]
    if (missing or extra) and not allow_missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} reference id(s) have no prediction in {preds.path}: {_preview(missing)}")
        if extra:
            parts.append(f"{len(extra)} prediction id(s) are not in {refs.path}: {_preview(extra)}")
        raise ValueError("; ".join(parts) + " (use --allow-missing to score the shared ids)")
    ids = [i for i in refs.texts if i in preds.texts]
    if not ids:
        raise ValueError(f"{preds.path} and {refs.path} share no ids")
    return Paired(ids, [preds.texts[i] for i in ids], [refs.texts[i] for i in ids], missing, extra)


def run_evaluate(cfg: EvalConfig, progress: bool = False) -> dict[str, Any]:
    """Metrics of cfg.predictions against cfg.references (eval.metrics.evaluate) plus the pairing summary."""
    from eval.metrics import evaluate

    preds = load_texts(cfg.predictions, cfg.prediction_field)
    refs = load_texts(cfg.references, cfg.reference_field)
    paired = pair_by_id(preds, refs, cfg.allow_missing)
    result = evaluate(
        paired.hyps,
        paired.refs,
        cfg.metrics,
        bertscore_model=cfg.bertscore_model or None,
        bleurt_checkpoint=cfg.bleurt_checkpoint or None,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
        progress=progress,
    )
    result.update(
        predictions=cfg.predictions,
        references=cfg.references,
        backbone=preds.backbone,
        ids=paired.ids,
        missing_ids=paired.missing,
        extra_ids=paired.extra,
    )
    return result


def compare(cfg: EvalConfig, other: str, metrics: list[str] | None = None) -> list[dict[str, Any]]:
    """Paired bootstrap of cfg.predictions (A) against `other` (B) on the ids both share with the references."""
    from eval.metrics import paired_bootstrap

    refs = load_texts(cfg.references, cfg.reference_field)
    a = pair_by_id(load_texts(cfg.predictions, cfg.prediction_field), refs, cfg.allow_missing)
    b = pair_by_id(load_texts(other, cfg.prediction_field), refs, cfg.allow_missing)
    hyp_b = dict(zip(b.ids, b.hyps, strict=True))
    shared = [(i, h, r) for i, h, r in zip(a.ids, a.hyps, a.refs, strict=True) if i in hyp_b]
    models = {"bertscore_model": cfg.bertscore_model or None, "bleurt_checkpoint": cfg.bleurt_checkpoint or None}
    out = []
    for metric in metrics or [m for m in cfg.metrics if m != "structure"]:
        try:
            res = paired_bootstrap(
                [h for _, h, _ in shared],
                [hyp_b[i] for i, _, _ in shared],
                [r for _, _, r in shared],
                metric=metric,
                n_boot=max(cfg.n_boot, 1),
                seed=cfg.seed,
                **models,
            )
        except ValueError as exc:  # a model metric without its checkpoint: say so, do not substitute
            res = {"metric": metric, "skipped": str(exc)}
        out.append({**res, "a_file": cfg.predictions, "b_file": other})
    return out


def fmt_score(name: str, res: dict[str, Any]) -> str:
    """'12.34 [10.10, 14.50]' (two decimals for 0-100 metrics, three for 0-1), or 'skipped'."""
    if "skipped" in res:
        return "skipped"
    nd = 2 if name in PERCENT else 3
    score = res.get("score")
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return "n/a"
    ci = res.get("ci95")
    text = f"{score:.{nd}f}" + (f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]" if ci else "")
    return text + (f" (n={res['n_scored']})" if "n_scored" in res else "")


def format_text_table(result: dict[str, Any]) -> str:
    """The evaluate result as a plain-text table for the terminal."""
    rows = [(NAMES.get(m, m), fmt_score(m, r)) for m, r in result["metrics"].items()]
    width = max(len(n) for n, _ in rows)
    head = f"{result.get('backbone') or result.get('predictions', '')}: {result['n']} pairs, score [95% CI]"
    lines = [head, "-" * len(head)] + [f"{n.ljust(width)}  {s}" for n, s in rows]
    skipped = [f"  {NAMES.get(m, m)}: {r['skipped']}" for m, r in result["metrics"].items() if "skipped" in r]
    if skipped:
        lines += ["skipped:", *skipped]
    if result.get("missing_ids") or result.get("extra_ids"):
        lines.append(f"unpaired: {len(result['missing_ids'])} missing, {len(result['extra_ids'])} extra ids")
    return "\n".join(lines) + "\n"
