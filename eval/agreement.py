"""Inter-rater agreement: Krippendorff's alpha, Cohen's kappa, weighted kappa; the project's one implementation.

annotation/ (the admin view) and eval/tables.py (Table 5) both call these. Undefined statistics (no
pairable values, no variation) are None, never NaN, so results stay valid JSON.

>>> krippendorff_alpha([[1, 2, 3, 3], [1, 2, 3, 3]], level="nominal")
1.0
>>> cohen_kappa([1, 1, 0, 0], [1, 1, 0, 0])
1.0
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _labels(values: Iterable[Hashable], labels: Sequence[Hashable] | None) -> list:
    seen = list(dict.fromkeys(values))
    if labels is None:
        try:
            return sorted(seen)
        except TypeError:
            return seen
    unknown = [v for v in seen if v not in labels]
    if unknown:
        raise ValueError(f"values {unknown!r} are not among labels {list(labels)!r}")
    return list(labels)


def _delta2(values: list, n_c: np.ndarray, level: str) -> np.ndarray:
    """Squared difference function of Krippendorff (2011) for the value set, as a matrix."""
    k = len(values)
    if level == "nominal":
        return 1.0 - np.eye(k)
    v = np.asarray(values, dtype=float)
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    if level == "ratio":
        s = v[:, None] + v[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(s != 0, ((v[:, None] - v[None, :]) / np.where(s != 0, s, 1)) ** 2, 0.0)
    cum = np.concatenate([[0.0], np.cumsum(n_c)])  # ordinal: ranks from the marginal frequencies
    lo, hi = np.minimum.outer(np.arange(k), np.arange(k)), np.maximum.outer(np.arange(k), np.arange(k))
    return (cum[hi + 1] - cum[lo] - (n_c[:, None] + n_c[None, :]) / 2) ** 2


def coincidences(data: Sequence[Sequence[Any]]) -> tuple[list, np.ndarray]:
    """(sorted values, coincidence matrix o[c, k]) from a raters x units matrix; units with < 2 values drop out.

    >>> vals, o = coincidences([[1, 1], [1, 2]])
    >>> vals, o.tolist()
    ([1, 2], [[2.0, 1.0], [1.0, 0.0]])
    """
    if not data:
        raise ValueError("agreement needs at least one rater row")
    width = len(data[0])
    for r, row in enumerate(data):
        if len(row) != width:
            raise ValueError(f"rater row {r} has {len(row)} units, row 0 has {width}")
    values = _labels((v for row in data for v in row if v is not None), None)
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in range(width):
        col = [index[row[u]] for row in data if row[u] is not None]
        m = len(col)
        if m < 2:
            continue
        for a, b in itertools.permutations(col, 2):
            o[a, b] += 1.0 / (m - 1)
    return values, o


def krippendorff_alpha(data: Sequence[Sequence[Any]], level: str = "ordinal") -> float | None:
    """Krippendorff's alpha for raters x units `data` (None = missing) at a level of measurement.

    alpha = 1 - (n - 1) * sum o_ck d2_ck / sum n_c n_k d2_ck over the coincidence matrix (Krippendorff 2011,
    "Computing Krippendorff's Alpha-Reliability"). None when no unit has two values or all values agree in
    kind (no expected disagreement). nominal accepts any hashable values; the others need numbers.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    values, o = coincidences(data)
    if level != "nominal" and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{level} alpha needs numeric values, got {values!r}")
    n_c = o.sum(axis=1)
    n = float(n_c.sum())
    if n <= 1:
        return None
    d2 = _delta2(values, n_c, level)
    expected = float((np.outer(n_c, n_c) * d2).sum())
    if expected == 0:
        return None
    return 1.0 - (n - 1) * float((o * d2).sum()) / expected


def _table(a: Sequence[Any], b: Sequence[Any], labels: Sequence[Hashable] | None) -> tuple[list, np.ndarray]:
    """(labels, contingency counts) over the positions where both raters gave a value."""
    if len(a) != len(b):
        raise ValueError(f"rater a has {len(a)} ratings, rater b {len(b)}")
    both = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    labs = _labels([v for pair in both for v in pair], labels)
    index = {v: i for i, v in enumerate(labs)}
    table = np.zeros((len(labs), len(labs)))
    for x, y in both:
        table[index[x], index[y]] += 1
    return labs, table


def _kappa(table: np.ndarray, w: np.ndarray) -> float | None:
    """1 - sum(w * observed) / sum(w * expected), with disagreement weights w; None if undefined."""
    n = table.sum()
    if n == 0:
        return None
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    denom = float((w * expected).sum())
    if denom == 0:
        return None
    return 1.0 - float((w * table).sum()) / denom


def cohen_kappa(a: Sequence[Any], b: Sequence[Any], labels: Sequence[Hashable] | None = None) -> float | None:
    """Cohen's (1960) kappa of two raters over the same items (pairs with a None dropped); None if p_e = 1.

    >>> round(cohen_kappa(["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15,
    ...                   ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15), 4)
    0.4
    """
    labs, table = _table(a, b, labels)
    return _kappa(table, 1.0 - np.eye(len(labs)))


def weighted_kappa(
    a: Sequence[Any], b: Sequence[Any], weights: str = "linear", labels: Sequence[Hashable] | None = None
) -> float | None:
    """Weighted kappa on an ordinal scale: labels (default: the sorted values seen) give the order, and the
    disagreement weight of categories i, j is |i-j|/(k-1) (linear) or (i-j)^2/(k-1)^2 (quadratic).

    >>> weighted_kappa([0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2], "quadratic")
    0.75
    """
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be 'linear' or 'quadratic', got {weights!r}")
    labs, table = _table(a, b, labels)
    k = len(labs)
    if k < 2:
        return None
    dist = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / (k - 1)
    return _kappa(table, dist if weights == "linear" else dist**2)


def by_rater(rows: Sequence[dict], field: str, unit: str = "item_id") -> dict[str, dict[str, Any]]:
    """{rater: {unit: value}} from annotation rows; skipped rows and missing values are left out.

    A rater who rated the same unit twice is an error (the store keeps one row per rater and item).
    """
    out: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        for key in ("rater", unit):
            if key not in row:
                raise ValueError(f"row {i}: missing field {key!r}")
        if row.get("skipped") or row.get(field) is None:
            continue
        seen = out.setdefault(str(row["rater"]), {})
        if row[unit] in seen:
            raise ValueError(f"row {i}: rater {row['rater']!r} rated {unit} {row[unit]!r} twice")
        seen[row[unit]] = row[field]
    return out


def rating_matrix(rows: Sequence[dict], field: str, unit: str = "item_id") -> tuple[list, list, list[list]]:
    """(raters, units, raters x units matrix with None for missing) for krippendorff_alpha."""
    table = by_rater(rows, field, unit)
    raters = sorted(table)
    units = sorted({u for r in table.values() for u in r}, key=str)
    return raters, units, [[table[r].get(u) for u in units] for r in raters]


def pairwise_kappa(
    ratings_rows: Sequence[dict], metric: str, weights: str | None = "quadratic",
    labels: Sequence[Hashable] | None = None, unit: str = "item_id",
) -> dict[str, Any]:  # fmt: skip
    """Mean (weighted) kappa over rater pairs, each pair on the items both rated (at least 2).

    weights None = Cohen's kappa. labels default to the sorted values of `metric` over all rows, so every
    pair uses the same scale. Returns {"kappa": mean over pairs where it is defined, or None, "n_pairs":
    how many were defined, "pairs": [{"raters": [a, b], "n": shared items, "kappa": value or None}]}.
    """
    table = by_rater(ratings_rows, metric, unit)
    scale = _labels((v for r in table.values() for v in r.values()), labels)
    pairs = []
    for ra, rb in itertools.combinations(sorted(table), 2):
        shared = sorted(table[ra].keys() & table[rb].keys(), key=str)
        if len(shared) < 2:
            continue
        xa, xb = [table[ra][u] for u in shared], [table[rb][u] for u in shared]
        k = cohen_kappa(xa, xb, scale) if weights is None else weighted_kappa(xa, xb, weights, scale)
        pairs.append({"raters": [ra, rb], "n": len(shared), "kappa": k})
    defined = [p["kappa"] for p in pairs if p["kappa"] is not None]
    return {"kappa": sum(defined) / len(defined) if defined else None, "n_pairs": len(defined), "pairs": pairs}


def distortion_kappa(label_rows: Sequence[dict], types: Sequence[str], unit: str = "question_id") -> dict[str, Any]:
    """Per distortion type: mean pairwise Cohen's kappa of 'chose this type' (yes/no) between labellers."""
    out = {}
    for t in types:
        rows = [{**r, "_has": int(t in (r.get("distortions") or []))} for r in label_rows]
        res = pairwise_kappa(rows, "_has", weights=None, labels=[0, 1], unit=unit)
        out[t] = {"kappa": res["kappa"], "n_pairs": res["n_pairs"]}
    return out
