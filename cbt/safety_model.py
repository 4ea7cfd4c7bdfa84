"""The crisis detector's learned second opinion: logistic regression over character and word n-grams.

The lexicon (cbt/safety.py) is precise but misses phrasings it has never met; blind test sets showed it.
This model adds recall where the lexicon is silent. It scores every sentence of a message, and every pair
of neighbouring sentences, and keeps the highest score, so one risky line buried in a long post is enough.
Features: 2-3 character n-grams of Chinese (single characters such as 想 or 活 misled it); English words
and word pairs (sub-word pieces over-fired on everyday English); and word classes from safety.yaml's
`concepts` with their order in a clause (想 ... 消失 -> WANT>DEATH), so an unseen phrasing still shares
features with known ones. Training: SGD logistic regression, the mean of three shuffles, positives weighted
3x; data: the tuned gold sets, the hand-written cbt/resources/safety_train/*.jsonl (incl. 640 templated
everyday English sentences) and rule-silent sentences of the sample set's posts and answers as negatives.
A second model of the same form separates imminent risk (plan, means at hand, goodbye) from elevated.
Weights live in cbt/resources/safety_model.json.

    python -m cbt safety-train            # rebuild from tests/gold/crisis_{dev,heldout,heldout2}.jsonl,
                                          # cbt/resources/safety_train/*.jsonl and the sample set's posts
    python -m cbt safety-train --cv       # leave-one-file-out: how the model does on data it never saw
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cbt.taxonomy import RESOURCES

MODEL_PATH = RESOURCES / "safety_model.json"
TRAIN_DIR = RESOURCES / "safety_train"
GOLD_DIR = Path(__file__).resolve().parents[1] / "tests" / "gold"
DEFAULT_THRESHOLD = 0.4  # recall first: 0.5 gave 1 fewer false alarm in 92 on heldout3
CORROBORATE_THRESHOLD = 0.2  # the lower bar a lexicon goodbye cue needs from the model
_SENTENCE = re.compile(r"[^。！？!?\n；;.…]+[。！？!?\n；;.…]*")
_NON_TEXT = re.compile(r"[^\u3400-\u9fffa-z0-9]")
_WORD = re.compile(r"[a-z']+")
_CLAUSE = re.compile(r"[，,、;；:：。！？!?.\n]")


def features(normalized: str) -> set[str]:
    """n-gram and word-class features of normalised text (see cbt.safety.normalize).

    >>> sorted(features("想死了"))
    ['c想死', 'c想死了', 'c死了', 'kDEATH', 'kWANT', 'oWANT>DEATH', 'sDEATH+WANT']
    """
    out: set[str] = set()
    chars = _NON_TEXT.sub(" ", normalized)
    for n in (2, 3):
        for i in range(len(chars) - n + 1):
            gram = chars[i : i + n]
            if " " in gram or gram.isascii():
                continue
            out.add("c" + gram)
    words = _WORD.findall(normalized)
    for i, word in enumerate(words):
        out.add("w" + word)
        if i:
            out.add(f"b{words[i - 1]}_{word}")
    return out | concept_features(normalized)


@lru_cache(maxsize=1)
def _concepts() -> list[tuple[str, re.Pattern[str]]]:
    from cbt.taxonomy import load_resource

    return [(name, re.compile("|".join(pats))) for name, pats in load_resource("safety.yaml")["concepts"].items()]


def concept_features(normalized: str) -> set[str]:
    """Word classes of safety.yaml's `concepts`: which occur, which pairs co-occur, and their order in a clause.

    >>> sorted(f for f in concept_features("我想消失") if f.startswith("o"))
    ['oWANT>DEATH']
    """
    hits = sorted((m.start(), name) for name, pat in _concepts() for m in pat.finditer(normalized))
    names = sorted({name for _, name in hits})
    out = {"k" + n for n in names}
    out.update(f"s{a}+{b}" for i, a in enumerate(names) for b in names[i + 1 :])
    breaks = [m.start() for m in _CLAUSE.finditer(normalized)]
    for i, (pos_a, a) in enumerate(hits):
        clause = sum(b < pos_a for b in breaks)
        for pos_b, b in hits[i + 1 :]:
            if a != b and sum(x < pos_b for x in breaks) == clause:
                out.add(f"o{a}>{b}")
    return out


def sentences(normalized: str) -> list[str]:
    """Sentences of a message (split on Chinese and English end marks and line breaks)."""
    return [m.group(0) for m in _SENTENCE.finditer(normalized) if m.group(0).strip()] or [normalized]


def spans(normalized: str) -> list[str]:
    """What the model scores: each sentence and each pair of neighbouring sentences."""
    sents = sentences(normalized)
    return sents + [a + b for a, b in itertools.pairwise(sents)]


def span_features(normalized: str) -> list[tuple[str, set[str]]]:
    """`spans` with their features, each sentence featurised once: a pair's features are its two sentences'
    plus what crosses the break (the English word pair, the word-class pairs); n-grams never cross it,
    since the break is punctuation. Equal to `features(a + b)`, at about half the cost on long posts."""
    sents = sentences(normalized)
    feats = [features(s) for s in sents]
    out = list(zip(sents, feats, strict=True))
    for i in range(len(sents) - 1):
        a, b = sents[i], sents[i + 1]
        bridge = set()
        last, first = _WORD.findall(a)[-1:], _WORD.findall(b)[:1]
        if last and first:  # a sentence ends in punctuation, so the two words never merge
            bridge.add(f"b{last[0]}_{first[0]}")
        names = sorted({f[1:] for f in feats[i] | feats[i + 1] if f[0] == "k"})
        bridge.update(f"s{x}+{y}" for j, x in enumerate(names) for y in names[j + 1 :])
        out.append((a + b, feats[i] | feats[i + 1] | bridge))
    return out


@dataclass
class LogReg:
    weights: dict[str, float]
    bias: float
    threshold: float = DEFAULT_THRESHOLD

    def prob(self, normalized: str) -> float:
        return self.prob_of(features(normalized))

    def prob_of(self, feats: set[str]) -> float:
        z = self.bias + sum(self.weights.get(f, 0.0) for f in feats)
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def to_json(self) -> dict:
        kept = {f: round(w, 3) for f, w in sorted(self.weights.items()) if abs(w) >= 0.05}
        return {"bias": round(self.bias, 4), "threshold": self.threshold, "weights": kept}

    @classmethod
    def from_json(cls, raw: dict) -> LogReg:
        return cls(raw["weights"], raw["bias"], raw.get("threshold", DEFAULT_THRESHOLD))


class CrisisModel:
    """Risk model (any risk vs none) and imminence model (imminent vs the rest), both over `spans`."""

    def __init__(self, risk: LogReg, imminent: LogReg | None = None) -> None:
        self.risk, self.imminent = risk, imminent

    corroborate_threshold = CORROBORATE_THRESHOLD

    @property
    def threshold(self) -> float:
        return self.risk.threshold

    def score(self, normalized: str) -> tuple[float, str]:
        """Highest span score and that span: one risky line in a long post is enough."""
        return max(((self.risk.prob_of(f), s.strip()) for s, f in span_features(normalized)), key=lambda x: x[0])

    def is_imminent(self, normalized: str) -> bool:
        if self.imminent is None:
            return False
        best = max(self.imminent.prob_of(f) for _, f in span_features(normalized))
        return best >= self.imminent.threshold

    def to_json(self) -> dict:
        return {"risk": self.risk.to_json(), "imminent": self.imminent.to_json() if self.imminent else None}


@lru_cache(maxsize=1)
def load_model(path: Path = MODEL_PATH) -> CrisisModel | None:
    """The shipped model, or None when the file is missing (the lexicon then works alone)."""
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    imminent = LogReg.from_json(raw["imminent"]) if raw.get("imminent") else None
    return CrisisModel(LogReg.from_json(raw["risk"]), imminent)


def train(
    texts: Sequence[str],
    labels: Sequence[bool],
    epochs: int = 30,
    lr: float = 0.3,
    l2: float = 1e-3,
    pos_weight: float = 1.0,
    seed: int = 0,
) -> LogReg:
    """Plain SGD logistic regression on normalised texts; deterministic for a given seed."""
    data = [(features(t), 1.0 if y else 0.0) for t, y in zip(texts, labels, strict=True)]
    w: dict[str, float] = {}
    b = 0.0
    order = list(range(len(data)))
    for epoch in range(epochs):
        random.Random(seed + epoch).shuffle(order)
        step = lr / (1.0 + epoch / 10)
        for i in order:
            feats, y = data[i]
            z = b + sum(w.get(f, 0.0) for f in feats)
            g = 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0))) - y
            if y:
                g *= pos_weight
            for f in feats:
                cur = w.get(f, 0.0)
                w[f] = cur - step * (g + l2 * cur)
            b -= step * g
    return LogReg(w, b)


def averaged(texts: Sequence[str], labels: Sequence[bool], seeds: Sequence[int] = (0, 1, 2)) -> LogReg:
    """The mean of models trained on different shuffles: one linear model, steadier than any single run."""
    runs = [train(texts, labels, l2=0.01, pos_weight=3.0, seed=100 * s) for s in seeds]
    weights: dict[str, float] = {}
    for run in runs:
        for f, w in run.weights.items():
            weights[f] = weights.get(f, 0.0) + w / len(runs)
    return LogReg(weights, sum(r.bias for r in runs) / len(runs))


def default_files() -> list[Path]:
    """The gold sets used for tuning plus the hand-written training messages."""
    gold = [GOLD_DIR / f"crisis_{n}.jsonl" for n in ("dev", "heldout", "heldout2")]
    return gold + sorted(TRAIN_DIR.glob("*.jsonl"))


def load_examples(paths: Sequence[Path | str]) -> list[tuple[str, str, str]]:
    """(source file, normalised text, level) for every row of JSONL files of {text, crisis, level?}."""
    from cbt.io import iter_jsonl
    from cbt.safety import mask_benign, normalize

    out = []
    for path in paths:
        for line, row in iter_jsonl(path):
            if not isinstance(row.get("text"), str) or not isinstance(row.get("crisis"), bool):
                raise ValueError(f"{path}:{line}: each row needs a string 'text' and a boolean 'crisis'")
            level = row.get("level") or ("elevated" if row["crisis"] else "none")
            if level not in ("none", "elevated", "imminent") or (level != "none") != row["crisis"]:
                raise ValueError(f"{path}:{line}: 'level' must be none|elevated|imminent and agree with 'crisis'")
            out.append((str(path), mask_benign(normalize(row["text"])), level))
    return out


def sample_negatives(limit: int, seed: int = 1) -> list[str]:
    """Sentences of the sample set's posts and answers that no lexicon rule flags: ordinary language of help
    seeking and of counselling, the everyday words (想, 活, 如果, 东西 ...) the model must not lean on."""
    from cbt.io import load_sample
    from cbt.safety import mask_benign, normalize, rule_reasons

    texts = [t for r in load_sample() for t in (r.question + "。" + r.description, r.answer)]
    sents = [s for t in texts for s in sentences(mask_benign(normalize(t))) if len(s.strip()) > 3]
    sents = sorted({s for s in sents if not rule_reasons(s)})
    random.Random(seed).shuffle(sents)
    return sents[:limit]


def fit(examples: Sequence[tuple[str, str, str]], negatives: Sequence[str], threshold: float) -> CrisisModel:
    """Both models. Benign messages also teach sentence by sentence, since scoring is per sentence."""
    texts, levels = [], []
    for _, text, level in examples:
        texts.append(text)
        levels.append(level)
        if level == "none" and len(sentences(text)) > 1:
            texts += sentences(text)
            levels += ["none"] * len(sentences(text))
    texts += list(negatives)
    levels += ["none"] * len(negatives)
    risk = averaged(texts, [lv != "none" for lv in levels])
    risk.threshold = threshold
    imminent = averaged(texts, [lv == "imminent" for lv in levels])
    return CrisisModel(risk, imminent)


def cross_validate(examples: Sequence[tuple[str, str, str]], negatives: Sequence[str], threshold: float) -> None:
    """Leave each gold file out in turn; print the model's own recall and false-positive rate on it."""
    for held in sorted({src for src, _, _ in examples if Path(src).parent == GOLD_DIR}):
        model = fit([e for e in examples if e[0] != held], negatives, threshold)
        test = [e for e in examples if e[0] == held]
        flags = [(lv, model.score(t)[0] >= threshold) for _, t, lv in test]
        risk = [f for lv, f in flags if lv != "none"]
        benign = [f for lv, f in flags if lv == "none"]
        print(f"{Path(held).name}: model-only recall {sum(risk) / len(risk):.3f}, FPR {sum(benign) / len(benign):.3f}")


def main(argv: Sequence[str]) -> int:
    import argparse

    from cbt.io import atomic_write_text

    p = argparse.ArgumentParser(prog="python -m cbt safety-train", description=__doc__.splitlines()[0])
    p.add_argument("--train", nargs="+", default=None, help="JSONL files of {text, crisis, level}")
    p.add_argument("--negatives", type=int, default=4000, help="sentences of the sample set's posts as negatives")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--cv", action="store_true", help="leave-one-gold-file-out figures; writes nothing")
    p.add_argument("--out", default=str(MODEL_PATH))
    args = p.parse_args(argv)
    try:
        examples = load_examples(args.train or default_files())
    except (OSError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    negatives = sample_negatives(args.negatives)
    if args.cv:
        cross_validate(examples, negatives, args.threshold)
        return 0
    model = fit(examples, negatives, args.threshold)
    about = {"about": "crisis model; rebuild: python -m cbt safety-train", **model.to_json()}
    atomic_write_text(args.out, json.dumps(about, ensure_ascii=False, indent=0) + "\n")
    n_risk = sum(lv != "none" for _, _, lv in examples)
    print(f"trained on {len(examples)} messages ({n_risk} risk) + {len(negatives)} sentences; wrote {args.out}")
    return 0
