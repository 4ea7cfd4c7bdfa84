"""A corpus of (prediction, reference) pairs, tokenised once and shared by every metric in eval/metrics.py.

BLEU/chrF sufficient statistics come from eval/ngram.py (whole corpus at once, in this process); the
expensive per-pair features (jieba + METEOR, the segmenter's structure score, named distortions) run in a
process pool for large corpora, overlapping the n-gram counting.

>>> c = Corpus(["我很难过"], ["我很难受"])
>>> c.bleu_stats().tolist()
[[4, 4, 3, 2, 1, 0, 4, 3, 2, 1]]
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

import numpy as np

from eval import ngram

PARALLEL_MIN = 300  # pairs: below this a forked process pool costs more than it saves
PARALLEL_MIN_FORKSERVER = 2000  # a forkserver's workers start cold (imports, jieba's dictionary: seconds)
FEATURES = {"meteor": ("meteor",), "structure": ("structure",), "distortion_coverage": ("distortions",)}


def check_pairs(hyps: Sequence[str], refs: Sequence[str]) -> None:
    """Same length, not empty, strings only: metrics would otherwise fail far from the cause."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} predictions but {len(refs)} references")
    if not hyps:
        raise ValueError("nothing to score")
    for name, texts in (("prediction", hyps), ("reference", refs)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{name} {i}: expected a string, got {type(t).__name__}")


# ---------------------------------------------------------------- per-text work (runs in worker processes)


def _init_jieba() -> None:
    import jieba

    if not jieba.dt.initialized:
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()


def jieba_tokens(text: str) -> list[str]:
    """jieba words of `text`, whitespace tokens dropped (jieba keeps spaces as tokens).

    >>> jieba_tokens("我 很 难过")
    ['我', '很', '难过']
    """
    import jieba

    _init_jieba()
    return [t for t in jieba.lcut(text) if not t.isspace()]


@cache
def _stemmer() -> Any:
    """nltk's Porter stemmer with a memo (the same stems; a corpus repeats its words)."""
    from nltk.stem.porter import PorterStemmer

    class _CachedPorter(PorterStemmer):
        @lru_cache(maxsize=1 << 16)  # noqa: B019 - one stemmer per process, never freed anyway
        def stem(self, word: str, to_lowercase: bool = True) -> str:
            return super().stem(word, to_lowercase)

    return _CachedPorter()


class _NoSynonyms:
    """A WordNet stand-in with no synsets: METEOR then matches exact words and stems only."""

    def synsets(self, word: str) -> list:
        return []


def _pair_features(pairs: Sequence[tuple[str, str]], kinds: Sequence[str]) -> list[dict]:
    """The expensive per-pair features: METEOR (jieba once per text), structure, named distortions."""
    out: list[dict] = [{} for _ in pairs]
    if "meteor" in kinds:
        from nltk.translate.meteor_score import single_meteor_score

        wn = _NoSynonyms()
        for f, (h, r) in zip(out, pairs, strict=True):
            score = single_meteor_score(jieba_tokens(r), jieba_tokens(h), stemmer=_stemmer(), wordnet=wn)
            f["meteor"] = 100.0 * score
    if "structure" in kinds:
        from cbt.sections import SECTION_IDS, segment

        for f, (h, _) in zip(out, pairs, strict=True):
            seg = segment(h)
            f["structure"] = (seg.structure_score, len(seg.sections_present) == len(SECTION_IDS))
    if "distortions" in kinds:
        from cbt.distortions import extract_distortions

        for f, (h, r) in zip(out, pairs, strict=True):
            f["distortions"] = (extract_distortions(h), extract_distortions(r))
    return out


def _pool_context(n_pairs: int) -> Any:
    """fork is cheapest, but unsafe once other threads run (the app, a tokenizer): then forkserver, whose cold
    workers pay off only for larger corpora. None = work in-process."""
    import multiprocessing as mp

    if threading.active_count() == 1:
        return mp.get_context("fork") if n_pairs >= PARALLEL_MIN else None
    return mp.get_context("forkserver") if n_pairs >= max(PARALLEL_MIN, PARALLEL_MIN_FORKSERVER) else None


class Corpus:
    """Predictions and references with every tokenisation done once and shared by all metrics."""

    def __init__(self, hyps: Sequence[str], refs: Sequence[str], workers: int | None = None) -> None:
        check_pairs(hyps, refs)
        self.hyps, self.refs = list(hyps), list(refs)
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self._stats: dict[str, np.ndarray] = {}
        self._features: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.hyps)

    def bleu_stats(self) -> np.ndarray:
        if "bleu" not in self._stats:
            self._stats["bleu"] = ngram.bleu_stats(self.hyps, self.refs)
        return self._stats["bleu"]

    def chrf_stats(self) -> np.ndarray:
        if "chrf" not in self._stats:
            self._stats["chrf"] = ngram.chrf_stats(self.hyps, self.refs)
        return self._stats["chrf"]

    def feature(self, kind: str) -> list:
        if kind not in self._features:
            self.prepare([m for m, kinds in FEATURES.items() if kind in kinds])
        return self._features[kind]

    def prepare(self, metrics: Sequence[str]) -> None:
        """Compute what `metrics` need; pool work for features overlaps the n-gram counting here."""
        kinds = sorted({k for m in metrics for k in FEATURES.get(m, ())} - self._features.keys())
        pairs = list(zip(self.hyps, self.refs, strict=True))
        pool = None
        context = _pool_context(len(pairs)) if kinds and self.workers > 1 else None
        if context is not None:
            from concurrent.futures import ProcessPoolExecutor

            if "meteor" in kinds:
                _init_jieba()  # forked workers inherit the loaded dictionary
            pool = ProcessPoolExecutor(self.workers, mp_context=context)
            step = -(-len(pairs) // (self.workers * 4))
            futures = [pool.submit(_pair_features, pairs[i : i + step], kinds) for i in range(0, len(pairs), step)]
        if "bleu" in metrics:
            self.bleu_stats()
        if "chrf" in metrics:
            self.chrf_stats()
        if kinds:
            feats = None
            if pool is not None:
                from concurrent.futures.process import BrokenProcessPool

                try:
                    with pool:
                        feats = [f for fut in futures for f in fut.result()]
                except BrokenProcessPool as exc:  # e.g. a main module that cannot be re-imported
                    logging.getLogger(__name__).warning("process pool failed (%s); computing in-process", exc)
            if feats is None:
                feats = _pair_features(pairs, kinds)
            for k in kinds:
                self._features[k] = [f[k] for f in feats]
