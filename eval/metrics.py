"""Text metrics: the one module every caller uses (CLI, UI, training checks).

BLEU and chrF are sacrebleu's (BLEU with tokenize="zh", the signature reported with each score); the CBT
structure score is the segmenter's. Model-based metrics (BERTScore, BLEURT) arrive with the evaluation issue.

>>> round(bleu(["我能理解你的难过"], ["我能理解你的难过"])["score"], 1)
100.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} predictions but {len(refs)} references")
    if not hyps:
        raise ValueError("nothing to score")


def bleu(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU (0-100) on sacrebleu's Chinese tokenization."""
    from sacrebleu.metrics import BLEU

    _check(hyps, refs)
    metric = BLEU(tokenize="zh")
    result = metric.corpus_score(list(hyps), [list(refs)])
    return {"score": result.score, "signature": str(metric.get_signature())}


def chrf(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, Any]:
    """Corpus chrF (0-100): character n-gram F-score, tokenization-free."""
    from sacrebleu.metrics import CHRF

    _check(hyps, refs)
    metric = CHRF()
    result = metric.corpus_score(list(hyps), [list(refs)])
    return {"score": result.score, "signature": str(metric.get_signature())}


def structure(hyps: Sequence[str]) -> dict[str, Any]:
    """Mean CBT structure score (segmenter) and the share of answers with all five parts."""
    from cbt.sections import SECTION_IDS, segment

    segs = [segment(h) for h in hyps]
    return {
        "score": sum(s.structure_score for s in segs) / max(len(segs), 1),
        "all_five": sum(len(s.sections_present) == len(SECTION_IDS) for s in segs) / max(len(segs), 1),
    }
