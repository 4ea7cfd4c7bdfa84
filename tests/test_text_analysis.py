"""Segmenter, distortion extractor and crisis detector, measured on gold sets (ours and real answers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cbt.distortions import extract_distortions, find_mentions
from cbt.io import load_sample
from cbt.safety import assess, crisis_reply
from cbt.sections import heading_section, segment
from cbt.segmenter_train import char_accuracy, golds_from_records, load_offset_gold
from cbt.split import split_records
from tests.conftest import GOLD, read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def cli(command: str, stdin: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "cbt", command], input=stdin.encode(), capture_output=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def micro_f1(pairs: list[tuple[list[str], list[str]]]) -> float:
    tp = sum(len(set(g) & set(p)) for g, p in pairs)
    fp = sum(len(set(p) - set(g)) for g, p in pairs)
    fn = sum(len(set(g) - set(p)) for g, p in pairs)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


# ---------------------------------------------------------------- segmenter


def test_segmenter_on_sample_heldout_split() -> None:
    _, test = split_records(load_sample())
    assert char_accuracy(golds_from_records(test)) >= 0.90


def test_segmenter_on_hand_annotated_real_answers(autocbt_dir: Path) -> None:
    golds = load_offset_gold(GOLD / "real_sections.jsonl", autocbt_dir)
    assert len(golds) >= 40
    assert char_accuracy(golds) >= REAL_SEGMENTER_FLOOR


# Measured 2026-11-26 on the 60 held-out real answers (0.864, CRF segmenter); see README "Text analysis".
REAL_SEGMENTER_FLOOR = 0.85


def test_segment_contract_spans_cover_text() -> None:
    text = (
        "我能理解你。\n\n你似乎认为自己很失败，这是以偏概全。\n\n真的是这样吗？\n\n"
        "你可以试着写下三件小事。\n\n加油，慢慢来。"
    )
    out = cli("segment", text)
    assert "".join(s["text"] for s in out["spans"]) == text
    assert out["spans"][0]["start"] == 0 and out["spans"][-1]["end"] == len(text)
    assert all(a["end"] == b["start"] for a, b in zip(out["spans"], out["spans"][1:], strict=False))
    assert set(out["sections_present"]) >= {"validation", "strategy"}
    assert 0.0 <= out["structure_score"] <= 1.0


@pytest.mark.parametrize(
    ("heading", "section"),
    [
        ("【验证和共情】", "validation"),
        ("2. 识别关键思维或信念：", "key_thought"),
        ("**提出挑战或反思**：", "challenge"),
        ("四、提供策略或见解", "strategy"),
        ("5. Encouragement and foresight:", "encouragement"),
        ("### Validation and empathy", "validation"),
    ],
)
def test_headings_in_chinese_and_english(heading: str, section: str) -> None:
    assert heading_section(heading) == section


def test_headed_answer_follows_its_headings() -> None:
    parts = {
        "validation": "1. 验证和共情：我能理解你最近的疲惫。",
        "key_thought": "2. 识别关键思维：你似乎认为休息就是偷懒。",
        "challenge": "3. 提出挑战：如果朋友这样说自己，你会怎么回应？",
        "strategy": "4. 提供策略：每天安排二十分钟完全属于自己的时间。",
        "encouragement": "5. 鼓励与前瞻：这只是开始，你值得被好好对待。",
    }
    text = "\n".join(parts.values())
    seg = segment(text)
    for sec, part in parts.items():
        start = text.index(part)
        assert set(seg.labels[start : start + len(part)]) == {sec}


def test_structure_score_rewards_complete_ordered_answers() -> None:
    good = segment(
        "我能理解你的难过。\n\n你似乎认为自己一无是处。\n\n真的是这样吗？\n\n你可以每天写下三件小事。\n\n相信你会好起来。"
    )
    partial = segment("你可以每天写下三件小事，也可以去跑步，还可以找朋友聊聊。")
    assert good.structure_score > partial.structure_score
    assert segment("").structure_score == 0.0


# ---------------------------------------------------------------- distortions


def test_extractor_on_sample_heldout_split() -> None:
    _, test = split_records(load_sample())
    assert micro_f1([(r.distortions or [], extract_distortions(r.answer)) for r in test]) >= 0.90


def test_extractor_on_real_answers(autocbt_dir: Path) -> None:
    sources = {}
    pairs = []
    for row in read_jsonl(GOLD / "real_sections.jsonl"):
        if row["file"] not in sources:
            sources[row["file"]] = json.loads((autocbt_dir / row["file"]).read_text(encoding="utf-8"))
        pairs.append((row["distortions"], extract_distortions(sources[row["file"]][row["index"]]["cbt_answer"])))
    assert sum(bool(g) for g, _ in pairs) >= 4
    assert micro_f1(pairs) >= 0.85


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("你描述的这种模式可能是一种认知扭曲，即“全然或无”。", ["all_or_nothing"]),
        ("这是不是有点非黑即白了？", ["all_or_nothing"]),
        ("你的担心并不是灾难化，而是有现实依据的。", []),
        ("这不属于读心术，因为她确实这么说过。", []),
        ("你给自己贴上了“失败者”的标签。", ["labeling"]),
        ("这是一种“必须”思维。", ["should_statements"]),
        ("我会给你一些个人化的建议。", []),
        ("没有人能预测未来。", []),
        ("That sounds like all-or-nothing thinking and some mind reading.", ["all_or_nothing", "mind_reading"]),
        ("This isn't catastrophizing: the risk is real.", []),
        ("Try labeling your emotions when they arise.", []),
    ],
)
def test_extractor_phrasings(text: str, expected: list[str]) -> None:
    assert extract_distortions(text) == expected


def test_mentions_are_located() -> None:
    (m,) = find_mentions("你有些以偏概全。")
    assert (m.distortion, m.term, m.start, m.negated) == ("overgeneralization", "以偏概全", 3, False)
    assert cli("distortions", "你有些以偏概全，也有读心术。") == {
        "distortions": ["overgeneralization", "mind_reading"]
    }


# ---------------------------------------------------------------- crisis detector


@pytest.mark.parametrize("name", ["crisis_dev.jsonl", "crisis_heldout.jsonl"])
def test_crisis_recall_one_and_few_false_positives(name: str) -> None:
    rows = read_jsonl(GOLD / name)
    risk = [r for r in rows if r["crisis"]]
    benign = [r for r in rows if not r["crisis"]]
    assert len(risk) >= 60 and len(benign) >= 60
    missed = [r["text"] for r in risk if not assess(r["text"]).crisis]
    assert missed == []
    false_pos = [r["text"] for r in benign if assess(r["text"]).crisis]
    assert len(false_pos) <= 0.05 * len(benign), false_pos


def test_heldout3_set_floors() -> None:
    """Set 3 was written by a session that never saw the rules or the model; its misses were then read for
    error analysis, so it is no longer blind (tests/test_crisis.py holds the figures, blind4 the blind one)."""
    rows = read_jsonl(GOLD / "crisis_heldout3.jsonl")
    risk = [r for r in rows if r["crisis"]]
    benign = [r for r in rows if not r["crisis"]]
    recall = sum(assess(r["text"]).crisis for r in risk) / len(risk)
    fpr = sum(assess(r["text"]).crisis for r in benign) / len(benign)
    assert recall >= 0.99 and fpr <= 0.035, (recall, fpr)  # measured 1.00 / 0.033 (was 0.84 / 0.098 before)


def test_learned_model_adds_recall_where_the_lexicon_is_silent() -> None:
    from cbt.safety_model import load_model

    model = load_model()
    assert model is not None
    rows = [r for r in read_jsonl(GOLD / "crisis_heldout3.jsonl") if r["crisis"]]
    by_model = [r for r in rows if any("learned model" in x for x in assess(r["text"]).reasons)]
    assert len(by_model) >= 10


def test_safety_model_training_separates_a_toy_set() -> None:
    from cbt.safety_model import train

    model = train(["我想去死", "活不下去了", "今天天气很好", "我喜欢吃苹果"] * 5, [True, True, False, False] * 5)
    assert model.prob("我想去死") > 0.8 > 0.2 > model.prob("我喜欢吃苹果")


@pytest.mark.parametrize(
    "text",
    [
        "笑死我了",
        "今天累死了",
        "饿死了，去吃饭",
        "气死我了",
        "急死人了",
        "爱死这首歌了",
        "我奶奶去年去世了，我很想她",
        "我很怕死",
    ],
)
def test_everyday_idioms_and_grief_do_not_fire(text: str) -> None:
    assert assess(text).to_dict() == {"crisis": False, "level": "none", "reasons": []}


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("不想活了", "elevated"),
        ("活着没意思", "elevated"),
        ("好想解脱", "elevated"),
        ("真希望不要再醒来", "elevated"),
        ("最近在攒药", "elevated"),
        ("想紫砂", "elevated"),
        ("I want to kill myself", "elevated"),
        ("遗书写好了，今晚就结束", "imminent"),
        ("I've written my note. Goodbye everyone.", "imminent"),
    ],
)
def test_risk_levels(text: str, level: str) -> None:
    out = cli("safety", text)
    assert (out["crisis"], out["level"]) == (True, level) and out["reasons"]


def test_third_party_and_negation() -> None:
    friend = assess("我朋友说她想自杀，我该怎么办")
    assert friend.crisis and any("someone else" in r for r in friend.reasons)
    assert not assess("我从来没想过自杀，只是最近压力大").crisis
    assert assess("我不是想死，只是不想活了").crisis


def test_crisis_reply_has_the_hotlines_and_says_it_is_an_ai() -> None:
    for lang in ("zh", "en"):
        text = crisis_reply(lang)
        for number in ("12356", "010-82951332", "400-161-9995", "110", "120"):
            assert number in text
    assert "人工智能" in crisis_reply("zh") and "not a substitute" in crisis_reply("en")


# ---------------------------------------------------------------- analyze


def test_analyze_answers_counts_and_parallel_path_agree(tmp_path: Path) -> None:
    from cbt.analyze import analyze_answers, analyze_many

    answers = [r.answer for r in load_sample()[:40]]
    report = analyze_answers(answers)
    assert report.n == 40 and 0.0 < report.share_all_five <= 1.0
    assert report.share_naming_distortion == sum(bool(extract_distortions(a)) for a in answers) / 40
    texts = answers * 60  # 2,400: large enough for the process pool
    assert analyze_many(texts, workers=2) == analyze_many(texts, workers=1)


def test_analyze_cli_names_a_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"answer": "我能理解你。"}\n{"prediction": "x"}\n', encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "cbt", "analyze", str(path)], capture_output=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 2 and f"{path}:2: field 'answer'" in out.stderr.decode()
