"""`python -m cbt report`: Table 4 as md/csv/png, Tables 3 and 5, deterministic bytes; the evaluation tab's reader."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest

from cbt.io import load_sample, write_jsonl
from eval.cli import report_main
from eval.config import EvalConfig, ReportConfig, load_config
from eval.report import PAPER_PATH, find_reports, read_report, write_report
from eval.scoring import run_evaluate
from tests.conftest import SHARED

METRICS = "bleu,chrf,structure,bertscore"


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    recs = load_sample()[:6]
    write_jsonl(tmp_path / "refs.jsonl", [r.to_dict() for r in recs])
    write_jsonl(tmp_path / "copy.jsonl", [{"id": r.id, "prediction": r.answer, "backbone": "copy"} for r in recs])
    half = [{"id": r.id, "prediction": r.answer[: len(r.answer) // 3], "backbone": "third"} for r in recs]
    write_jsonl(tmp_path / "third.jsonl", half)
    labels = [{"item_id": f"l{k}-{rater}", "question_id": r.id, "rater": rater,
               "distortions": ["catastrophizing"] if k % 2 else [], "key_thought": "", "confidence": 2}
              for k, r in enumerate(recs) for rater in "ab"]  # fmt: skip
    write_jsonl(tmp_path / "labels.jsonl", labels)
    ratings = [{"item_id": f"{bk}-{r.id}", "question_id": r.id, "backbone": bk, "rater": rater,
                "relevance": 2 if bk == "copy" else 1, "structure": (k + j) % 3, "helpfulness": 1, "comment": "",
                "flag": False, "skipped": False}
               for k, r in enumerate(recs) for bk in ("copy", "third") for j, rater in enumerate("ab")]  # fmt: skip
    write_jsonl(tmp_path / "ratings.jsonl", ratings)
    return {n: tmp_path / f"{n}.jsonl" for n in ("refs", "copy", "third", "labels", "ratings")}


def _argv(inputs: dict[str, Path], out: Path) -> list[str]:
    return ["--predictions", str(inputs["copy"]), str(inputs["third"]), "--references", str(inputs["refs"]),
            "--labels", str(inputs["labels"]), "--ratings", str(inputs["ratings"]), "--metrics", METRICS,
            "--n-boot", "50", "--out", str(out)]  # fmt: skip


def test_report_writes_all_tables_and_is_byte_for_byte_deterministic(inputs: dict[str, Path], tmp_path: Path) -> None:
    assert report_main(_argv(inputs, tmp_path / "r1")) == 0
    assert report_main(_argv(inputs, tmp_path / "r2")) == 0
    names = sorted(p.name for p in (tmp_path / "r1").iterdir())
    assert names == ["report.json", "report.md", "table4.csv", "table4.md", "table4.png"]
    for name in names:
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name
    assert (tmp_path / "r1" / "table4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "r1" / "report.md").read_text(encoding="utf-8")
    for heading in ("## Table 4", "## Beside the paper's Table 4", "## Table 3", "## Table 5", "## Paired bootstrap",
                    "## Definitions"):  # fmt: skip
        assert heading in md
    assert "tok:zh" in md and "**BERTScore**: skipped - no BERTScore model given" in md
    assert "| third | copy | BLEU | -" in md  # the truncated answers lose to the copies


def test_table4_csv_holds_the_evaluate_scores(inputs: dict[str, Path], tmp_path: Path) -> None:
    cfg = load_config(ReportConfig, None, [f"predictions={inputs['copy']},{inputs['third']}",
                                           f"references={inputs['refs']}", f"metrics={METRICS}", "n_boot=50",
                                           f"out={tmp_path / 'r'}"])  # fmt: skip
    write_report(cfg)
    with open(tmp_path / "r" / "table4.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["backbone"] for r in rows] == ["copy", "third"]
    direct = run_evaluate(EvalConfig(str(inputs["third"]), str(inputs["refs"]), ["bleu", "chrf"], n_boot=50))
    assert float(rows[1]["bleu"]) == pytest.approx(direct["metrics"]["bleu"]["score"], abs=1e-4)
    assert float(rows[1]["chrf_ci95_lo"]) == pytest.approx(direct["metrics"]["chrf"]["ci95"][0], abs=1e-4)
    assert float(rows[0]["bleu"]) == pytest.approx(100.0) and rows[0]["bertscore"] == "skipped"
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["table4"]["third"]["n"] == 6 and "per_item" not in report["table4"]["third"]["metrics"]["bleu"]


def test_no_chart_when_every_metric_is_skipped(inputs: dict[str, Path], tmp_path: Path) -> None:
    argv = ["--predictions", str(inputs["copy"]), "--references", str(inputs["refs"]), "--metrics", "bertscore,bleurt",
            "--out", str(tmp_path / "r")]  # fmt: skip
    assert report_main(argv) == 0
    assert not (tmp_path / "r" / "table4.png").exists() and (tmp_path / "r" / "table4.md").exists()


def test_bad_labels_and_settings_are_named(inputs: dict[str, Path], tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad_labels.jsonl"
    bad.write_text('{"question_id": "x", "rater": "a", "distortions": []}\n\n'
                   '{"question_id": "y", "rater": "a", "distortions": ["nope"]}\n', encoding="utf-8")  # fmt: skip
    argv = _argv(inputs, tmp_path / "r")
    argv[argv.index("--labels") + 1] = str(bad)
    assert report_main(argv) == 2
    assert f"{bad}:3: unknown distortion 'nope'" in capsys.readouterr().err
    assert report_main([*_argv(inputs, tmp_path / "r"), "--names", "only-one"]) == 2
    assert "1 names for 2 prediction files" in capsys.readouterr().err


def test_tab_reader_lists_reports_newest_first_and_refuses_paths_outside(tmp_path: Path) -> None:
    from eval.tabs.evaluation import view

    for k, name in enumerate(("old", "new")):
        folder = tmp_path / "reports" / name
        folder.mkdir(parents=True)
        (folder / "report.md").write_text(f"# {name}\n\n![chart](table4.png)\n\ntext\n", encoding="utf-8")
        (folder / "table4.csv").write_text("backbone,bleu\nm,1.0\n", encoding="utf-8")
        stamp = time.time() - 100 + k * 50
        os.utime(folder / "report.md", (stamp, stamp))
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "report.md").write_text("# secret\n", encoding="utf-8")
    root = tmp_path / "reports"
    assert [p.name for p in find_reports(root)] == ["new", "old"]
    rep = read_report(root / "new")
    assert (
        rep["markdown"] == "# new\n\ntext\n"
        and rep["header"] == ["backbone", "bleu"]
        and rep["rows"] == [["m", "1.0"]]
    )
    md, images, table = view(root, "old")
    assert md.startswith("# old") and images == [] and table["data"] == [["m", "1.0"]]
    assert view(root, "../secret")[0].startswith("No report yet")


def test_paper_figures_are_the_papers(tmp_path: Path) -> None:
    import yaml

    paper = SHARED / "seeds" / "cbt-llm-paper.txt"
    if not paper.is_file():
        pytest.skip("paper text not found")
    text = paper.read_text(encoding="utf-8")
    rows = yaml.safe_load(PAPER_PATH.read_text(encoding="utf-8"))["table4"]["rows"]
    assert len(rows) == 4
    flat = text.replace("\t", "").replace("<b>", "").replace("</b>", "")
    for values in rows.values():
        assert "".join(f"{v:.4f}" for v in values) in flat


@pytest.mark.parametrize("path", sorted((PAPER_PATH.parent).glob("*_*.yaml")), ids=lambda p: p.name)
def test_every_shipped_eval_config_loads(path: Path) -> None:
    from eval.config import PredictConfig

    cls = {"predict": PredictConfig, "evaluate": EvalConfig, "report": ReportConfig}[path.name.split("_")[0]]
    cfg = load_config(cls, path)
    assert isinstance(cfg, cls)


@pytest.mark.browser
def test_evaluation_tab_in_chromium_shows_a_report_and_refreshes(inputs: dict[str, Path], tmp_path: Path) -> None:
    """A real browser: the newest report's Markdown, chart and Table 4; a report written later appears on refresh."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    import gradio as gr

    from eval.tabs import create_evaluation_tab

    root = tmp_path / "reports"
    argv = ["--predictions", str(inputs["copy"]), str(inputs["third"]), "--references", str(inputs["refs"]),
            "--metrics", "bleu,chrf", "--n-boot", "20", "--title", "First report",
            "--out", str(root / "first")]  # fmt: skip
    assert report_main(argv) == 0
    with gr.Blocks(analytics_enabled=False) as demo, gr.Tabs():
        create_evaluation_tab(root)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, ssr_mode=False, quiet=True)
    try:
        with sync_api.sync_playwright() as p:
            args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(demo.local_url)
            page.wait_for_selector("#eval-report h1", timeout=30_000)
            assert "First report" in page.inner_text("#eval-report")
            assert "third" in page.inner_text("#eval-table")
            page.wait_for_selector("#eval-charts img", timeout=30_000)
            argv[argv.index("--title") + 1], argv[-1] = "Second report", str(root / "second")
            assert report_main(argv) == 0
            page.click("#eval-refresh")
            page.wait_for_function(
                "document.querySelector('#eval-report').innerText.includes('Second report')", timeout=30_000
            )
            browser.close()
    finally:
        demo.close()


def test_tab_evaluate_form_reads_allowed_folders_only(inputs: dict[str, Path], monkeypatch) -> None:
    from eval.tabs.evaluation import evaluate_form

    assert "only files inside the repository" in evaluate_form("/etc/passwd", str(inputs["refs"]), "", "", ["bleu"])
    monkeypatch.setenv("CBT_DATA_DIR", str(inputs["refs"].parent))
    out = evaluate_form(str(inputs["third"]), str(inputs["refs"]), "", "", ["bleu", "chrf"])
    assert "third: 6 pairs" in out and "chrF" in out
    bad = evaluate_form(str(inputs["third"]), str(inputs["refs"]), "text", "", ["bleu"])
    assert bad.startswith("**Error:**") and "third.jsonl:1: field 'text' must be a string" in bad
