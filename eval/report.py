"""The report folder: Table 4 (backbones x metrics) as Markdown, CSV and a bar chart, Tables 3 and 5, report.md/json.

    python -m cbt report --predictions P1 P2 --references R --out reports/x

The report folder gets table4.md / table4.csv / table4.png (bar chart), report.md and report.json, and
Tables 3 and 5 when labels or ratings are given. The output is deterministic: the same inputs and seed
give the same bytes (PNG metadata without a timestamp or version).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from cbt.io import DataError, atomic_write_text, iter_json_objects
from eval.config import EvalConfig, ReportConfig
from eval.scoring import NAMES, PERCENT, compare, fmt_score, run_evaluate

REPO = Path(__file__).resolve().parents[1]
PAPER_PATH = REPO / "configs" / "eval" / "paper.yaml"
DEFINITIONS = {
    "bleu": "corpus BLEU-4 (sacrebleu, tokenize='zh': each CJK character a token), 0-100",
    "chrf": "corpus chrF (sacrebleu, character 6-grams, beta 2), 0-100",
    "structure": "mean cbt.sections structure score of the prediction: 0.5 x share of the five CBT parts "
    "present + 0.25 x their order + 0.25 x their proportions, 0-1; reference-free",
}


def _paper() -> dict[str, Any]:
    with open(PAPER_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def table4_markdown(rows: dict[str, dict[str, Any]], metrics: list[str]) -> str:
    header = ["Backbone", "n", *[NAMES[m] + (" (0-100)" if m in PERCENT else " (0-1)") for m in metrics]]
    body = [[name, str(r["n"]), *[fmt_score(m, r["metrics"][m]) for m in metrics]] for name, r in rows.items()]
    return md_table(header, body)


def table4_csv(rows: dict[str, dict[str, Any]], metrics: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["backbone", "n"] + [f"{m}{s}" for m in metrics for s in ("", "_ci95_lo", "_ci95_hi")])
    for name, r in rows.items():
        cells: list[Any] = [name, r["n"]]
        for m in metrics:
            res = r["metrics"][m]
            ci = res.get("ci95") or [None, None]
            cells += ["skipped", "", ""] if "skipped" in res else [_r(res.get("score")), _r(ci[0]), _r(ci[1])]
        w.writerow(cells)
    return buf.getvalue()


def display_path(path: str) -> str:
    """A path as shown in reports: relative to the repository when it lies beside it (same bytes everywhere)."""
    rel = os.path.relpath(Path(path).resolve(), REPO)
    return path if rel.startswith(os.path.join(os.pardir, os.pardir)) else rel


def _r(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def paper_beside_markdown(rows: dict[str, dict[str, Any]]) -> str:
    """The paper's Table 4 and ours on the paper's 0-1 scale and column order."""
    paper = _paper()["table4"]
    cols = paper["columns"]
    header = ["Backbone", "source", *[NAMES[c] for c in cols]]
    body = [
        [name, "paper (ChatGPT refs, its test set)", *[f"{v:.4f}" for v in vals]]
        for name, vals in paper["rows"].items()
    ]
    for name, r in rows.items():
        cells = []
        for c in cols:
            res = r["metrics"].get(c)
            if res is None or "skipped" in res or res.get("score") is None:
                cells.append("-")
            else:
                cells.append(f"{res['score'] / (100 if c in PERCENT else 1):.4f}")
        body.append([name, "ours (this report's references)", *cells])
    return md_table(header, body)


def table4_png(rows: dict[str, dict[str, Any]], metrics: list[str], path: Path) -> Path | None:
    """Grouped bars with 95% CI whiskers; 0-1 metrics drawn x100 so one axis fits all. None if nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if any("skipped" not in r["metrics"][m] for r in rows.values())]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(shown), 3.6), dpi=100)
    width = 0.8 / len(rows)
    for k, (name, r) in enumerate(rows.items()):
        scale = [1 if m in PERCENT else 100 for m in shown]
        vals = [_num(r["metrics"][m].get("score")) * s for m, s in zip(shown, scale, strict=True)]
        cis = [r["metrics"][m].get("ci95") or [None, None] for m in shown]
        lo = [max(v - _num(c[0], v / s) * s, 0) for v, c, s in zip(vals, cis, scale, strict=True)]
        hi = [max(_num(c[1], v / s) * s - v, 0) for v, c, s in zip(vals, cis, scale, strict=True)]
        xs = [i + (k - (len(rows) - 1) / 2) * width for i in range(len(shown))]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, label=name)
    ax.set_xticks(range(len(shown)), [NAMES[m] + ("" if m in PERCENT else " x100") for m in shown], fontsize=8)
    ax.set_ylabel("score (0-100), 95% CI")
    ax.set_title("Table 4: automatic metrics", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _num(x: Any, default: float = 0.0) -> float:
    return default if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _row_name(cfg: ReportConfig, k: int, backbone: str) -> str:
    if cfg.names:
        return cfg.names[k]
    return backbone or Path(cfg.predictions[k]).stem


def _score_rows(cfg: ReportConfig) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for k, path in enumerate(cfg.predictions):
        ecfg = EvalConfig(
            path,
            cfg.references,
            list(cfg.metrics),
            cfg.reference_field,
            cfg.prediction_field,
            cfg.bertscore_model,
            cfg.bleurt_checkpoint,
            cfg.n_boot,
            cfg.seed,
            cfg.allow_missing,
        )
        res = run_evaluate(ecfg)
        name = _row_name(cfg, k, res["backbone"])
        if name in rows:
            raise ValueError(f"two prediction files give the row name '{name}': pass --names")
        rows[name] = res
    return rows


def _definitions(rows: dict[str, dict[str, Any]], metrics: list[str]) -> list[str]:
    first = next(iter(rows.values()))["metrics"]
    lines = []
    for m in metrics:
        res = first[m]
        if "skipped" in res:
            lines.append(f"- **{NAMES[m]}**: skipped - {res['skipped']}")
            continue
        parts = [
            DEFINITIONS.get(m, ""),
            res.get("note", ""),
            f"signature `{res['signature']}`" if "signature" in res else "",
        ]
        lines.append(f"- **{NAMES[m]}**: " + "; ".join(p for p in parts if p))
    n_boot = next((r.get("n_boot") for r in first.values() if "n_boot" in r), None)
    seed = next(iter(rows.values()))["seed"]
    lines.append(f"- 95% CI: percentile bootstrap over items, {n_boot} resamples, seed {seed}.")
    return lines


def _load_rows(path: str, what: str) -> list[dict[str, Any]]:
    rows, _ = _rows_with_lines(path, what)
    return rows


def _rows_with_lines(path: str, what: str) -> tuple[list[dict[str, Any]], list[int]]:
    rows, lines = [], []
    for line, obj in iter_json_objects(path):
        if not isinstance(obj, dict):
            raise DataError(path, line, f"expected a JSON object ({what} row), got {type(obj).__name__}")
        rows.append(obj)
        lines.append(line)
    return rows, lines


def _table(fn: Any, path: str, what: str, **kw: Any) -> dict[str, Any]:
    """eval.tables' `<what> row N: ...` errors turned into `file:line: ...`."""
    rows, lines = _rows_with_lines(path, what)
    try:
        return fn(rows, **kw)
    except ValueError as exc:
        m = re.match(rf"{what}s row (\d+): (.*)", str(exc), flags=re.S)
        if m and int(m.group(1)) < len(lines):
            raise DataError(path, lines[int(m.group(1))], m.group(2)) from None
        raise DataError(path, None, str(exc)) from None


def _human_tables(cfg: ReportConfig, pred_rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Tables 3 and 5 (eval.tables) from the labels and ratings files, when given."""
    if not cfg.labels and not cfg.ratings:
        return {}, []
    from eval import tables

    out: dict[str, Any] = {}
    md: list[str] = []
    if cfg.labels:
        t3 = out["table3"] = _table(tables.table3, cfg.labels, "label", predictions=pred_rows)
        defs = [f"- **{k}**: {v}" for k, v in sorted(t3.get("definitions", {}).items())]
        md += ["## Table 3: distortion recognition against human labels", "", tables.table3_markdown(t3), *defs, ""]
    if cfg.ratings:
        t5 = out["table5"] = _table(tables.table5, cfg.ratings, "rating", n_boot=cfg.n_boot, seed=cfg.seed)
        md += ["## Table 5: human ratings (0-2), mean [95% CI] and agreement", "", tables.table5_markdown(t5)]
    return out, md


def _comparisons(cfg: ReportConfig, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired bootstrap on BLEU, chrF and METEOR for cfg.compare's row pairs (default: each row vs the first)."""
    pairs = [tuple(map(int, c.split(":"))) for c in cfg.compare] or [(k, 0) for k in range(1, len(cfg.predictions))]
    names = list(rows)
    metrics = [m for m in ("bleu", "chrf", "meteor") if m in cfg.metrics]
    out = []
    for a, b in pairs:
        ecfg = EvalConfig(
            cfg.predictions[a], cfg.references, list(cfg.metrics), cfg.reference_field, cfg.prediction_field,
            n_boot=cfg.n_boot, seed=cfg.seed, allow_missing=cfg.allow_missing,
        )  # fmt: skip
        for res in compare(ecfg, cfg.predictions[b], metrics):
            rest = {x: y for x, y in res.items() if x not in ("a", "b")}
            out.append({"a": names[a], "b": names[b], **rest, "a_score": res.get("a"), "b_score": res.get("b")})
    return out


def _comparison_md(comps: list[dict[str, Any]]) -> list[str]:
    if not comps:
        return []
    body = [
        [
            c["a"],
            c["b"],
            NAMES[c["metric"]],
            f"{c['delta']:+.2f}",
            f"[{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]",
            f"{c['p_value']:.4f}",
        ]
        for c in comps
        if "delta" in c
    ]
    return [
        "## Paired bootstrap (A - B, same items)",
        "",
        md_table(["A", "B", "metric", "delta", "95% CI", "p (two-sided)"], body),
    ]


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """An evaluate result without per-item lists and id lists (kept small for report.json)."""
    metrics = {m: {k: v for k, v in r.items() if k != "per_item"} for m, r in result["metrics"].items()}
    keep = {k: v for k, v in result.items() if k not in ("metrics", "ids")}
    return {**keep, "metrics": metrics}


def write_report(cfg: ReportConfig) -> dict[str, str]:
    """Score every predictions file, write the report folder, return {kind: path}."""
    out = Path(cfg.out)
    rows = _score_rows(cfg)
    metrics = list(cfg.metrics)
    pred_rows = [r for p in cfg.predictions for r in _load_rows(p, "prediction")]
    human, human_md = _human_tables(cfg, pred_rows)
    comps = _comparisons(cfg, rows)
    files = {
        "table4_md": out / "table4.md",
        "table4_csv": out / "table4.csv",
        "report_md": out / "report.md",
        "report_json": out / "report.json",
    }
    t4 = table4_markdown(rows, metrics)
    atomic_write_text(files["table4_md"], t4)
    atomic_write_text(files["table4_csv"], table4_csv(rows, metrics))
    png = table4_png(rows, metrics, out / "table4.png")
    if png:
        files["table4_png"] = png
    md = [
        f"# {cfg.title}",
        "",
        cfg.notes.strip(),
        "",
        f"References: `{display_path(cfg.references)}` (field `{cfg.reference_field}`)",
        "",
        "## Table 4: automatic metrics, score [95% CI]",
        "",
        t4,
    ]
    if png:
        md += ["![Table 4](table4.png)", ""]
    if cfg.paper_table4:
        md += [
            "## Beside the paper's Table 4 (0-1 scale)",
            "",
            "The paper's figures are its own, computed against ChatGPT reference answers on its own test set "
            "with the July toolkit: they are NOT directly comparable with ours.",
            "",
            paper_beside_markdown(rows),
        ]
    md += human_md + _comparison_md(comps) + ["## Definitions", "", *_definitions(rows, metrics), ""]
    atomic_write_text(files["report_md"], re.sub(r"\n{3,}", "\n\n", "\n".join(md)))
    report = {
        "title": cfg.title,
        "references": display_path(cfg.references),
        "reference_field": cfg.reference_field,
        "metrics": metrics,
        "table4": {k: _strip(v) for k, v in rows.items()},
        "comparisons": comps,
        **human,
    }
    atomic_write_text(files["report_json"], json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    return {k: str(v) for k, v in files.items()}


# ---------------------------------------------------------------- reading reports back (the evaluation tab)

REPO_REPORTS = REPO / "reports"


def reports_root() -> Path:
    """CBT_DATA_DIR/reports when it holds a report, else the committed reports/ folder."""
    env = os.environ.get("CBT_DATA_DIR")
    if env and find_reports(Path(env) / "reports"):
        return Path(env) / "reports"
    return REPO_REPORTS


def find_reports(root: Path) -> list[Path]:
    """Folders under root (itself and two levels down) holding a report.md, newest first, then by name."""
    if not root.is_dir():
        return []
    found = [p.parent for pattern in ("report.md", "*/report.md", "*/*/report.md") for p in root.glob(pattern)]
    return sorted(set(found), key=lambda p: (-p.joinpath("report.md").stat().st_mtime, str(p)))


def read_report(folder: Path) -> dict[str, Any]:
    """What the tab shows: report.md without its image links, the PNG paths, and table4.csv as rows."""
    text = (folder / "report.md").read_text(encoding="utf-8")
    text = re.sub(r"^!\[[^\]]*\]\([^)]*\)\n?", "", text, flags=re.M)
    text = re.sub(r"\n{3,}", "\n\n", text)
    header: list[str] = []
    rows: list[list[str]] = []
    if (folder / "table4.csv").is_file():
        with open(folder / "table4.csv", encoding="utf-8", newline="") as fh:
            header, *rows = list(csv.reader(fh)) or [[]]
    return {"markdown": text, "images": sorted(folder.glob("*.png")), "header": header, "rows": rows}
