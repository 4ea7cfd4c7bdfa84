"""`predict`: the tiny hf model batched, a loopback OpenAI-compatible server concurrent, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from cbt.backends.base import Backend, GenParams, Message
from cbt.io import load_sample, write_jsonl
from cbt.prompter import Prompter
from eval.cli import predict_main
from eval.config import PredictConfig
from eval.predict import PredictError, read_done, run_predict
from tests.conftest import read_jsonl
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
CRISIS_QUESTION = "我不想活了，今晚就想结束自己的生命"


def _questions(path: Path, n: int, crisis: bool = False) -> list[dict]:
    rows = [{"id": r.id, "question": r.question, "description": r.description} for r in load_sample()[:n]]
    if crisis:
        rows.append({"id": "crisis-1", "question": CRISIS_QUESTION, "description": ""})
    write_jsonl(path, rows)
    return rows


class Recorder(Backend):
    """Echoes the user message back and records every conversation it was asked to answer."""

    def __init__(self) -> None:
        self.seen: list[list[Message]] = []
        self.batches: list[int] = []

    def stream(self, messages: Sequence[Message], params: GenParams):
        self.seen.append(list(messages))
        yield "答：" + messages[-1]["content"][:10]

    def generate_batch(self, batch: Sequence[Sequence[Message]], params: GenParams) -> list[str]:
        self.batches.append(len(batch))
        return [self.generate(m, params) for m in batch]


def test_prompt_is_the_training_instruction_and_question_plus_description(tmp_path: Path) -> None:
    rows = _questions(tmp_path / "q.jsonl", 5, crisis=True)
    cfg = PredictConfig("rec", str(tmp_path / "q.jsonl"), str(tmp_path / "p.jsonl"), batch_size=2, progress=False)
    rec = Recorder()
    summary = run_predict(cfg, backend=rec, backend_type="hf")
    assert summary["written"] == 6 and rec.batches == [2, 2, 2]
    p = Prompter()
    assert rec.seen[0] == [
        {"role": "system", "content": p.instruction},
        {"role": "user", "content": p.input_text(rows[0]["question"], rows[0]["description"])},
    ]
    out = read_jsonl(tmp_path / "p.jsonl")
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert {"id", "prediction", "backbone", "question", "description", "seconds", "crisis"} <= set(out[0])
    # research generation: the crisis check is recorded, and the question is still answered
    assert out[-1]["crisis"] in ("elevated", "imminent") and out[-1]["prediction"].startswith("答：")
    assert out[0]["crisis"] == "none"


def test_resume_skips_done_ids_and_repairs_a_torn_last_line(tmp_path: Path) -> None:
    rows = _questions(tmp_path / "q.jsonl", 6)
    out = tmp_path / "p.jsonl"
    done = [{"id": rows[3]["id"], "prediction": "早就答好了", "backbone": "rec"}]
    out.write_text(json.dumps(done[0], ensure_ascii=False) + "\n" + '{"id": "' + rows[0]["id"] + '", "predic')
    rec = Recorder()
    run_predict(PredictConfig("rec", str(tmp_path / "q.jsonl"), str(out), progress=False), backend=rec)
    asked = [m[-1]["content"] for m in rec.seen]
    assert len(asked) == 5 and not any(rows[3]["question"] in a for a in asked)
    final = read_jsonl(out)
    assert [r["id"] for r in final] == [r["id"] for r in rows]  # input order, one row per id
    assert final[3]["prediction"] == "早就答好了"
    # a second run has nothing left to do and loads no backend
    assert run_predict(PredictConfig("rec", str(tmp_path / "q.jsonl"), str(out), progress=False))["already_done"] == 6


def test_output_of_another_backbone_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    out.write_text('{"id": "1", "prediction": "x", "backbone": "other"}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl:1: holds backbone 'other'"):
        read_done(out, "rec")


def _backbones(tmp_path: Path, tiny: Path) -> Path:
    cfg = tmp_path / "backbones.yaml"
    cfg.write_text(
        "default: tiny\nbackbones:\n"
        f"  tiny: {{type: hf, label: Tiny, model: '{tiny}', device: cpu}}\n"
        f"  broken: {{type: hf, label: Broken, model: '{tmp_path / 'no-such-model'}', device: cpu}}\n"
        "  openai: {type: openai, label: API, base_url: '${OPENAI_BASE_URL:-}', model: '${OPENAI_MODEL:-}'}\n",
        encoding="utf-8",
    )
    return cfg


def test_tiny_hf_model_batched_through_the_cli(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    _questions(tmp_path / "q.jsonl", 5)
    argv = ["--backbone", "tiny", "--input", str(tmp_path / "q.jsonl"), "--output", str(tmp_path / "p.jsonl"),
            "--backbones-config", str(_backbones(tmp_path, tiny_model_dir)), "--batch-size", "3",
            "--max-new-tokens", "6", "--no-progress"]  # fmt: skip
    assert predict_main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 5 and summary["failed"] == 0
    rows = read_jsonl(tmp_path / "p.jsonl")
    assert all(r["backbone"] == "tiny" and isinstance(r["prediction"], str) for r in rows)
    assert all(r["max_new_tokens"] == 6 and r["temperature"] == 0.0 for r in rows)


def test_unknown_and_broken_backbones_say_why(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    _questions(tmp_path / "q.jsonl", 2)
    base = ["--input", str(tmp_path / "q.jsonl"), "--output", str(tmp_path / "p.jsonl"), "--backbones-config",
            str(_backbones(tmp_path, tiny_model_dir)), "--no-progress"]  # fmt: skip
    assert predict_main(["--backbone", "nope", *base]) == 2
    err = capsys.readouterr().err
    assert "unknown backbone 'nope'" in err and "tiny, broken, openai" in err
    assert predict_main(["--backbone", "broken", *base]) == 2
    err = capsys.readouterr().err
    assert "backbone 'broken' failed to load" in err and "model folder not found" in err
    assert predict_main(["--input", str(tmp_path / "q.jsonl"), "--output", str(tmp_path / "p.jsonl")]) == 2
    assert "missing setting(s) ['backbone']" in capsys.readouterr().err


def test_openai_backbone_concurrent_and_a_failed_request_is_retried_on_rerun(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _questions(tmp_path / "q.jsonl", 8)
    bad = Prompter().input_text(rows[2]["question"], rows[2]["description"])
    with FakeOpenAI(latency=0.15, plans={bad: ["500"] * 3}) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_MODEL", "fake-cbt")
        cfg = PredictConfig("openai", str(tmp_path / "q.jsonl"), str(tmp_path / "p.jsonl"), concurrency=4,
                            backbones_config=str(_backbones(tmp_path, tiny_model_dir)), progress=False)  # fmt: skip
        with pytest.raises(PredictError, match="1 question"):
            run_predict(cfg)
        assert server.max_in_flight >= 2
        assert len(read_jsonl(tmp_path / "p.jsonl")) == 7
        run_predict(cfg)
        assert sum(server.ok_by_question.values()) == 8  # nothing answered twice
    out = read_jsonl(tmp_path / "p.jsonl")
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert all(r["prediction"] == server.answer_for(Prompter().input_text(q["question"], q["description"]))
               for r, q in zip(out, rows, strict=True))  # fmt: skip


def test_sigkill_mid_run_then_rerun_gives_exactly_one_row_per_id(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = _questions(tmp_path / "q.jsonl", 12)
    out = tmp_path / "p.jsonl"
    with FakeOpenAI(latency=0.4) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_MODEL": "fake-cbt", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "cbt", "predict", "--backbone", "openai", "--input", str(tmp_path / "q.jsonl"),
               "--output", str(out), "--concurrency", "1", "--no-progress",
               "--backbones-config", str(_backbones(tmp_path, tiny_model_dir))]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        partial = out.read_text().count("\n")
        assert 3 <= partial < 12, "the run should have been killed mid-way"
        with open(out, "a", encoding="utf-8") as fh:  # as if the kill had torn a line in half
            fh.write('{"id": "torn", "predi')
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["already_done"] == partial
        assert server.requests <= 12 + 1  # at most the one request in flight at the kill is repeated
    final = read_jsonl(out)
    assert [r["id"] for r in final] == [r["id"] for r in rows]
