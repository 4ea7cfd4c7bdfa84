"""Split, alpaca / LLaMA-Factory export, prompts, stats and the CLI around them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cbt.io import load_alpaca, load_cbtqa, write_cbtqa
from cbt.prompter import Example, Prompter
from cbt.schema import CBTRecord
from cbt.split import export_split, split_records
from cbt.stats import compute_stats, format_tables

ROOT = Path(__file__).resolve().parents[1]


def recs(n: int) -> list[CBTRecord]:
    return [CBTRecord(f"r{i}", f"问题{i}", f"描述{i}", f"回答{i}") for i in range(n)]


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cbt", *args], input=stdin.encode(), capture_output=True, cwd=ROOT, timeout=120
    )


# ---------------------------------------------------------------- split


def test_split_is_90_10_disjoint_and_complete() -> None:
    train, test = split_records(recs(333))
    assert (len(train), len(test)) == (300, 33)
    assert not {r.id for r in train} & {r.id for r in test}
    assert {r.id for r in train} | {r.id for r in test} == {f"r{i}" for i in range(333)}


def test_split_is_seeded_and_independent_of_input_order() -> None:
    data = recs(200)
    a = {r.id for r in split_records(data, seed=1)[1]}
    assert a == {r.id for r in split_records(list(reversed(data)), seed=1)[1]}
    assert a != {r.id for r in split_records(data, seed=2)[1]}


def test_split_is_stable_when_records_are_added() -> None:
    before = {r.id for r in split_records(recs(200))[1]}
    after = {r.id for r in split_records(recs(220))[1]}
    assert len(before & after) >= 18  # 20 -> 22 test records; almost all old ones stay


def test_split_rejects_bad_ratio_and_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="test_ratio"):
        split_records(recs(10), test_ratio=1.5)
    with pytest.raises(ValueError, match="unique"):
        split_records(recs(3) + recs(1))


# ---------------------------------------------------------------- prompts and export


def test_generation_prompt_has_the_papers_five_parts_and_fills_placeholders() -> None:
    p = Prompter()
    text = p.generation_prompt("我为什么总是拖延？", "每次都拖到最后一天。")
    for part in ("验证和共情", "识别关键思维或信念", "提出挑战或反思", "提供策略或见解", "鼓励与前瞻"):
        assert part in text
    assert "问题：我为什么总是拖延？" in text and "描述：每次都拖到最后一天。" in text
    assert text.rstrip().endswith("回答：") and "{" not in text
    en = p.generation_prompt("Q?", "D.", lang="en", example=Example("EQ", "ED", "EA"))
    assert "Validation and Empathy" in en and "Response: EA" in en and en.rstrip().endswith("Response:")
    assert en.index("EQ") < en.index("Question: Q?")


def test_instruction_record_follows_section_4_1() -> None:
    rec = Prompter().to_alpaca(CBTRecord("1", "标题？", "描述。", "回答"))
    assert rec.instruction.startswith("You are an experienced therapist specializing in cognitive behavioral therapy")
    assert (rec.input, rec.output) == ("标题？\n描述。", "回答")
    assert Prompter("zh").instruction.startswith("你是一位")


def test_export_round_trips_through_llamafactory_files(tmp_path: Path) -> None:
    data = recs(50)
    train, test = split_records(data)
    export_split(train, test, tmp_path)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    p = Prompter()
    for part, rows in (("train", train), ("test", test)):
        entry = info[f"cbt_qa_{part}"]
        assert entry["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}
        assert load_alpaca(tmp_path / entry["file_name"]) == [p.to_alpaca(r) for r in rows]
        assert load_cbtqa(tmp_path / f"{part}.jsonl") == rows


def test_split_cli(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    write_cbtqa(src, recs(40))
    out = run_cli("split", "--input", str(src), "--out", str(tmp_path / "o"), "--seed", "7")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["test"] == 4
    assert (tmp_path / "o" / "cbt_qa_train.json").exists()


# ---------------------------------------------------------------- stats


def test_stats_recomputed_by_hand(tmp_path: Path) -> None:
    rows = [
        CBTRecord("1", "一二三四", "五六", "七八九十", distortions=["all_or_nothing", "overgeneralization"]),
        CBTRecord("2", "一二", " 五六七八 ", "七八", distortions=["all_or_nothing"]),
        CBTRecord("3", "一二三", "", "七八九", distortions=["fortune_telling", "labeling"]),
        CBTRecord("4", "一", "五", "七", distortions=[]),
    ]
    s = compute_stats(rows)
    assert (s.n_records, s.n_responses) == (4, 4)
    assert s.chars_question == pytest.approx((4 + 2 + 3 + 1) / 4)
    assert s.chars_description == pytest.approx((2 + 4 + 0 + 1) / 4)  # stripped
    assert s.chars_response == pytest.approx((4 + 2 + 3 + 1) / 4)
    assert s.share_with_distortion == pytest.approx(0.75)
    t2 = s.to_dict()["table2"]
    assert (t2["all_or_nothing"], t2["overgeneralization"], t2["others"]) == (2, 1, 2)
    assert "| Percentage of Cognitive Distortions | 75.0% |" in format_tables(s)


def test_stats_from_text_uses_the_extractor() -> None:
    rows = [CBTRecord("1", "q", "d", "你的想法带着“以偏概全”的色彩。"), CBTRecord("2", "q", "d", "谢谢你的分享。")]
    s = compute_stats(rows, source="text")
    assert s.distortion_counts == {"overgeneralization": 1} and s.share_with_distortion == 0.5
    with pytest.raises(ValueError, match="no 'distortions' field"):
        compute_stats(rows, source="labels")


def test_stats_cli_reports_bad_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q", "description": "", "answer": "a"}\n{"id": "2"\n')
    out = run_cli("stats", str(bad))
    assert out.returncode == 2
    assert f"{bad}:2: invalid JSON" in out.stderr.decode()
