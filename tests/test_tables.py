"""eval.tables: Table 3 on a small hand-made label set (figures computed by hand below) and Table 5 on a small
rating set; bad rows get errors naming the row and field."""

from __future__ import annotations

import json

import pytest

from cbt.distortions import extract_distortions
from eval import tables
from eval.agreement import krippendorff_alpha, weighted_kappa


def _lab(q: str, rater: str, ids: list[str]) -> dict:
    return {
        "item_id": f"L-{q}",
        "question_id": q,
        "rater": rater,
        "distortions": ids,
        "key_thought": "",
        "confidence": 2,
    }


LABELS = [
    _lab("q1", "a", ["all_or_nothing", "overgeneralization"]), _lab("q1", "b", ["overgeneralization"]),
    _lab("q2", "a", []), _lab("q2", "b", []),
    _lab("q3", "a", ["mind_reading"]), _lab("q3", "b", []),
    _lab("q4", "a", ["catastrophizing"]), _lab("q4", "b", ["labeling"]),
    _lab("q5", "a", []), _lab("q5", "b", []), _lab("q5", "c", ["labeling"]),
]  # fmt: skip
TEXT = {
    "og": "你的想法有些以偏概全。",
    "mr": "这里带着读心术的色彩。",
    "cat": "这是一种灾难化的想法。",
    "aon_og": "这是非黑即白的想法，也有以偏概全。",
    "none": "我能理解你的难过。",
}
PREDS = [
    {"id": "q1", "prediction": TEXT["og"], "backbone": "m1"},
    {"id": "q2", "prediction": TEXT["mr"], "backbone": "m1"},
    {"id": "q3", "prediction": TEXT["none"], "backbone": "m1"},
    {"id": "q4", "prediction": TEXT["cat"], "backbone": "m1"},
    {"id": "q5", "prediction": TEXT["none"], "backbone": "m1"},
    {"id": "q9", "prediction": TEXT["og"], "backbone": "m1"},  # no labels for q9
    {"id": "q1", "prediction": TEXT["aon_og"], "backbone": "m2"},
]


def test_texts_name_what_the_test_assumes():
    assert extract_distortions(TEXT["og"]) == ["overgeneralization"]
    assert extract_distortions(TEXT["mr"]) == ["mind_reading"]
    assert extract_distortions(TEXT["cat"]) == ["catastrophizing"]
    assert extract_distortions(TEXT["aon_og"]) == ["all_or_nothing", "overgeneralization"]
    assert extract_distortions(TEXT["none"]) == []


def test_gold_rule():
    """q1: aon 1/2 (tie: gold), og 2/2; q3: mr 1/2 -> gold, has 1/2 -> yes; q4: union of the two;
    q5: labeling 1/3 -> not gold, has 1/3 -> no."""
    gold = tables.gold_labels(LABELS)
    assert gold["q1"] == (True, frozenset({"all_or_nothing", "overgeneralization"}), 2)
    assert gold["q2"] == (False, frozenset(), 2)
    assert gold["q3"] == (True, frozenset({"mind_reading"}), 2)
    assert gold["q4"] == (True, frozenset({"catastrophizing", "labeling"}), 2)
    assert gold["q5"] == (False, frozenset(), 3)


def test_table3_hand_computed():
    """m1 items: q1 pred {og} gold {aon, og}; q2 {mr} vs {}; q3 {} vs {mr}; q4 {cat} vs {cat, lab}; q5 {} vs {}.
    any: TP q1 q4, FP q2, FN q3, TN q5 -> accuracy 3/5, precision 2/3, recall 2/3, F1 2/3.
    per type: og TP1; cat TP1; mr FP1 FN1; aon FN1; lab FN1 -> micro P 2/3, R 2/5, F1 0.5.
    macro over the 5 active types: precision mean(og 1, mr 0, cat 1; aon and lab undefined) = 2/3,
    recall mean(0, 1, 0, 1, 0) = 0.4, F1 mean(0, 1, 0, 1, 0) = 0.4. exact match: only q5 -> 1/5."""
    t = tables.table3(LABELS, PREDS)
    r = t["backbones"]["m1"]
    assert r["n"] == 5 and r["unlabelled_predictions"] == 1
    a = r["any"]
    assert (a["tp"], a["fp"], a["fn"], a["tn"]) == (2, 1, 1, 1)
    assert a["accuracy"] == pytest.approx(0.6)
    assert a["precision"] == a["recall"] == a["f1"] == pytest.approx(2 / 3)
    pt = r["per_type"]
    assert pt["overgeneralization"]["f1"] == 1.0 and pt["catastrophizing"]["f1"] == 1.0
    assert (pt["mind_reading"]["precision"], pt["mind_reading"]["recall"], pt["mind_reading"]["f1"]) == (0, 0, 0)
    assert pt["all_or_nothing"]["precision"] is None and pt["all_or_nothing"]["recall"] == 0.0
    assert pt["labeling"]["support"] == 1 and pt["mind_reading"]["support"] == 1
    assert pt["emotional_reasoning"] == {"precision": None, "recall": None, "f1": None, "tp": 0, "fp": 0, "fn": 0,
                                         "support": 0}  # fmt: skip
    assert r["micro"]["precision"] == pytest.approx(2 / 3) and r["micro"]["recall"] == pytest.approx(0.4)
    assert r["micro"]["f1"] == pytest.approx(0.5)
    assert r["macro"] == pytest.approx({"precision": 2 / 3, "recall": 0.4, "f1": 0.4})
    assert r["exact_match"] == pytest.approx(0.2)
    assert r["paper_table3"] == {"accuracy": a["accuracy"], "recall": a["recall"], "f1": a["f1"]}
    m2 = t["backbones"]["m2"]
    assert m2["n"] == 1 and m2["exact_match"] == 1.0 and m2["micro"]["f1"] == 1.0
    assert t["n_questions_labelled"] == 5 and "at least half" in t["gold_rule"]
    # labellers a, b on q1-q5: has-distortion a = 1 0 1 1 0, b = 1 0 0 1 0 -> p_o = 4/5,
    # p_e = (3/5)(2/5) + (2/5)(3/5) = 12/25 -> (20/25 - 12/25) / (13/25) = 8/13; pairs a-c, b-c share one item only
    agree = t["labeller_agreement"]
    assert agree["has_distortion"] == {"kappa": pytest.approx(8 / 13), "n_pairs": 1}
    assert agree["per_type"]["overgeneralization"]["kappa"] == 1.0
    ci = r["ci95"]
    for group, figures in (("any", a), ("micro", r["micro"])):
        for k in ("precision", "recall", "f1"):
            lo, hi = ci[group][k]
            assert lo <= figures[k] <= hi and lo >= 0 and hi <= 1, (group, k)
    assert ci["any"]["accuracy"][0] <= 0.6 <= ci["any"]["accuracy"][1]
    assert tables.table3(LABELS, PREDS, n_boot=0)["backbones"]["m1"]["ci95"] is None
    assert tables.table3(LABELS, PREDS) == t  # seeded: the same intervals every time
    json.dumps(t, allow_nan=False)  # JSON-serialisable as returned


def test_table3_pooled_and_markdown():
    pooled = tables.table3(LABELS, PREDS, by_backbone=False)
    assert list(pooled["backbones"]) == ["all"] and pooled["backbones"]["all"]["n"] == 6
    md = tables.table3_markdown(tables.table3(LABELS, PREDS, n_boot=0))
    assert "| m1 | 5 | 0.600 | 0.667 | 0.667 | 0.667 | 0.500 | 0.400 | 0.200 |" in md
    t = tables.table3(LABELS, PREDS)
    lo, hi = t["backbones"]["m1"]["ci95"]["any"]["f1"]
    assert f"| 0.667 [{lo:.2f}, {hi:.2f}] |" in tables.table3_markdown(t)
    assert "Cohen's kappa 0.615 (mean of 1 labeller pairs)" in md
    assert "| paper (CBT prompt) | 500 | 0.69 |" in md and "| Mind reading |" in md


def test_table3_bad_rows():
    with pytest.raises(ValueError, match="labels row 0: unknown distortion 'sadness' in field 'distortions'"):
        tables.table3([_lab("q1", "a", ["sadness"])], PREDS)
    with pytest.raises(ValueError, match="labels row 1: rater 'a' labelled question 'q1' twice"):
        tables.table3([_lab("q1", "a", []), _lab("q1", "a", [])], PREDS)
    with pytest.raises(ValueError, match="predictions row 0: missing field 'prediction'"):
        tables.table3(LABELS, [{"id": "q1"}])
    with pytest.raises(ValueError, match="predictions row 1: duplicate prediction for id 'q1'"):
        tables.table3(LABELS, [PREDS[0], PREDS[0]])


def _rating(item: str, backbone: str, rater: str, rel, stru, help_, skipped: bool = False) -> dict:
    return {"item_id": item, "question_id": item[1:], "backbone": backbone, "rater": rater, "relevance": rel,
            "structure": stru, "helpfulness": help_, "comment": "", "flag": False, "skipped": skipped}  # fmt: skip


RATINGS = [
    _rating("Aq1", "A", "r1", 2, 2, 1), _rating("Aq1", "A", "r2", 2, 1, 1),
    _rating("Aq2", "A", "r1", 1, 0, 0), _rating("Aq2", "A", "r2", 0, 0, 1),
    _rating("Bq1", "B", "r1", 2, 2, 2), _rating("Bq1", "B", "r2", 1, 2, 2),
    _rating("Bq2", "B", "r1", 1, 1, 0), _rating("Bq2", "B", "r2", None, None, None, skipped=True),
    _rating("Bq2", "B", "r3", 2, 2, 2, skipped=True),  # skipped rows never count, whatever they hold
]  # fmt: skip


def test_table5_means_cis_and_counts():
    """A relevance: (2 + 2 + 1 + 0) / 4 = 1.25; item resamples give 2.0 (Aq1 twice), 0.5 (Aq2 twice) or 1.25,
    so the CI lies in [0.5, 2.0]. B structure: (2 + 2 + 1) / 3 over the non-skipped ratings."""
    t = tables.table5(RATINGS, n_boot=300, seed=1)
    a, b = t["backbones"]["A"], t["backbones"]["B"]
    assert a["relevance"]["mean"] == pytest.approx(1.25) and a["relevance"]["n"] == 4
    lo, hi = a["relevance"]["ci95"]
    assert 0.5 <= lo <= 1.25 <= hi <= 2.0 and lo < hi
    assert b["structure"]["mean"] == pytest.approx(5 / 3) and b["n_ratings"] == 3
    assert (a["n_items"], a["n_raters"], b["n_items"], b["n_raters"]) == (2, 2, 2, 2)
    assert t["n_skipped"] == 2
    assert tables.table5(RATINGS, n_boot=300, seed=1) == t  # deterministic
    json.dumps(t)


def test_table5_agreement_pooled():
    """Pooled relevance over items Aq1 Aq2 Bq1 Bq2: r1 = 2 1 2 1, r2 = 2 0 1 (Bq2 skipped)."""
    t = tables.table5(RATINGS, n_boot=50)
    ag = t["agreement"]["relevance"]
    assert ag["alpha_ordinal"] == pytest.approx(krippendorff_alpha([[2, 1, 2, 1], [2, 0, 1, None]], "ordinal"))
    assert ag["kappa_quadratic"] == pytest.approx(weighted_kappa([2, 1, 2], [2, 0, 1], "quadratic", labels=[0, 1, 2]))
    assert ag["n_pairs"] == 1 and ag["n_units"] == 3
    assert t["backbones"]["B"]["agreement"]["relevance"]["n_pairs"] == 0  # B's raters share one item only
    md = tables.table5_markdown(t)
    assert "| A | 1.250 [" in md and "| Baichuan-7B (paper) | 1.734 | 1.644 | 1.432 |" in md
    assert "| relevance |" in md


def test_table5_bad_rows():
    with pytest.raises(ValueError, match="ratings row 0: field 'relevance' must be 0, 1 or 2, got 3"):
        tables.table5([_rating("x", "A", "r1", 3, 1, 1)])
    with pytest.raises(ValueError, match="ratings row 0: missing field 'backbone'"):
        tables.table5([{"item_id": "x", "rater": "r"}])
    with pytest.raises(ValueError, match="ratings row 2: rater 'r1' rated item 'x' twice"):
        tables.table5(
            [
                _rating("x", "A", "r1", 1, 1, 1),
                _rating("x", "A", "r1", 2, 1, 1, True),
                _rating("x", "A", "r1", 2, 1, 1),
            ]
        )
