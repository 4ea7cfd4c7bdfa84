"""The paper's Table 3 (distortion recognition against human labels) and Table 5 (human ratings), from rows.

eval never opens the annotation store: the annotation export writes these JSONL rows and callers hand
them in as lists of dicts (see annotation/export.py):
- ratings: {"item_id", "question_id", "backbone", "rater", "relevance", "structure", "helpfulness" (0|1|2),
  "comment", "flag", "skipped"}
- labels: {"item_id", "question_id", "rater", "distortions": [taxonomy ids] ([] = "none"), "key_thought",
  "confidence"}
- predictions: {"id" (= question id), "prediction", "backbone", ...}

>>> t = table3([{"question_id": "q", "rater": "a", "distortions": ["labeling"]}],
...            [{"id": "q", "prediction": "这是贴标签。", "backbone": "m"}])
>>> t["backbones"]["m"]["any"]["recall"], t["backbones"]["m"]["micro"]["f1"]
(1.0, 1.0)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from cbt.distortions import extract_distortions
from cbt.taxonomy import DISTORTION_IDS, DISTORTIONS
from eval.agreement import distortion_kappa, krippendorff_alpha, pairwise_kappa, rating_matrix
from eval.stats import bootstrap_ratio

RATING_METRICS = ("relevance", "structure", "helpfulness")
PAPER_TABLE3 = {"accuracy": 0.69, "recall": 0.93, "f1": 0.65}
PAPER_TABLE5 = {
    "Alpaca-Chinese-7B": {"relevance": 1.732, "structure": 1.508, "helpfulness": 1.408},
    "Baichuan-7B": {"relevance": 1.734, "structure": 1.644, "helpfulness": 1.432},
}
GOLD_RULE = (
    "gold per question from its raters' labels: a type is gold when at least half of the question's raters "
    "chose it (a tie counts, so two disagreeing raters give the union); the question 'has a distortion' when "
    "at least half of its raters chose at least one type (not 'none')"
)
TABLE3_DEFINITIONS = {
    "item": "one (question, backbone) prediction whose question has human labels",
    "predicted": "the distortion types the prediction names (cbt.distortions.extract_distortions)",
    "any": "binary per item, positive = names >= 1 distortion vs gold 'has a distortion'; accuracy = (TP+TN)/n, "
    "precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R)",
    "per_type": "for type t over items: TP = t predicted and gold, FP = predicted not gold, FN = gold not "
    "predicted; precision, recall, F1 as above; support = number of items where t is gold",
    "micro": "TP, FP, FN summed over all types, then precision, recall, F1",
    "macro": "mean of per-type precision, recall, F1 over types that are gold or predicted at least once",
    "exact_match": "share of items whose predicted type set equals the gold set",
    "paper_table3": "the paper's Table 3 (accuracy, recall, F1; definitions not given there) mapped to our 'any'",
    "undefined": "a ratio with a zero denominator is null",
    "ci95": "percentile bootstrap over items (resampled with replacement) of the 'any' and micro figures",
}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * p * r / (p + r) if p is not None and r is not None and p + r > 0 else (0.0 if p == 0 or r == 0 else None)
    return {"precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def _require(row: dict, i: int, what: str, fields: Sequence[str]) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{what} row {i}: expected an object, got {type(row).__name__}")
    for f in fields:
        if f not in row:
            raise ValueError(f"{what} row {i}: missing field {f!r}")


def gold_labels(labels: Sequence[dict]) -> dict[str, tuple[bool, frozenset[str], int]]:
    """{question_id: (has a distortion, gold types, number of raters)} under GOLD_RULE; validates the rows."""
    by_q: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for i, row in enumerate(labels):
        _require(row, i, "labels", ("question_id", "rater", "distortions"))
        ids = row["distortions"]
        if not isinstance(ids, list):
            raise ValueError(f"labels row {i}: field 'distortions' must be a list of taxonomy ids")
        for d in ids:
            if d not in DISTORTIONS:
                raise ValueError(f"labels row {i}: unknown distortion {d!r} in field 'distortions'")
        q, rater = str(row["question_id"]), str(row["rater"])
        if rater in by_q[q]:
            raise ValueError(f"labels row {i}: rater {rater!r} labelled question {q!r} twice")
        by_q[q][rater] = ids
    gold = {}
    for q, per_rater in by_q.items():
        k = len(per_rater)
        votes = Counter(d for ids in per_rater.values() for d in set(ids))
        has = 2 * sum(bool(ids) for ids in per_rater.values()) >= k
        gold[q] = (has, frozenset(d for d, v in votes.items() if 2 * v >= k), k)
    return gold


def _score_items(items: list[tuple[bool, frozenset, frozenset]]) -> dict[str, Any]:
    """Table 3 figures for (gold has-distortion, gold types, predicted types) items."""
    conf = Counter((has, bool(pred)) for has, _, pred in items)
    tp, fp, fn, tn = conf[(True, True)], conf[(False, True)], conf[(True, False)], conf[(False, False)]
    anyd = {"accuracy": _ratio(tp + tn, len(items)), **_prf(tp, fp, fn), "tn": tn}
    per_type = {}
    for t in DISTORTION_IDS:
        c = Counter((t in g, t in p) for _, g, p in items)
        per_type[t] = {
            **_prf(c[(True, True)], c[(False, True)], c[(True, False)]),
            "support": sum(t in g for _, g, _ in items),
        }
    micro = _prf(*(sum(v[k] for v in per_type.values()) for k in ("tp", "fp", "fn")))
    active = [v for v in per_type.values() if v["tp"] + v["fp"] + v["fn"] > 0]
    macro = {k: _mean([v[k] for v in active]) for k in ("precision", "recall", "f1")}
    return {
        "n": len(items), "any": anyd, "per_type": per_type, "micro": micro, "macro": macro,
        "exact_match": _ratio(sum(g == p for _, g, p in items), len(items)),
        "paper_table3": {"accuracy": anyd["accuracy"], "recall": anyd["recall"], "f1": anyd["f1"]},
    }  # fmt: skip


def _intervals(items: list[tuple[bool, frozenset, frozenset]], n_boot: int, seed: int) -> dict[str, Any]:
    """Bootstrap 95% CIs over items for the 'any' and micro figures: each is a ratio of per-item sums
    (accuracy = correct/1, precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN))."""
    counts = {
        "any": [(int(h and bool(p)), int(not h and bool(p)), int(h and not p)) for h, _, p in items],
        "micro": [(len(g & p), len(p - g), len(g - p)) for _, g, p in items],
    }
    out: dict[str, Any] = {}
    for name, rows in counts.items():
        tp, fp, fn = ([r[k] for r in rows] for k in range(3))
        ratios = {
            "precision": (tp, [a + b for a, b in zip(tp, fp, strict=True)]),
            "recall": (tp, [a + b for a, b in zip(tp, fn, strict=True)]),
            "f1": ([2 * a for a in tp], [2 * a + b + c for a, b, c in zip(tp, fp, fn, strict=True)]),
        }
        if name == "any":
            ratios["accuracy"] = ([int(h == bool(p)) for h, _, p in items], [1] * len(items))
        out[name] = {
            k: bootstrap_ratio(num, den, n_boot=n_boot, seed=seed)["ci95"] if sum(den) else None
            for k, (num, den) in ratios.items()
        }
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return sum(clean) / len(clean) if clean else None


def table3(
    labels: Sequence[dict], predictions: Sequence[dict], by_backbone: bool = True, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Distortion recognition of predictions against human labels (see TABLE3_DEFINITIONS and GOLD_RULE), with
    percentile bootstrap 95% CIs over items ("ci95") for the 'any' and micro figures; n_boot=0 skips them."""
    gold = gold_labels(labels)
    groups: dict[str, list] = defaultdict(list)
    unlabelled: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(predictions):
        _require(row, i, "predictions", ("id", "prediction"))
        if not isinstance(row["prediction"], str):
            raise ValueError(f"predictions row {i}: field 'prediction' must be a string")
        backbone = str(row.get("backbone") or "unknown") if by_backbone else "all"
        key = (str(row["id"]), str(row.get("backbone") or "unknown"))
        if key in seen:
            raise ValueError(f"predictions row {i}: duplicate prediction for id {key[0]!r}, backbone {key[1]!r}")
        seen.add(key)
        if key[0] not in gold:
            unlabelled[backbone] += 1
            continue
        has, types, _ = gold[key[0]]
        groups[backbone].append((has, types, frozenset(extract_distortions(row["prediction"]))))
    backbones = {}
    for b, items in groups.items():
        backbones[b] = {**_score_items(items), "unlabelled_predictions": unlabelled[b]}
        backbones[b]["ci95"] = _intervals(items, n_boot, seed) if n_boot > 0 else None
    return {
        "backbones": dict(sorted(backbones.items())),
        "n_questions_labelled": len(gold),
        "raters_per_question": _mean([k for _, _, k in gold.values()]),
        "gold_rule": GOLD_RULE,
        "labeller_agreement": _label_agreement(labels),
        "definitions": TABLE3_DEFINITIONS,
        "paper": PAPER_TABLE3,
    }


def _label_agreement(labels: Sequence[dict]) -> dict[str, Any]:
    """How far the labellers agree: Cohen's kappa (mean over labeller pairs) on 'has a distortion' and per type."""
    has = [{**r, "_has": int(bool(r["distortions"]))} for r in labels]
    binary = pairwise_kappa(has, "_has", weights=None, labels=[0, 1], unit="question_id")
    return {
        "has_distortion": {"kappa": binary["kappa"], "n_pairs": binary["n_pairs"]},
        "per_type": distortion_kappa(labels, DISTORTION_IDS, unit="question_id"),
    }


def _check_ratings(ratings: Sequence[dict]) -> list[dict]:
    """Validated non-skipped rating rows (0, 1 or 2 for each metric; None allowed = not rated)."""
    kept = []
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(ratings):
        _require(row, i, "ratings", ("item_id", "rater", "backbone"))
        if row.get("skipped"):
            continue
        key = (str(row["rater"]), str(row["item_id"]))
        if key in seen:
            raise ValueError(f"ratings row {i}: rater {key[0]!r} rated item {key[1]!r} twice")
        seen.add(key)
        for m in RATING_METRICS:
            v = row.get(m)
            if v is not None and (isinstance(v, bool) or v not in (0, 1, 2)):
                raise ValueError(f"ratings row {i}: field {m!r} must be 0, 1 or 2, got {v!r}")
        kept.append(row)
    return kept


def _agreement(rows: list[dict], metric: str) -> dict[str, Any]:
    _, _, matrix = rating_matrix(rows, metric) if rows else ([], [], [])
    alpha = krippendorff_alpha(matrix, "ordinal") if len(matrix) >= 2 else None
    kappa = pairwise_kappa(rows, metric, weights="quadratic", labels=(0, 1, 2))
    units = sum(sum(v is not None for v in col) >= 2 for col in zip(*matrix, strict=True)) if matrix else 0
    return {"alpha_ordinal": alpha, "kappa_quadratic": kappa["kappa"], "n_pairs": kappa["n_pairs"], "n_units": units}


def _metric_summary(rows: list[dict], metric: str, n_boot: int, seed: int) -> dict[str, Any]:
    """Mean over ratings with a CI from a cluster bootstrap over items (all of an item's ratings move together)."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.get(metric) is not None:
            sums[row["item_id"]] += row[metric]
            counts[row["item_id"]] += 1
    if not counts:
        return {"mean": None, "ci95": None, "n": 0}
    items = sorted(counts, key=str)
    res = bootstrap_ratio([sums[i] for i in items], [counts[i] for i in items], n_boot=n_boot, seed=seed)
    return {"mean": res["score"], "ci95": res["ci95"], "n": sum(counts.values())}


def table5(ratings: Sequence[dict], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Per backbone: mean 0-2 relevance / structure / helpfulness with bootstrap 95% CIs, item and rater counts;
    agreement per metric (Krippendorff's alpha, ordinal; mean pairwise quadratic-weighted kappa), pooled over
    backbones (units = items) and per backbone. Skipped rows are excluded everywhere."""
    kept = _check_ratings(ratings)
    by_bk: dict[str, list[dict]] = defaultdict(list)
    for row in kept:
        by_bk[str(row["backbone"])].append(row)
    backbones = {}
    for bk, rows in sorted(by_bk.items()):
        entry: dict[str, Any] = {
            "n_items": len({r["item_id"] for r in rows}), "n_raters": len({r["rater"] for r in rows}),
            "n_ratings": len(rows),
        }  # fmt: skip
        for m in RATING_METRICS:
            entry[m] = _metric_summary(rows, m, n_boot, seed)
        entry["agreement"] = {m: _agreement(rows, m) for m in RATING_METRICS}
        backbones[bk] = entry
    return {
        "backbones": backbones,
        "agreement": {m: _agreement(kept, m) for m in RATING_METRICS},
        "n_skipped": len(ratings) - len(kept),
        "definitions": {
            "mean": "mean of all non-skipped ratings of the backbone's items (0-2)",
            "ci95": f"percentile bootstrap ({n_boot} resamples, seed {seed}) over items, each with all its ratings",
            "alpha_ordinal": "Krippendorff's alpha, ordinal metric, raters x items, missing ratings allowed",
            "kappa_quadratic": "quadratic-weighted kappa on the 0-2 scale, mean over rater pairs sharing >= 2 items",
        },
        "paper": PAPER_TABLE5,
    }


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _with_ci(value: float | None, ci: dict, group: str, key: str) -> str:
    """'0.667 [0.40, 0.90]' when table3 computed an interval for ci[group][key], else '0.667'."""
    iv = (ci.get(group) or {}).get(key)
    return _f(value) + (f" [{_f(iv[0], 2)}, {_f(iv[1], 2)}]" if iv else "")


def table3_markdown(t3: dict[str, Any], per_type: bool = True) -> str:
    """Table 3 as Markdown: one row per backbone (+ the paper's figures), then per-type rows."""
    lines = [
        "| Backbone | n | Accuracy | Precision | Recall | F1 | Micro F1 | Macro F1 | Exact match |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for bk, r in t3["backbones"].items():
        a, ci = r["any"], r.get("ci95") or {}
        cells = [_with_ci(a[k], ci, "any", k) for k in ("accuracy", "precision", "recall", "f1")]
        cells += [_with_ci(r["micro"]["f1"], ci, "micro", "f1"), _f(r["macro"]["f1"]), _f(r["exact_match"])]
        lines.append(f"| {bk} | {r['n']} | {' | '.join(cells)} |")
    p = t3.get("paper", PAPER_TABLE3)
    paper = [_f(p["accuracy"], 2), "-", _f(p["recall"], 2), _f(p["f1"], 2)]
    lines.append(f"| paper (CBT prompt) | 500 | {' | '.join(paper)} | - | - | - |")
    lines += ["", f"Gold: {t3['gold_rule']}. Brackets: bootstrap 95% CI over items."]
    agree = (t3.get("labeller_agreement") or {}).get("has_distortion")
    if agree:
        lines.append(f"Labeller agreement on 'has a distortion': Cohen's kappa {_f(agree['kappa'])} "
                     f"(mean of {agree['n_pairs']} labeller pairs).")  # fmt: skip
    if per_type:
        for bk, r in t3["backbones"].items():
            lines += [
                "",
                f"**{bk}** per type",
                "",
                "| Type | Support | Precision | Recall | F1 |",
                "|---|---|---|---|---|",
            ]
            for t, v in r["per_type"].items():
                if v["tp"] + v["fp"] + v["fn"]:
                    prf = " | ".join(_f(v[k]) for k in ("precision", "recall", "f1"))
                    lines.append(f"| {DISTORTIONS[t].en} | {v['support']} | {prf} |")
    return "\n".join(lines) + "\n"


def table5_markdown(t5: dict[str, Any]) -> str:
    """Table 5 as Markdown: mean [95% CI] per backbone and metric (+ the paper's rows), then agreement."""
    lines = ["| Backbone | Rele. | Stru. | Help. | Items | Raters |", "|---|---|---|---|---|---|"]
    for bk, r in t5["backbones"].items():
        cells = []
        for m in RATING_METRICS:
            s = r[m]
            ci = f" [{_f(s['ci95'][0], 2)}, {_f(s['ci95'][1], 2)}]" if s["ci95"] else ""
            cells.append(_f(s["mean"]) + ci)
        lines.append(f"| {bk} | {' | '.join(cells)} | {r['n_items']} | {r['n_raters']} |")
    for bk, p in t5.get("paper", {}).items():
        lines.append(f"| {bk} (paper) | {' | '.join(_f(p[m]) for m in RATING_METRICS)} | 100 | 5 |")
    lines += ["", "| Metric | Krippendorff's alpha (ordinal) | Weighted kappa (quadratic, mean of pairs) | Pairs |"]
    lines.append("|---|---|---|---|")
    for m, a in t5["agreement"].items():
        lines.append(f"| {m} | {_f(a['alpha_ordinal'])} | {_f(a['kappa_quadratic'])} | {a['n_pairs']} |")
    return "\n".join(lines) + "\n"
