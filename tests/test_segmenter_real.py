"""The section segmenter on real answers: the sealed test set's floor, the CRF trainer, and its data hygiene."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from cbt.io import load_sample
from cbt.sections import WEIGHTS_PATH, segment
from cbt.segmenter_train import (
    GoldAnswer,
    _Batch,
    _sequences,
    char_accuracy,
    golds_from_records,
    load_offset_gold,
    train,
)
from cbt.split import split_records
from tests.conftest import GOLD, read_jsonl

# Measured 2026-11-26 on the 60 sealed real answers: 0.864 (CBT-LLM 0.881, Qwen 0.851); floors a little below.
REAL_TEST_FLOOR = {"all": 0.85, "psyqa_balanced_cbtllm.json": 0.865, "psyqa_balanced_qwen_prompt.json": 0.835}


def _test_golds(autocbt_dir: Path) -> tuple[list[GoldAnswer], list[str]]:
    rows = read_jsonl(GOLD / "real_sections.jsonl")
    return load_offset_gold(GOLD / "real_sections.jsonl", autocbt_dir), [r["file"] for r in rows]


def test_sealed_real_answers_meet_the_floor(autocbt_dir: Path) -> None:
    golds, files = _test_golds(autocbt_dir)
    assert len(golds) == 60
    assert char_accuracy(golds) >= REAL_TEST_FLOOR["all"]
    for name in ("psyqa_balanced_cbtllm.json", "psyqa_balanced_qwen_prompt.json"):
        part = [g for g, f in zip(golds, files, strict=True) if f == name]
        assert len(part) == 30
        assert char_accuracy(part) >= REAL_TEST_FLOOR[name], name


def test_no_test_answer_is_used_for_training() -> None:
    key = ("file", "index")
    test = {tuple(r[k] for k in key) for r in read_jsonl(GOLD / "real_sections.jsonl")}
    train_rows = read_jsonl(GOLD / "real_sections_train.jsonl")
    assert len(train_rows) >= 139
    assert not test & {tuple(r[k] for k in key) for r in train_rows}
    meta = json.loads(WEIGHTS_PATH.read_text(encoding="utf-8"))
    assert not any("real_sections.jsonl" in s for s in meta["train_sources"])


def test_training_answers_resolve_with_ordered_disjoint_spans(autocbt_dir: Path) -> None:
    """Every TRAIN answer matches its sha1 (load_offset_gold checks it) and its spans are in-bounds and disjoint."""
    from cbt.taxonomy import SECTION_IDS

    golds = load_offset_gold(GOLD / "real_sections_train.jsonl", autocbt_dir)
    for g in golds:
        end = 0
        for s in sorted(g.spans, key=lambda s: s.start):
            assert s.section in SECTION_IDS
            assert end <= s.start < s.end <= len(g.text), (g.text[:30], s)
            end = s.end
        assert sum(s.end - s.start for s in g.spans) > 0.5 * len(g.text.strip()) or "<|" in g.text


def _toy_golds(n: int) -> list[GoldAnswer]:
    train_set, _ = split_records(load_sample())
    return golds_from_records(train_set)[:n]


def test_crf_gradient_matches_finite_differences() -> None:
    """The analytic likelihood gradient (forward-backward) equals a numerical one."""
    seqs = _sequences(_toy_golds(3), [1.0, 2.0, 0.5])
    feats = sorted({f for s in seqs for fs in s.feats for f in fs})[:40]
    batch = _Batch(seqs, {f: k for k, f in enumerate(feats)}, margin=0.5)
    rng = np.random.default_rng(0)
    params = [rng.normal(0, 0.3, (len(feats), 6)), rng.normal(0, 0.3, (2, 6, 6)), rng.normal(0, 0.3, 6)]
    grads = [np.zeros_like(p) for p in params]
    batch.nll_grad(params, grads)
    eps = 1e-5
    for which, index in [(0, (3, 2)), (0, (10, 0)), (1, (1, 2, 3)), (1, (0, 3, 3)), (2, (0,))]:
        params[which][index] += eps
        up = batch.nll_grad(params, [np.zeros_like(p) for p in params])
        params[which][index] -= 2 * eps
        down = batch.nll_grad(params, [np.zeros_like(p) for p in params])
        params[which][index] += eps
        assert grads[which][index] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("bigrams", [True, False])
def test_crf_learns_the_sample_sections_and_generalises(bigrams: bool) -> None:
    """A short CRF run on 60 sample answers labels held-out sample answers well (chance is ~0.3)."""
    train_set, test_set = split_records(load_sample())
    golds = golds_from_records(train_set)
    random.Random(1).shuffle(golds)
    weights = train(golds[:60], iters=60, lr=0.1, bigrams=bigrams)
    assert {"T1:<s>", "T0:strategy", "bias"} <= set(weights)
    assert any(n.startswith("b:") for n in weights) == bigrams
    assert char_accuracy(golds[:60], weights) > 0.9
    assert char_accuracy(golds_from_records(test_set), weights) > 0.85


def test_announced_section_carries_to_the_following_list() -> None:
    text = (
        "我能理解你现在的难过。\n\n让我们来挑战一下这个想法：\n\n1. 真的每个人都讨厌你吗？\n\n"
        "2. 有没有人曾经关心过你？\n\n你可以尝试以下策略：\n\n1. 每天记录一件小事。\n\n2. 和朋友聊聊。\n\n"
        "记住，改变需要时间，加油！"
    )
    labels = segment(text).labels
    assert labels[text.index("有没有人")] == "challenge"
    assert labels[text.index("和朋友")] == "strategy"
    assert labels[text.index("加油")] == "encouragement"


def test_fast_scoring_equals_scoring_the_feature_strings(autocbt_dir: Path) -> None:
    """Model.emissions (numpy gathers, direct-addressed bigrams) = summing each feature's weights by name,
    the way the trainer sees them; edge cases: empty, one character, characters outside the vocabulary."""
    from cbt.sections import LABELS, Model, _weights, split_units, unit_bigrams, unit_features

    weights = _weights()
    model = Model(weights)
    texts = [g.text for g in load_offset_gold(GOLD / "real_sections.jsonl", autocbt_dir)[:20]]
    for text in [*texts, "", "好", "😀你好😀。\n\nok ok！"]:
        units = split_units(text)
        fast = np.array(model.emissions(text, units, unit_features(text, units))).reshape(-1, len(LABELS))
        names = [f + b for f, b in zip(unit_features(text, units), unit_bigrams(units), strict=True)]
        slow = [[sum(weights[n].get(lab, 0.0) for n in f if n in weights) for lab in LABELS] for f in names]
        assert fast == pytest.approx(np.array(slow).reshape(-1, len(LABELS)), abs=1e-9)
