"""eval.agreement against published and hand-computed values (and against krippendorff / scikit-learn when
those happen to be installed; neither is a dependency)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from eval import agreement as ag

N = None
# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12 units, missing data.
KRIPP = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]


def test_krippendorff_published_example():
    """Published: nominal .743, ordinal .815, interval .849, ratio .797; coincidence marginals 9, 13, 10, 5, 3
    (n = 40 pairable values; unit 12 has one value and drops out)."""
    values, o = ag.coincidences(KRIPP)
    assert values == [1, 2, 3, 4, 5]
    assert o.sum(axis=1) == pytest.approx([9, 13, 10, 5, 3])
    assert o[0].tolist() == pytest.approx([7, 4 / 3, 1 / 3, 1 / 3, 0])
    expected = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}
    for level, value in expected.items():
        assert round(ag.krippendorff_alpha(KRIPP, level), 3) == value, level


def test_krippendorff_properties():
    assert ag.krippendorff_alpha([[0, 1, 2, 2], [0, 1, 2, 2]]) == 1.0
    assert ag.krippendorff_alpha([[1, 1, 1], [1, 1, 1]]) is None  # no variation: undefined
    assert ag.krippendorff_alpha([[1, N], [N, 2]]) is None  # no unit with two values
    assert ag.krippendorff_alpha([[0, 2, 0, 2], [2, 0, 2, 0]], "interval") < 0  # systematic disagreement
    lone = [[*row, v] for row, v in zip(KRIPP, [4, N, N, N], strict=True)]  # a unit with one value changes nothing
    assert ag.krippendorff_alpha(lone, "ordinal") == pytest.approx(ag.krippendorff_alpha(KRIPP, "ordinal"))
    # nominal alpha of two raters, no missing data: (1 - (n-1)/n * D_o/D_e) by hand for 4 units of {a, b}:
    # values a,a | a,b | b,b | b,b -> o_aa=2, o_ab=o_ba=1, o_bb=4; n_a=3, n_b=5, n=8
    # alpha = 1 - (n-1) * (o_ab + o_ba) / (n_a n_b + n_b n_a) = 1 - 7 * 2 / 30
    assert ag.krippendorff_alpha([["a", "a", "b", "b"], ["a", "b", "b", "b"]], "nominal") == pytest.approx(1 - 14 / 30)


def test_krippendorff_matches_the_krippendorff_package_when_installed():
    kr = pytest.importorskip("krippendorff")
    rng = random.Random(1)
    for level in ("nominal", "ordinal", "interval", "ratio"):
        data = [[rng.choice([N, 0, 1, 2, 3, 3]) for _ in range(30)] for _ in range(4)]
        arr = np.array([[np.nan if v is None else v for v in row] for row in data], dtype=float)
        expected = kr.alpha(reliability_data=arr, level_of_measurement=level)
        assert ag.krippendorff_alpha(data, level) == pytest.approx(expected, abs=1e-9)


def test_krippendorff_bad_input():
    with pytest.raises(ValueError, match="rater row 1 has 2 units, row 0 has 3"):
        ag.krippendorff_alpha([[1, 2, 3], [1, 2]])
    with pytest.raises(ValueError, match="level must be one of"):
        ag.krippendorff_alpha(KRIPP, "cardinal")
    with pytest.raises(ValueError, match="ordinal alpha needs numeric"):
        ag.krippendorff_alpha([["a", "b"], ["a", "a"]], "ordinal")


def test_cohen_kappa_textbook():
    """2x2 table yes/yes 20, yes/no 5, no/yes 10, no/no 15 (n = 50): p_o = 35/50 = 0.7;
    A says yes 25/50, B 30/50: p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4."""
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert ag.cohen_kappa(a, b) == pytest.approx(0.4)
    assert ag.cohen_kappa([*a, N], [*b, "yes"]) == pytest.approx(0.4)  # pairs with a missing value drop out
    assert ag.cohen_kappa([1, 1, 1], [1, 1, 1]) is None  # p_e = 1: undefined


def test_weighted_kappa_hand_computed():
    """a = 0 0 1 1 2 2, b = 0 1 1 2 2 2. Observed: (0,0) (0,1) (1,1) (1,2) (2,2)x2; marginals a 2/2/2,
    b 1/2/3, so expected E_ij = 2 * b_j / 6. Unweighted: p_o = 4/6, p_e = 1/3 -> 0.5.
    Linear w = |i-j|/2: sum wO = 1, sum wE = 4/3 + 2/3 + 2/3 = 8/3 -> 1 - 3/8 = 0.625.
    Quadratic w = (i-j)^2/4: sum wO = 0.5, sum wE = 7/6 + 1/3 + 1/2 = 2 -> 1 - 0.25 = 0.75."""
    a, b = [0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2]
    assert ag.cohen_kappa(a, b) == pytest.approx(0.5)
    assert ag.weighted_kappa(a, b, "linear") == pytest.approx(0.625)
    assert ag.weighted_kappa(a, b, "quadratic") == pytest.approx(0.75)
    # an unused category only rescales the weights (no change); the order of the labels is the scale
    assert ag.weighted_kappa(a, b, "quadratic", labels=[0, 1, 2, 3]) == pytest.approx(0.75)
    assert ag.weighted_kappa(a, b, "quadratic", labels=[1, 0, 2]) != pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"values \[5\] are not among labels"):
        ag.weighted_kappa([5, 1], [1, 1], labels=[0, 1, 2])
    with pytest.raises(ValueError, match="weights must be"):
        ag.weighted_kappa(a, b, "cubic")
    assert ag.weighted_kappa([1, 1], [1, 1]) is None


def test_kappas_match_sklearn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(2)
    for _ in range(20):
        a = [rng.randint(0, 2) for _ in range(40)]
        b = [min(2, max(0, x + rng.choice([-1, 0, 0, 1]))) for x in a]
        assert ag.cohen_kappa(a, b) == pytest.approx(metrics.cohen_kappa_score(a, b))
        for w in ("linear", "quadratic"):
            assert ag.weighted_kappa(a, b, w) == pytest.approx(metrics.cohen_kappa_score(a, b, weights=w))


def _rows(rater: str, values: dict[str, int | None], skipped: set[str] = frozenset()) -> list[dict]:
    return [{"item_id": i, "rater": rater, "relevance": v, "skipped": i in skipped} for i, v in values.items()]


def test_pairwise_kappa_on_rows():
    rows = (
        _rows("r1", {"i1": 0, "i2": 0, "i3": 1, "i4": 1, "i5": 2, "i6": 2})
        + _rows("r2", {"i1": 0, "i2": 1, "i3": 1, "i4": 2, "i5": 2, "i6": 2, "i7": 0})
        + _rows("r3", {"i1": 2, "i7": 1, "i8": 0}, skipped={"i8"})  # shares one item with r1: no pair
    )
    res = ag.pairwise_kappa(rows, "relevance", weights="quadratic")
    assert [p["raters"] for p in res["pairs"]] == [["r1", "r2"], ["r2", "r3"]]
    assert res["pairs"][0]["kappa"] == pytest.approx(0.75) and res["pairs"][0]["n"] == 6
    # r2 vs r3 on i1, i7: r2 = 0 0 (constant) so observed = expected disagreement -> kappa 0
    assert res["pairs"][1]["kappa"] == pytest.approx(0.0)
    assert res["kappa"] == pytest.approx(0.375) and res["n_pairs"] == 2
    _, units, matrix = ag.rating_matrix(rows, "relevance")
    assert units == ["i1", "i2", "i3", "i4", "i5", "i6", "i7"]  # i8 was skipped
    assert matrix[2] == [2, N, N, N, N, N, 1]
    with pytest.raises(ValueError, match="row 1: rater 'r1' rated item_id 'i1' twice"):
        ag.pairwise_kappa(_rows("r1", {"i1": 0}) * 2, "relevance")
    with pytest.raises(ValueError, match="row 0: missing field 'rater'"):
        ag.pairwise_kappa([{"item_id": "x", "relevance": 1}], "relevance")


def test_distortion_kappa():
    labels = [
        {"question_id": "q1", "rater": "a", "distortions": ["labeling"]},
        {"question_id": "q2", "rater": "a", "distortions": []},
        {"question_id": "q3", "rater": "a", "distortions": ["labeling", "mind_reading"]},
        {"question_id": "q1", "rater": "b", "distortions": ["labeling"]},
        {"question_id": "q2", "rater": "b", "distortions": ["mind_reading"]},
        {"question_id": "q3", "rater": "b", "distortions": ["labeling"]},
    ]
    res = ag.distortion_kappa(labels, ["labeling", "mind_reading", "catastrophizing"])
    assert res["labeling"]["kappa"] == 1.0
    # mind_reading: a = 0 0 1, b = 0 1 0 -> p_o = 1/3, p_e = (2/3)^2 + (1/3)^2 = 5/9 -> (1/3 - 5/9) / (4/9) = -0.5
    assert res["mind_reading"]["kappa"] == pytest.approx(-0.5)
    assert res["catastrophizing"] == {"kappa": None, "n_pairs": 0}
