"""Text metrics: the one module every caller uses (CLI, UI, training checks), with bootstrap CIs.

BLEU (tokenize="zh") and chrF are sacrebleu's, computed from sufficient statistics that eval/ngram.py counts
for the whole corpus at once; METEOR is nltk's on jieba tokens with no synonym source; the CBT structure
score is the segmenter's; distortion coverage uses the distortion extractor. Model-based metrics (BERTScore,
BLEURT) live in eval/model_metrics.py and need a local checkpoint: without one they report "skipped".
A `Corpus` (eval/corpus.py) tokenises each text once and shares the result across metrics; large corpora
spread the jieba / METEOR / segmenter work over a process pool while the n-gram statistics are counted.

>>> round(bleu(["我能理解你的难过"], ["我能理解你的难过"])["score"], 1)
100.0
>>> chrf(["我很难过"], ["我很难过"])["per_item"]
[100.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from eval import ngram
from eval.corpus import Corpus, jieba_tokens
from eval.stats import bootstrap_samples, mean_of_defined, percentile_ci, ratio_statistic, weight_blocks

TEXT_METRICS = ("bleu", "chrf", "meteor", "structure", "distortion_coverage")
MODEL_METRICS = ("bertscore", "bleurt")
ALL_METRICS = TEXT_METRICS + MODEL_METRICS

METEOR_NOTE = (
    "nltk METEOR (alpha 0.9, beta 3, gamma 0.5) on jieba tokens (jieba default dictionary, HMM on), "
    "whitespace tokens dropped, exact and Porter-stem matches only: the synonym source is EMPTY "
    "(WordNet is English-only and cannot be downloaded offline); corpus score = mean sentence score x 100"
)
COVERAGE_NOTE = (
    "per item: |distortions the prediction names AND the reference names| / |distortions the reference "
    "names| (cbt.distortions.extract_distortions); undefined (null) where the reference names none; "
    "score = mean over defined items, micro = summed overlaps / summed reference distortions"
)
Statistic = Callable[[np.ndarray], np.ndarray]
__all__ = [
    "ALL_METRICS", "MODEL_METRICS", "TEXT_METRICS", "Corpus", "bleu", "chrf", "distortion_coverage", "evaluate",
    "jieba_tokens", "meteor", "paired_bootstrap", "structure",
]  # fmt: skip


# ---------------------------------------------------------------- metrics: (result, bootstrap statistic)


def _signature(metric: Any) -> str:
    """sacrebleu's reproducibility signature for one reference per item."""
    metric.num_refs = 1
    return str(metric.get_signature())


def _bleu(c: Corpus) -> tuple[dict, Statistic]:
    from sacrebleu.metrics import BLEU

    s = c.bleu_stats()
    result = {
        "score": ngram.bleu_from_stats(s.sum(axis=0)),
        "per_item": [ngram.bleu_from_stats(row, effective_order=True) for row in s],
        "signature": _signature(BLEU(tokenize="zh")),
        "sentence_signature": _signature(BLEU(tokenize="zh", effective_order=True)),
    }
    return result, lambda w: np.array([ngram.bleu_from_stats(row) for row in w @ s])


def _chrf(c: Corpus) -> tuple[dict, Statistic]:
    from sacrebleu.metrics import CHRF

    s = c.chrf_stats()
    result = {
        "score": ngram.chrf_from_stats(s.sum(axis=0)),
        "per_item": [ngram.chrf_from_stats(row) for row in s],
        "signature": _signature(CHRF()),
    }
    return result, lambda w: np.array([ngram.chrf_from_stats(row) for row in w @ s])


def _mean_result(values: Sequence[float | None], **extra: Any) -> tuple[dict, Statistic]:
    num, den = mean_of_defined(values)
    total = sum(den)
    score = sum(num) / total if total else None  # None, not NaN: results stay valid JSON
    return {"score": score, "per_item": list(values), **extra}, ratio_statistic(num, den)


def _meteor(c: Corpus) -> tuple[dict, Statistic]:
    return _mean_result(c.feature("meteor"), note=METEOR_NOTE)


def _structure(c: Corpus) -> tuple[dict, Statistic]:
    feats = c.feature("structure")
    all_five = sum(f[1] for f in feats) / len(feats)
    return _mean_result([f[0] for f in feats], all_five=all_five, note="cbt.sections structure score, 0-1")


def _coverage(c: Corpus) -> tuple[dict, Statistic]:
    per: list[float | None] = []
    hit = total = 0
    for named, wanted in c.feature("distortions"):
        overlap = len(set(named) & set(wanted))
        per.append(overlap / len(wanted) if wanted else None)
        hit, total = hit + overlap, total + len(wanted)
    micro = hit / total if total else None
    n_scored = sum(v is not None for v in per)
    return _mean_result(per, micro=micro, n_scored=n_scored, note=COVERAGE_NOTE)


_TEXT = {"bleu": _bleu, "chrf": _chrf, "meteor": _meteor, "structure": _structure, "distortion_coverage": _coverage}


def bleu(hyps: Sequence[str], refs: Sequence[str], corpus: Corpus | None = None) -> dict[str, Any]:
    """Corpus BLEU (0-100, sacrebleu, tokenize="zh", exp smoothing); per item: sentence BLEU (effective order)."""
    return _TEXT["bleu"](corpus if corpus is not None else Corpus(hyps, refs))[0]


def chrf(hyps: Sequence[str], refs: Sequence[str], corpus: Corpus | None = None) -> dict[str, Any]:
    """Corpus chrF (0-100, sacrebleu defaults: char 6-grams, beta 2, whitespace ignored); per item: sentence chrF."""
    return _TEXT["chrf"](corpus if corpus is not None else Corpus(hyps, refs))[0]


def meteor(hyps: Sequence[str], refs: Sequence[str], corpus: Corpus | None = None) -> dict[str, Any]:
    """Mean sentence METEOR x 100 on jieba tokens, with an empty synonym source (see METEOR_NOTE).

    >>> round(meteor(["我 很 难过"], ["我 很 难过"])["score"], 2)  # 100 * (1 - 0.5 * (1/3) ** 3)
    98.15
    """
    return _TEXT["meteor"](corpus if corpus is not None else Corpus(hyps, refs))[0]


def structure(hyps: Sequence[str], corpus: Corpus | None = None) -> dict[str, Any]:
    """Mean CBT structure score (0-1, segmenter) and the share of answers with all five parts ("all_five")."""
    return _TEXT["structure"](corpus if corpus is not None else Corpus(hyps, list(hyps)))[0]


def distortion_coverage(hyps: Sequence[str], refs: Sequence[str], corpus: Corpus | None = None) -> dict[str, Any]:
    """How well the distortions a prediction names cover those its reference names (0-1).

    For item i let R_i be the distortion ids the reference names and P_i those the prediction names
    (cbt.distortions.extract_distortions, negated mentions excluded). coverage_i = |P_i & R_i| / |R_i|,
    undefined (None) when R_i is empty. score = mean of the defined coverage_i; "micro" = sum |P_i & R_i| /
    sum |R_i|; "n_scored" = number of defined items. Naming extra distortions is not penalised here.

    >>> r = distortion_coverage(["这是以偏概全。", "你好"], ["有以偏概全，也有读心术。", "你好"])
    >>> r["per_item"], r["score"], r["n_scored"]
    ([0.5, None], 0.5, 1)
    """
    return _TEXT["distortion_coverage"](corpus if corpus is not None else Corpus(hyps, refs))[0]


def _model_metric(name: str, c: Corpus, bertscore_model: str | None, bleurt_checkpoint: str | None):
    from eval import model_metrics

    if name == "bertscore":
        res = model_metrics.bertscore(c.hyps, c.refs, model_path=bertscore_model)
    else:
        res = model_metrics.bleurt(c.hyps, c.refs, checkpoint=bleurt_checkpoint)
    if "skipped" in res:
        return res, None
    num, den = mean_of_defined(res["per_item"])
    return res, ratio_statistic(num, den)


def _compute(name: str, c: Corpus, models: dict) -> tuple[dict, Statistic | None]:
    if name in _TEXT:
        return _TEXT[name](c)
    if name in MODEL_METRICS:
        return _model_metric(name, c, models.get("bertscore_model"), models.get("bleurt_checkpoint"))
    raise ValueError(f"unknown metric {name!r}; choose from {', '.join(ALL_METRICS)}")


def _plain(x: Any) -> Any:
    """numpy scalars/arrays -> Python, so results are JSON-serialisable."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def evaluate(
    hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] | None = None, *,
    bertscore_model: str | None = None, bleurt_checkpoint: str | None = None,
    n_boot: int = 1000, seed: int = 0, progress: bool = False, workers: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """All requested metrics (default: every one) with percentile bootstrap 95% CIs over items.

    Each resample draws n pairs with replacement (the same resamples for every metric, from `seed`); BLEU
    and chrF are recomputed as corpus scores from the resampled sufficient statistics, the others as the
    mean of the resampled per-item values. n_boot=0 skips the intervals (ci95 None).
    """
    names = list(metrics) if metrics is not None else list(ALL_METRICS)
    for name in names:
        if name not in ALL_METRICS:
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(ALL_METRICS)}")
    corpus = Corpus(hyps, refs, workers=workers)
    corpus.prepare(names)
    models = {"bertscore_model": bertscore_model, "bleurt_checkpoint": bleurt_checkpoint}
    out: dict[str, Any] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(names), desc="metrics", unit="metric")
    for name in names:
        res, stat = _compute(name, corpus, models)
        if stat is not None:
            ci = percentile_ci(bootstrap_samples(len(corpus), stat, n_boot, seed)) if n_boot > 0 else None
            res["ci95"] = ci if ci is None or not any(np.isnan(ci)) else None  # undefined in every resample
            res["n_boot"] = n_boot
        out[name] = _plain(res)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {"n": len(corpus), "seed": seed, "metrics": out}


def paired_bootstrap(
    hyps_a: Sequence[str], hyps_b: Sequence[str], refs: Sequence[str], metric: str = "bleu",
    n_boot: int = 1000, seed: int = 0, **models: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Koehn (2004) paired bootstrap: is system A's `metric` different from system B's on the same references?

    Both systems are scored on the same resamples of items. delta = a - b (observed); ci95 = percentile
    interval of the resampled deltas. p_value (two-sided, add-one): the resampled deltas are shifted to mean
    zero (the null hypothesis of no difference) and p = (1 + #{|shifted delta| >= |delta|}) / (n_boot + 1).
    """
    if len(hyps_a) != len(hyps_b):
        raise ValueError(f"system A has {len(hyps_a)} predictions, system B {len(hyps_b)}")
    if n_boot <= 0:
        raise ValueError("paired_bootstrap needs n_boot > 0")
    results, stats = [], []
    for hyps in (hyps_a, hyps_b):
        corpus = Corpus(hyps, refs)
        corpus.prepare([metric])
        res, stat = _compute(metric, corpus, models)
        if stat is None:
            raise ValueError(f"{metric}: {res.get('skipped', 'cannot be bootstrapped')}")
        results.append(res)
        stats.append(stat)
    if results[0]["score"] is None or results[1]["score"] is None:
        raise ValueError(f"{metric} is undefined on these items (no reference qualifies)")
    deltas = np.concatenate([stats[0](w) - stats[1](w) for w in weight_blocks(len(refs), n_boot, seed)])
    delta = results[0]["score"] - results[1]["score"]
    shifted = deltas - np.nanmean(deltas)
    p = (1 + int(np.sum(np.abs(shifted) >= abs(delta) - 1e-12))) / (n_boot + 1)
    return _plain({
        "metric": metric, "a": results[0]["score"], "b": results[1]["score"], "delta": delta,
        "ci95": percentile_ci(deltas), "p_value": p, "n": len(refs), "n_boot": n_boot, "seed": seed,
    })  # fmt: skip
