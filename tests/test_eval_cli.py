"""`python -m cbt evaluate`: pairing by id, scores equal to sacrebleu's, clear errors, per-item output, --compare."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sacrebleu.metrics import BLEU, CHRF

from cbt.io import load_sample, write_json, write_jsonl
from eval.cli import evaluate_main
from tests.conftest import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _refs(n: int = 6) -> list[dict]:
    return [{"id": r.id, "question": r.question, "description": r.description, "answer": r.answer}
            for r in load_sample()[:n]]  # fmt: skip


def _garble(text: str, k: int) -> str:
    """A prediction sharing part of the reference: its first half, then another answer's second half."""
    other = load_sample()[-1 - k].answer
    return text[: len(text) // 2] + other[len(other) // 2 :]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    refs = _refs()
    preds = [{"id": r["id"], "prediction": _garble(r["answer"], k), "backbone": "garbled"} for k, r in enumerate(refs)]
    write_jsonl(tmp_path / "refs.jsonl", refs)
    write_jsonl(tmp_path / "preds.jsonl", list(reversed(preds)))  # order must not matter: pairing is by id
    write_jsonl(
        tmp_path / "perfect.jsonl", [{"id": r["id"], "prediction": r["answer"], "backbone": "copy"} for r in refs]
    )
    return {"refs": tmp_path / "refs.jsonl", "preds": tmp_path / "preds.jsonl", "perfect": tmp_path / "perfect.jsonl"}


def _json(capsys: pytest.CaptureFixture, argv: list[str]) -> dict:
    assert evaluate_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_scores_are_sacrebleus_and_pairing_is_by_id(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    out = _json(capsys, ["--predictions", str(files["preds"]), "--references", str(files["refs"]),
                         "--metrics", "bleu,chrf,structure", "--n-boot", "50"])  # fmt: skip
    refs = _refs()
    hyps = [_garble(r["answer"], k) for k, r in enumerate(refs)]
    expect_bleu = BLEU(tokenize="zh").corpus_score(hyps, [[r["answer"] for r in refs]]).score
    expect_chrf = CHRF().corpus_score(hyps, [[r["answer"] for r in refs]]).score
    assert out["n"] == 6 and out["backbone"] == "garbled" and not out["missing_ids"]
    assert out["metrics"]["bleu"]["score"] == pytest.approx(expect_bleu, abs=1e-9)
    assert out["metrics"]["chrf"]["score"] == pytest.approx(expect_chrf, abs=1e-9)
    lo, hi = out["metrics"]["bleu"]["ci95"]
    assert lo <= expect_bleu <= hi and lo < hi
    assert "tok:zh" in out["metrics"]["bleu"]["signature"] and "per_item" not in out["metrics"]["bleu"]


def test_text_table_shows_ci_and_skipped_model_metrics(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    argv = ["--predictions", str(files["perfect"]), "--references", str(files["refs"]), "--metrics",
            "bleu,bertscore,bleurt", "--n-boot", "20"]  # fmt: skip
    assert evaluate_main(argv) == 0
    text = capsys.readouterr().out
    assert re.search(r"^BLEU +100\.00 \[100\.00, 100\.00\]$", text, flags=re.M)
    assert "BERTScore" in text and "skipped" in text and "no BERTScore model given" in text


def test_missing_and_extra_ids_are_named(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    rows = [*read_jsonl(files["preds"])[1:], {"id": "stray", "prediction": "多出来的", "backbone": "garbled"}]
    write_jsonl(tmp_path / "partial.jsonl", rows)
    argv = ["--predictions", str(tmp_path / "partial.jsonl"), "--references", str(files["refs"]), "--metrics", "chrf"]
    assert evaluate_main(argv) == 2
    err = capsys.readouterr().err
    missing = read_jsonl(files["preds"])[0]["id"]
    assert f"1 reference id(s) have no prediction in {tmp_path / 'partial.jsonl'}: {missing}" in err
    assert "1 prediction id(s) are not in" in err and "stray" in err and "--allow-missing" in err
    out = _json(capsys, [*argv, "--allow-missing", "--n-boot", "0"])
    assert out["n"] == 5 and out["missing_ids"] == [missing] and out["extra_ids"] == ["stray"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"id": "1", "prediction": "a"}\n{"id": "2", "prediction": "b"}\n{"id": 3, "prediction"\n',
            ":3: invalid JSON",
        ),
        (
            '{"id": "1", "prediction": "a"}\n{"id": "2", "text": "b"}\n',
            ":2: field 'prediction' must be a string, is missing",
        ),
        ('{"id": "1", "prediction": "a"}\n{"id": "1", "prediction": "b"}\n', ":2: duplicate id '1' (first on line 1)"),
        ('{"prediction": "a"}\n', ":1: missing field 'id'"),
        ("[1, 2]\n", ":1: expected a JSON object"),
    ],
)
def test_bad_prediction_files_name_file_and_line(
    content: str, expected: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    assert evaluate_main(["--predictions", str(bad), "--references", str(files["refs"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{bad}{expected}" in err and err.count("\n") == 1


def test_bad_settings_are_one_line_errors(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    base = ["--predictions", str(files["preds"]), "--references", str(files["refs"])]
    assert evaluate_main([*base, "--metrics", "bleu,rouge"]) == 2
    assert "unknown metric(s) ['rouge']" in capsys.readouterr().err
    assert evaluate_main(["--references", str(files["refs"])]) == 2
    assert "missing setting(s) ['predictions']" in capsys.readouterr().err
    assert evaluate_main([*base[:2], "--references", str(files["refs"].with_name("nope.jsonl"))]) == 2
    assert "nope.jsonl: file not found" in capsys.readouterr().err


def test_autocbt_style_json_with_question_ids_and_a_reference_field(tmp_path: Path, capsys) -> None:
    refs = _refs(4)
    write_json(tmp_path / "a.json", [{"questionID": str(k), "question": r["question"], "cbt_answer": r["answer"]}
                                     for k, r in enumerate(refs)])  # fmt: skip
    write_json(
        tmp_path / "b.json", [{"questionID": str(k), "cbt_answer": r["answer"][:40]} for k, r in enumerate(refs)]
    )
    out = _json(capsys, ["--predictions", str(tmp_path / "b.json"), "--prediction-field", "cbt_answer",
                         "--references", str(tmp_path / "a.json"), "--reference-field", "cbt_answer",
                         "--metrics", "chrf", "--n-boot", "0"])  # fmt: skip
    assert out["n"] == 4 and 0 < out["metrics"]["chrf"]["score"] < 100 and out["metrics"]["chrf"]["ci95"] is None


def test_per_item_file_and_paired_bootstrap(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    argv = ["--predictions", str(files["perfect"]), "--references", str(files["refs"]), "--metrics", "bleu,chrf",
            "--n-boot", "200", "--per-item", str(tmp_path / "items.jsonl"),
            "--compare", str(files["preds"])]  # fmt: skip
    assert evaluate_main(argv) == 0
    text = capsys.readouterr().out
    assert "compare bleu: A 100.000 - B" in text and "paired bootstrap, n=6" in text
    items = read_jsonl(tmp_path / "items.jsonl")
    assert [i["id"] for i in items] == [r["id"] for r in _refs()]
    assert all(i["chrf"] == pytest.approx(100.0) for i in items)
    out = _json(capsys, argv)
    bleu = next(c for c in out["comparison"] if c["metric"] == "bleu")
    assert bleu["delta"] > 0 and bleu["ci95"][0] > 0 and bleu["p_value"] < 0.05
    assert bleu["a_file"] == str(files["perfect"]) and bleu["b_file"] == str(files["preds"])


def test_python_m_cbt_evaluate_dispatches_here(files: dict[str, Path]) -> None:
    cmd = [sys.executable, "-m", "cbt", "evaluate", "--predictions", str(files["preds"]), "--references",
           str(files["refs"]), "--metrics", "chrf", "--n-boot", "0", "--json"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 6
    bad_cmd = [*cmd[:6], "--references", str(files["refs"].with_name("x.jsonl"))]
    bad = subprocess.run(bad_cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "x.jsonl: file not found" in bad.stderr
