"""The evaluation tab: the latest report (report.md, its charts, Table 4 as a table) with a picker and refresh.

Reports are folders written by `python -m cbt report`; the tab reads CBT_DATA_DIR/reports when it holds
one, else the committed reports/ folder. It only reads files: nothing here computes a metric.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from eval.report import REPO, find_reports, read_report, reports_root

FORM_METRICS = ["bleu", "chrf", "meteor", "structure", "distortion_coverage"]


def _choices(root: Path) -> list[tuple[str, str]]:
    """(label, folder relative to root) per report; the client only ever sends these relative names."""
    rels = [str(f.relative_to(root)) for f in find_reports(root)]
    return [(root.name if r == "." else r, r) for r in rels]


def _resolve(root: Path, rel: str | None) -> Path | None:
    """The report folder for a picker value, or None when it is not a report inside root."""
    if rel is None:
        return None
    folder = (root / rel).resolve()
    if not folder.is_relative_to(root.resolve()) or not (folder / "report.md").is_file():
        return None
    return folder


def view(root: Path, rel: str | None) -> tuple[str, list[Any], Any]:
    """Markdown, images (PIL, so any folder can be shown) and the Table 4 rows of one report folder."""
    folder = _resolve(root, rel)
    if folder is None:
        return "No report yet: run `python -m cbt report ... --out reports/NAME` (see README, Evaluation).", [], None
    from PIL import Image

    rep = read_report(Path(folder))
    images = []
    for p in rep["images"]:
        with Image.open(p) as im:
            images.append((im.convert("RGB"), p.name))
    table = {"headers": rep["header"], "data": rep["rows"]} if rep["header"] else None
    return rep["markdown"], images, table


def allowed_roots() -> list[Path]:
    """Folders the evaluate form may read: the repository, CBT_DATA_DIR, and the shared data beside the repo."""
    roots = [REPO, REPO.parent / "shared" / "data"]
    if os.environ.get("CBT_DATA_DIR"):
        roots.append(Path(os.environ["CBT_DATA_DIR"]))
    return [r.resolve() for r in roots]


def _server_file(path: str, what: str) -> str:
    p = Path((path or "").strip()).expanduser()
    if not str(p) or str(p) == ".":
        raise ValueError(f"give the {what} file's path on the server")
    full = (p if p.is_absolute() else REPO / p).resolve()
    if not any(full.is_relative_to(r) for r in allowed_roots()):
        raise ValueError(f"{what}: only files inside the repository, CBT_DATA_DIR or ../shared/data can be read")
    return str(full)


def evaluate_form(preds: str, refs: str, pred_field: str, ref_field: str, metrics: list[str]) -> str:
    """The `evaluate` CLI's table for two server files (same functions), or the one-line error."""
    from eval.config import EvalConfig
    from eval.scoring import format_text_table, run_evaluate

    try:
        files = _server_file(preds, "predictions"), _server_file(refs, "references")
        fields = {"reference_field": ref_field or "answer", "prediction_field": pred_field or "prediction"}
        cfg = EvalConfig(*files, list(metrics), **fields, n_boot=200, allow_missing=True)
        return "```\n" + format_text_table(run_evaluate(cfg)) + "```"
    except (ValueError, FileNotFoundError) as exc:
        return f"**Error:** {exc}"


def _form() -> None:
    with gr.Accordion("Evaluate two files on the server 评估", open=False):
        with gr.Row():
            preds = gr.Textbox(label="Predictions file", placeholder="outputs/preds.jsonl", elem_id="eval-preds")
            refs = gr.Textbox(label="References file", placeholder="cbt/data/sample_cbtqa.jsonl", elem_id="eval-refs")
        with gr.Row():
            pred_field = gr.Textbox("prediction", label="Prediction field")
            ref_field = gr.Textbox("answer", label="Reference field (AutoCBT: cbt_answer)")
            metrics = gr.CheckboxGroup(FORM_METRICS, value=FORM_METRICS[:3], label="Metrics")
        run = gr.Button("Evaluate", elem_id="eval-run")
        result = gr.Markdown(elem_id="eval-result")
        run.click(evaluate_form, [preds, refs, pred_field, ref_field, metrics], result, concurrency_limit=1)


def create_evaluation_tab(root: str | Path | None = None) -> None:
    """A report picker (newest first), a refresh button, the report, its charts and Table 4."""
    with gr.Tab("Evaluation 评估", id="evaluation"):
        base = Path(root) if root else reports_root()
        choices = _choices(base)
        first = choices[0][1] if choices else None
        with gr.Row():
            picker = gr.Dropdown(choices, value=first, label="Report 报告", scale=4, elem_id="eval-picker")
            refresh = gr.Button("Refresh 刷新", scale=1, elem_id="eval-refresh")
        md0, img0, tab0 = view(base, first)
        gallery = gr.Gallery(img0, label="Charts 图表", columns=2, height="auto", elem_id="eval-charts")
        table = gr.Dataframe(tab0, label="Table 4 (CSV)", interactive=False, wrap=True, elem_id="eval-table")
        markdown = gr.Markdown(md0, elem_id="eval-report")
        _form()

        known = gr.State([v for _, v in choices])

        def reload(current: str | None, seen: list[str]) -> tuple[Any, ...]:
            """Reread the folder; a report that appeared since the last look is shown, else the current one."""
            nonlocal base
            base = Path(root) if root else reports_root()
            opts = [v for _, v in _choices(base)]
            new = [v for v in opts if v not in seen]
            keep = new[0] if new else (current if current in opts else (opts[0] if opts else None))
            return gr.Dropdown(choices=_choices(base), value=keep), opts, *view(base, keep)

        refresh.click(reload, [picker, known], [picker, known, markdown, gallery, table])
        picker.change(lambda rel: view(base, rel), picker, [markdown, gallery, table])
