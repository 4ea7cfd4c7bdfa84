"""eval.metrics / eval.ngram / eval.stats / eval.model_metrics: hand-computed values, equality with sacrebleu,
bootstrap determinism and coverage, the paired test, and BERTScore/BLEURT on a tiny offline model."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

from cbt.io import load_sample
from cbt.sections import segment
from eval import corpus as corpus_mod
from eval import metrics as m
from eval import ngram
from eval.model_metrics import bertscore, bleurt
from eval.stats import bootstrap_ratio, percentile_ci, weight_blocks


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    """120 (prediction, reference) pairs from the sample set: each answer against another question's answer,
    plus a few edited copies (high overlap) and edge cases (empty, ASCII, digits, full-width space)."""
    answers = [r.answer for r in load_sample()][:120]
    hyps = [answers[(i + 1) % len(answers)] for i in range(len(answers))]
    refs = list(answers)
    hyps[:5] = [a.replace("你", "您", 3) for a in answers[:5]]
    hyps[5], refs[5] = "", "我很难过。"
    hyps[6], refs[6] = "OK, 3.5 分 -- (test) ok.", "ok, 3.5分 -- test!"
    hyps[7], refs[7] = "我\u3000很好，真的。", "我很好"
    return hyps, refs


# ---------------------------------------------------------------- tokenisation and sufficient statistics


def test_zh_tokenize_equals_sacrebleu_on_fuzzed_and_real_text(pairs):
    tz = TokenizerZh()
    alphabet = [*".,-5a 中，。\n&;:'\"(x)9!", "\u2001", "\u2a6d", "\u2a6e", "\U00020001", "\u3000", "\uff0c"]
    rng = random.Random(0)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16))) for _ in range(3000)]
    for text in texts + pairs[0] + pairs[1]:
        assert ngram.zh_tokenize(text) == tz(text.rstrip()).split(), repr(text)


def test_bleu_and_chrf_equal_sacrebleu_corpus_and_sentence(pairs):
    hyps, refs = pairs
    assert m.bleu(hyps, refs)["score"] == BLEU(tokenize="zh").corpus_score(hyps, [refs]).score
    assert m.chrf(hyps, refs)["score"] == CHRF().corpus_score(hyps, [refs]).score
    sent_bleu, sent_chrf = BLEU(tokenize="zh", effective_order=True), CHRF()
    per_bleu, per_chrf = m.bleu(hyps, refs)["per_item"], m.chrf(hyps, refs)["per_item"]
    for i in range(len(hyps)):
        assert per_bleu[i] == sent_bleu.sentence_score(hyps[i], [refs[i]]).score, i
        assert per_chrf[i] == sent_chrf.sentence_score(hyps[i], [refs[i]]).score, i


def test_bleu_hand_computed():
    """我很难过 vs 我很难受 (one token per character): 1-gram 3/4, 2-gram 2/3, 3-gram 1/2, 4-gram 0/1;
    exp smoothing turns 0/1 into 100/(2*1) = 50%; brevity penalty 1. BLEU = (75 * 66.67 * 50 * 50)^(1/4)."""
    r = m.bleu(["我很难过"], ["我很难受"])
    assert r["score"] == pytest.approx((75 * (200 / 3) * 50 * 50) ** 0.25)
    assert "tok:zh" in r["signature"]
    s = ngram.bleu_stats(["我很难过"], ["我很难受"])[0].tolist()
    assert s == [4, 4, 3, 2, 1, 0, 4, 3, 2, 1]


def test_chrf_hand_computed():
    """我好 vs 我很好: order 1 P=2/2 R=2/3, order 2 P=0/1 R=0/2, orders 3-6 have no hypothesis n-gram and
    drop out (effective order 2): avgP = 1/2, avgR = 1/3, chrF2 = 5 PR / (4P + R) = 0.8333 / 2.3333."""
    r = m.chrf(["我好"], ["我很好"])
    assert r["score"] == pytest.approx(100 * (5 * 0.5 / 3) / (4 * 0.5 + 1 / 3))


def test_meteor_hand_computed():
    """Identical 3 words: P = R = 1, one chunk, penalty 0.5 * (1/3)^3. Swapped 2 words: P = R = 1, 2 chunks
    of 2 matches: penalty 0.5 * 1^3 -> 0.5."""
    assert m.jieba_tokens("我 很 难过") == ["我", "很", "难过"]
    r = m.meteor(["我 很 难过", "难过 我"], ["我 很 难过", "我 难过"])
    assert r["per_item"] == pytest.approx([100 * (1 - 0.5 / 27), 50.0])
    assert r["score"] == pytest.approx((100 * (1 - 0.5 / 27) + 50) / 2)
    assert "EMPTY" in r["note"]
    assert m.meteor(["完全 不同"], ["毫无 关系"])["score"] == 0.0


def test_structure_and_coverage(pairs):
    hyps, _ = pairs
    r = m.structure(hyps[:20])
    assert r["per_item"] == pytest.approx([segment(h).structure_score for h in hyps[:20]])
    assert 0 <= r["score"] <= 1 and 0 <= r["all_five"] <= 1
    cov = m.distortion_coverage(
        ["有以偏概全和读心术。", "这是灾难化。", "你好", "读心术"],
        ["以偏概全、读心术、灾难化都有。", "你好", "读心术", "读心术"],
    )
    assert cov["per_item"] == pytest.approx([2 / 3, None, 0.0, 1.0])
    assert cov["score"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert cov["micro"] == pytest.approx(3 / 5)
    assert cov["n_scored"] == 3
    none = m.evaluate(["你好"], ["你好"], ["distortion_coverage"], n_boot=20)["metrics"]["distortion_coverage"]
    assert none["score"] is None and none["ci95"] is None and none["micro"] is None  # no reference names one


def test_parallel_features_equal_serial(pairs, monkeypatch):
    hyps, refs = pairs[0][:16], pairs[1][:16]
    serial = m.Corpus(hyps, refs, workers=1)
    serial.prepare(m.TEXT_METRICS)
    monkeypatch.setattr(corpus_mod, "PARALLEL_MIN", 4)
    monkeypatch.setattr(corpus_mod, "PARALLEL_MIN_FORKSERVER", 4)
    assert corpus_mod._pool_context(len(hyps)) is not None  # the pool really runs
    pooled = m.Corpus(hyps, refs, workers=2)
    pooled.prepare(m.TEXT_METRICS)
    for kind in ("meteor", "structure", "distortions"):
        assert pooled.feature(kind) == serial.feature(kind)


# ---------------------------------------------------------------- evaluate, bootstrap, paired test


def test_evaluate_shape_determinism_and_skips(pairs):
    hyps, refs = pairs[0][:40], pairs[1][:40]
    a = m.evaluate(hyps, refs, n_boot=200, seed=3)
    assert a["n"] == 40 and set(a["metrics"]) == set(m.ALL_METRICS)
    json.dumps(a, allow_nan=False)  # plain JSON: no numpy types, no NaN
    for name in m.TEXT_METRICS:
        res = a["metrics"][name]
        lo, hi = res["ci95"]
        assert lo <= res["score"] <= hi, name
        assert len(res["per_item"]) == 40
    for name in m.MODEL_METRICS:
        assert set(a["metrics"][name]) == {"skipped"}
    assert m.evaluate(hyps, refs, ["bleu", "meteor"], n_boot=200, seed=3)["metrics"]["bleu"] == a["metrics"]["bleu"]
    c = m.evaluate(hyps, refs, ["bleu"], n_boot=200, seed=4)
    assert c["metrics"]["bleu"]["ci95"] != a["metrics"]["bleu"]["ci95"]
    assert m.evaluate(hyps, refs, ["chrf"], n_boot=0)["metrics"]["chrf"]["ci95"] is None


def test_bleu_bootstrap_replicates_are_corpus_bleu_of_the_resample(pairs):
    hyps, refs = pairs[0][:30], pairs[1][:30]
    _, stat = m._bleu(m.Corpus(hyps, refs))
    w = next(weight_blocks(30, 3, seed=9))
    for row, value in zip(w, stat(w), strict=True):
        idx = [i for i in range(30) for _ in range(row[i])]
        expected = BLEU(tokenize="zh").corpus_score([hyps[i] for i in idx], [[refs[i] for i in idx]]).score
        assert value == pytest.approx(expected, abs=1e-9)


def test_bootstrap_percentile_ci_covers_the_true_mean():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(100):
        x = rng.normal(0.0, 1.0, size=100)
        lo, hi = bootstrap_ratio(x, np.ones_like(x), n_boot=500, seed=trial)["ci95"]
        covered += lo <= 0.0 <= hi
    assert 88 <= covered <= 100


def test_stats_edge_cases():
    assert percentile_ci([float("nan")]) != percentile_ci([1.0])
    with pytest.raises(ValueError, match="at least one"):
        next(weight_blocks(0, 10))
    w1 = np.vstack(list(weight_blocks(7, 300, seed=2)))
    w2 = np.vstack(list(weight_blocks(7, 300, seed=2)))
    assert (w1 == w2).all() and w1.shape == (300, 7) and (w1.sum(axis=1) == 7).all()


def test_paired_bootstrap(pairs):
    hyps, refs = pairs[0][:40], pairs[1][:40]
    better = [r[: max(1, len(r) * 2 // 3)] for r in refs]
    res = m.paired_bootstrap(better, hyps, refs, metric="bleu", n_boot=300, seed=1)
    assert res["delta"] == pytest.approx(res["a"] - res["b"]) and res["delta"] > 0
    assert res["ci95"][0] > 0 and res["p_value"] < 0.01
    same = m.paired_bootstrap(hyps, hyps, refs, metric="chrf", n_boot=100)
    assert same["delta"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match=r"no BERTScore model"):
        m.paired_bootstrap(hyps, hyps, refs, metric="bertscore", n_boot=10)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        m.bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="nothing to score"):
        m.evaluate([], [])
    with pytest.raises(ValueError, match="unknown metric 'rouge'"):
        m.evaluate(["a"], ["a"], ["rouge"])
    with pytest.raises(TypeError, match="reference 1"):
        m.chrf(["a", "b"], ["a", None])


# ---------------------------------------------------------------- model-based metrics on a tiny random model


def test_bertscore_on_tiny_model(tiny_model_dir):
    texts = ["我能理解你的难过。", "今天的天气很好，我们去公园散步吧。"]
    r = bertscore([texts[0], texts[0], texts[1]], [texts[0], texts[1], texts[0]], model_path=tiny_model_dir)
    same, cross, swapped = r["per_item"]
    assert same == pytest.approx(1.0, abs=1e-5)
    assert cross < same and swapped == pytest.approx(cross, abs=1e-6)  # F1 is symmetric
    assert all(-1.0 <= v <= 1.0 for v in r["per_item"]) and "layer -1" in r["note"]
    assert bertscore(texts, texts)["skipped"].startswith("no BERTScore model")
    with pytest.raises(ValueError, match="not a local model directory"):
        bertscore(texts, texts, model_path=tiny_model_dir / "missing")


def test_bleurt_on_tiny_regression_checkpoint(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "bleurt")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "bleurt")
    hyps, refs = ["我很难过。", "你好"], ["我很伤心。", "你好呀，今天怎么样？"]
    a = bleurt(hyps, refs, checkpoint=tmp_path / "bleurt", batch_size=1)
    b = bleurt(hyps, refs, checkpoint=tmp_path / "bleurt", batch_size=2)
    assert len(a["per_item"]) == 2 and all(math.isfinite(v) for v in a["per_item"])
    assert a["per_item"] == pytest.approx(b["per_item"], abs=1e-4)  # padding does not change a pair's score
    res = m.evaluate(hyps, refs, ["bleurt"], bleurt_checkpoint=str(tmp_path / "bleurt"), n_boot=50)
    assert res["metrics"]["bleurt"]["ci95"] is not None
    config2 = AutoConfig.from_pretrained(tiny_model_dir, num_labels=3)
    LlamaForSequenceClassification(config2).save_pretrained(tmp_path / "cls3")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "cls3")
    with pytest.raises(ValueError, match="num_labels=3"):
        bleurt(hyps, refs, checkpoint=tmp_path / "cls3")


def test_bleu_chrf_equal_sacrebleu_on_the_real_answers(autocbt_dir):
    """The 100 real CBT-LLM answers against the Qwen+CBT-prompt answers (full length, ~550 characters)."""
    pred = {
        r["questionID"]: r["cbt_answer"]
        for r in json.loads((autocbt_dir / "psyqa_balanced_cbtllm.json").read_text("utf-8"))
    }
    ref = {
        r["questionID"]: r["cbt_answer"]
        for r in json.loads((autocbt_dir / "psyqa_balanced_qwen_prompt.json").read_text("utf-8"))
    }
    ids = sorted(pred.keys() & ref.keys())
    hyps, refs = [pred[i] for i in ids], [ref[i] for i in ids]
    corpus = m.Corpus(hyps, refs)
    b, c = m.bleu(hyps, refs, corpus=corpus), m.chrf(hyps, refs, corpus=corpus)
    assert b["score"] == BLEU(tokenize="zh").corpus_score(hyps, [refs]).score
    assert c["score"] == CHRF().corpus_score(hyps, [refs]).score
    sent = BLEU(tokenize="zh", effective_order=True)
    assert b["per_item"] == [sent.sentence_score(h, [r]).score for h, r in zip(hyps, refs, strict=True)]
