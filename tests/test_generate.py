"""Data-set generation against a real HTTP server on loopback: faults, resume, budget, kills, batch mode."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cbt.generate import GenerationConfig, Generator, load_config, make_client, run
from cbt.generate_batch import BatchJob
from cbt.io import load_cbtqa, load_questions, load_sample, write_jsonl
from cbt.ledger import Ledger
from tests.conftest import read_jsonl
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def questions(tmp_path: Path, n: int) -> tuple[Path, list]:
    recs = load_sample()[:n]
    path = tmp_path / "q.jsonl"
    write_jsonl(
        path, [{"id": str(i), "question": r.question, "description": r.description} for i, r in enumerate(recs)]
    )
    return path, recs


def config(tmp_path: Path, q: Path, server: FakeOpenAI, **kw: object) -> GenerationConfig:
    base = {"concurrency": 4, "timeout_s": 1.0, "backoff_base_s": 0.05, "progress": False}
    return load_config(
        input=str(q), output=str(tmp_path / "out.jsonl"), base_url=server.base_url, model="gpt-4o-mini", **(base | kw)
    )


def test_every_fault_path_ends_in_one_record_or_a_recorded_failure(tmp_path: Path) -> None:
    q, recs = questions(tmp_path, 12)
    plans = {
        recs[0].question: ["429:1", "ok"],
        recs[1].question: ["500", "ok"],
        recs[2].question: ["malformed", "ok"],
        recs[3].question: ["partial", "partial", "partial"],
        recs[4].question: ["timeout:2", "ok"],
        recs[5].question: ["partial", "ok"],
    }
    with FakeOpenAI(latency=0.05, plans=plans) as server:
        result = run(config(tmp_path, q, server))
    assert (result["done"], result["failed"], result["stopped"]) == (11, 1, None)
    out = load_cbtqa(tmp_path / "out.jsonl")
    assert [r.id for r in out] == [str(i) for i in range(12) if i != 3]  # sorted by id, one line each
    assert all(r.extra["model"] == "gpt-4o-mini" and r.distortions is not None for r in out)
    (failure,) = read_jsonl(tmp_path / "out.jsonl.failures.jsonl")
    assert failure["id"] == "3" and failure["reason"].startswith("missing parts") and failure["answers"] == 3
    assert result["unknown_outcome_requests"] == 3  # 500, malformed body, timeout: possibly paid
    events = read_jsonl(tmp_path / "out.jsonl.ledger.jsonl")
    sent_0 = [e["t"] for e in events if e["ev"] == "sent" and e["id"] == "0"]
    assert len(sent_0) == 2 and sent_0[1] - sent_0[0] >= 0.95  # Retry-After: 1 honoured
    assert any(e["ev"] == "result" and "429" in e["status"] and e["usd"] == 0 for e in events)


def test_resume_skips_finished_ids_and_pays_once(tmp_path: Path) -> None:
    q, _recs = questions(tmp_path, 10)
    with FakeOpenAI(latency=0.02) as server:
        first = run(config(tmp_path, q, server, max_requests=4, concurrency=2))
        assert first["stopped"].startswith("max-requests") and first["done"] == 4
        assert len(load_cbtqa(tmp_path / "out.jsonl")) == 4  # partial output is usable
        second = run(config(tmp_path, q, server))
        assert (second["done"], second["remaining"]) == (10, 0)
        assert max(server.ok_by_question.values()) == 1 and server.requests == 10


def test_budget_stops_before_exceeding(tmp_path: Path) -> None:
    q, _ = questions(tmp_path, 10)
    with FakeOpenAI() as server:
        cfg = config(tmp_path, q, server, budget_usd=0.004, concurrency=1)
        result = run(cfg)
    assert result["stopped"].startswith("budget") and 0 < result["done"] < 10
    assert result["spent_usd_upper_bound"] <= 0.004
    state = Ledger.replay(tmp_path / "out.jsonl.ledger.jsonl")
    assert state.spent_usd <= 0.004 and len(state.done) == result["done"]


def test_ledger_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append({"ev": "sent", "id": "1", "req": 1, "est_usd": 0.5})
    ledger.append({"ev": "done", "id": "1", "record": {"id": "1"}})
    ledger.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"ev": "done", "id": "2", "rec')
    state = Ledger.replay(path)
    assert list(state.done) == ["1"] and state.unknown == 1 and state.spent_usd == 0.5


def test_cli_needs_a_key_and_reports_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q, _ = questions(tmp_path, 2)
    monkeypatch.delenv("OPENAI_API_KEY")
    args = [
        "generate",
        "--input",
        str(q),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--base-url",
        "http://127.0.0.1:9/v1",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "cbt", *args, "--model", "m"], capture_output=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 2 and "OPENAI_API_KEY" in out.stderr.decode()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q"}\n{"id": "2"}\n')
    env = os.environ | {"OPENAI_API_KEY": "x"}
    args[2] = str(bad)
    out = subprocess.run([sys.executable, "-m", "cbt", *args, "--model", "m"], capture_output=True, cwd=ROOT, env=env)
    assert out.returncode == 2 and f"{bad}:2: missing field 'question'" in out.stderr.decode()


def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    """Kill the generator three times mid-run; the resumed job ends with one record per id, paid once."""
    q, _recs = questions(tmp_path, 150)
    rng = random.Random(7)
    concurrency, kills = 4, 3
    with FakeOpenAI(latency=0.2) as server:
        cmd = [sys.executable, "-m", "cbt", "generate", "--input", str(q), "--output", str(tmp_path / "out.jsonl")]
        cmd += ["--base-url", server.base_url, "--model", "m", "--concurrency", str(concurrency), "--no-progress"]
        for _ in range(kills):
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(1.5, 3.0))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        done_before = set(Ledger.replay(tmp_path / "out.jsonl.ledger.jsonl").done)
        assert 0 < len(done_before) < 150
        final = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
    out = load_cbtqa(tmp_path / "out.jsonl")
    assert sorted(r.id for r in out) == sorted(str(i) for i in range(150))
    assert [r.id for r in out] == sorted((r.id for r in out), key=int)
    duplicates = sum(n - 1 for n in server.ok_by_question.values())
    assert duplicates <= kills * concurrency  # at most what was in flight at each kill


def test_batch_mode_submits_once_and_resumes(tmp_path: Path) -> None:
    q, recs = questions(tmp_path, 8)
    plans = {recs[2].question: ["partial", "ok"]}
    with FakeOpenAI(plans=plans, batch_polls=2) as server:
        cfg = config(tmp_path, q, server, batch=True, poll_s=0.01)
        records = load_questions(q)
        first = asyncio.run(BatchJob(cfg, make_client(cfg)).run_async(records, wait=False))
        assert first["done"] == 0 and len(server.batches) == 1
        (tmp_path / "out.jsonl.batches.json").unlink()  # as if the run died before saving its state
        second = asyncio.run(BatchJob(cfg, make_client(cfg)).run_async(records))
    assert second["done"] == 8 and second["failed"] == 0
    assert len(server.batches) == 2  # the adopted batch, plus one resubmission for the partial answer
    assert max(server.ok_by_question.values()) <= 2 and server.ok_by_question[recs[2].question] == 2
    assert [r.id for r in load_cbtqa(tmp_path / "out.jsonl")] == [str(i) for i in range(8)]


def test_generator_uses_the_papers_prompt(tmp_path: Path) -> None:
    q, recs = questions(tmp_path, 1)
    cfg = load_config(input=str(q), output=str(tmp_path / "o.jsonl"), base_url="http://x/v1", model="m")
    gen = Generator(cfg, client=None)
    prompt = gen.prompter.generation_prompt(recs[0].question, recs[0].description)
    assert "识别关键思维或信念" in prompt and recs[0].question in prompt
    assert gen.estimate_usd(prompt) > 0
