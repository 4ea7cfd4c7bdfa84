"""Model-based metrics (BERTScore, BLEURT) from a LOCAL checkpoint only; never a silent substitute.

No Chinese/multilingual BERT or BLEURT checkpoint can be installed offline here, so without a path each
returns {"skipped": reason}. With a path they compute for real (torch and transformers imported lazily):
- BERTScore (Zhang et al. 2020): greedy matching of token embeddings from one hidden layer of a
  transformers encoder; idf weighting off, no baseline rescaling, special tokens excluded.
- BLEURT-style: a regression checkpoint loadable with AutoModelForSequenceClassification (num_labels=1),
  scoring (reference, candidate) pairs; the score is the raw regression output. The original BLEURT
  checkpoints are TensorFlow; a PyTorch conversion must load through that class to be used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

BERTSCORE_SKIP = (
    "no BERTScore model given: pass a local transformers encoder directory (e.g. a Chinese BERT) as "
    "bertscore_model; none is installable offline and no other model is substituted"
)
BLEURT_SKIP = (
    "no BLEURT checkpoint given: pass a local directory loadable with AutoModelForSequenceClassification "
    "(num_labels=1) as bleurt_checkpoint; none is installable offline and no other model is substituted"
)


def _local_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise ValueError(f"{what}: {p} is not a local model directory (no config.json)")
    return p


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _embed(texts: Sequence[str], tok: Any, model: Any, layer: int, max_length: int, batch_size: int) -> list:
    """Unit-normalised token vectors per text from hidden layer `layer`, special and pad tokens dropped."""
    import torch

    out = []
    for rng in _batches(len(texts), batch_size):
        enc = tok([texts[i] for i in rng], padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt", return_special_tokens_mask=True)  # fmt: skip
        special = enc.pop("special_tokens_mask").bool()
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer]
        keep = enc["attention_mask"].bool() & ~special
        for row, mask in zip(hidden, keep, strict=True):
            out.append(torch.nn.functional.normalize(row[mask].float(), dim=-1))
    return out


def _greedy(h: Any, r: Any) -> tuple[float, float, float]:
    """(precision, recall, F1) of greedy cosine matching between two token-vector sets."""
    if len(h) == 0 or len(r) == 0:
        return 0.0, 0.0, 0.0
    sim = h @ r.T
    p = float(sim.max(dim=1).values.mean())
    rc = float(sim.max(dim=0).values.mean())
    f = 2 * p * rc / (p + rc) if p + rc > 0 else 0.0
    return p, rc, f


def bertscore(
    hyps: Sequence[str], refs: Sequence[str], model_path: str | Path | None = None, *,
    layer: int = -1, max_length: int = 512, batch_size: int = 16,
) -> dict[str, Any]:  # fmt: skip
    """BERTScore F1 (0-1 for non-negative similarities) per pair and its mean; skipped without a model path.

    layer indexes the model's hidden_states tuple (0 = embeddings, -1 = last layer); the original BERTScore
    picks a tuned layer per model (e.g. 8 for bert-base-chinese): pass it when known.
    """
    if model_path is None:
        return {"skipped": BERTSCORE_SKIP}
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} predictions but {len(refs)} references")
    from transformers import AutoModel, AutoTokenizer

    path = _local_dir(model_path, "bertscore_model")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    hv = _embed(list(hyps), tok, model, layer, max_length, batch_size)
    rv = _embed(list(refs), tok, model, layer, max_length, batch_size)
    prf = [_greedy(h, r) for h, r in zip(hv, rv, strict=True)]
    n = max(len(prf), 1)
    return {
        "score": sum(x[2] for x in prf) / n,
        "per_item": [x[2] for x in prf],
        "precision": sum(x[0] for x in prf) / n,
        "recall": sum(x[1] for x in prf) / n,
        "note": f"BERTScore F1: greedy cosine matching, idf off, no rescaling, hidden layer {layer} of {path.name}",
    }


def bleurt(
    hyps: Sequence[str], refs: Sequence[str], checkpoint: str | Path | None = None, *,
    max_length: int = 512, batch_size: int = 16,
) -> dict[str, Any]:  # fmt: skip
    """Mean BLEURT-style regression score of (reference, candidate) pairs; skipped without a checkpoint."""
    if checkpoint is None:
        return {"skipped": BLEURT_SKIP}
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} predictions but {len(refs)} references")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = _local_dir(checkpoint, "bleurt_checkpoint")
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    if model.config.num_labels != 1:
        raise ValueError(
            f"bleurt_checkpoint: {path} has num_labels={model.config.num_labels}, expected 1 (regression)"
        )
    tok = AutoTokenizer.from_pretrained(path)
    scores: list[float] = []
    for rng in _batches(len(hyps), batch_size):
        enc = tok([refs[i] for i in rng], [hyps[i] for i in rng], padding=True, truncation=True,
                  max_length=max_length, return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            scores.extend(float(x) for x in model(**enc).logits[:, 0])
    return {
        "score": sum(scores) / max(len(scores), 1),
        "per_item": scores,
        "note": f"BLEURT-style regression output of {path.name} on (reference, candidate) pairs",
    }
