"""Bootstrap helpers shared by the metrics (Table 4) and the human-evaluation tables (Tables 3 and 5).

Every resampling here is over units (answer pairs, or rated items) with replacement, seeded with numpy's
PCG64 generator, so the same data and seed always give the same interval. Resamples are represented as a
weight matrix W (n_boot x n_units, W[b, i] = how often unit i was drawn in resample b): any statistic that
is a ratio of sums (a corpus BLEU's sufficient statistics, a mean, a mean over clustered ratings) is then
one matrix product per block of resamples.

>>> percentile_ci([1.0, 2.0, 3.0, 4.0, 5.0])
[1.1, 4.9]
>>> r = bootstrap_ratio([1, 2, 3, 4], [1, 1, 1, 1], n_boot=200, seed=0)
>>> r["score"], r["ci95"][0] < 2.5 < r["ci95"][1]
(2.5, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

BLOCK = 128  # resamples per weight block: bounds memory (BLOCK x n ints) whatever n_boot is


def weight_blocks(n: int, n_boot: int, seed: int = 0, block: int = BLOCK) -> Iterator[np.ndarray]:
    """Yield (k, n) int matrices of draw counts, n_boot rows in all; the same (n, n_boot, seed) gives the same rows.

    >>> w = np.vstack(list(weight_blocks(5, 3, seed=1)))
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 5), [5, 5, 5])
    """
    if n <= 0:
        raise ValueError("bootstrap needs at least one unit")
    if n_boot <= 0:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        k = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        flat = (np.arange(k)[:, None] * n + idx).ravel()
        yield np.bincount(flat, minlength=k * n).reshape(k, n)
        done += k


def bootstrap_samples(
    n: int, statistic: Callable[[np.ndarray], np.ndarray], n_boot: int = 1000, seed: int = 0
) -> np.ndarray:
    """statistic(W) for every weight block, concatenated: one bootstrap replicate per resample."""
    return np.concatenate([np.asarray(statistic(w), dtype=float) for w in weight_blocks(n, n_boot, seed)])


def percentile_ci(samples: Sequence[float] | np.ndarray, level: float = 0.95) -> list[float]:
    """Percentile interval [lo, hi] of bootstrap replicates (NaN replicates, e.g. empty resamples, ignored)."""
    arr = np.asarray(samples, dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return [float("nan"), float("nan")]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(arr, [alpha, 1 - alpha])
    return [float(lo), float(hi)]


def ratio_statistic(num: Sequence[float], den: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """W -> (W @ num) / (W @ den): a mean (den = 1), a mean over defined items (den = 0 where undefined), or
    a mean over clustered observations (num = sum of a cluster's values, den = its count)."""
    nv = np.asarray(num, dtype=float)
    dv = np.asarray(den, dtype=float)

    def stat(w: np.ndarray) -> np.ndarray:
        d = w @ dv
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, (w @ nv) / np.where(d > 0, d, 1), np.nan)

    return stat


def bootstrap_ratio(
    num: Sequence[float], den: Sequence[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """sum(num) / sum(den) with a percentile bootstrap CI over units; see ratio_statistic."""
    if len(num) != len(den):
        raise ValueError(f"{len(num)} numerators but {len(den)} denominators")
    total = float(np.sum(den))
    score = float(np.sum(num)) / total if total > 0 else float("nan")
    samples = bootstrap_samples(len(num), ratio_statistic(num, den), n_boot, seed)
    return {"score": score, "ci95": percentile_ci(samples, level)}


def mean_of_defined(values: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """(num, den) for ratio_statistic from per-item values where None means 'not defined for this item'.

    >>> mean_of_defined([0.5, None, 1.0])
    ([0.5, 0.0, 1.0], [1.0, 0.0, 1.0])
    """
    num = [0.0 if v is None else float(v) for v in values]
    den = [0.0 if v is None else 1.0 for v in values]
    return num, den
