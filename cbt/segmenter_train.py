"""Train the segmenter's structured perceptron on gold section spans, and measure character accuracy.

    python -m cbt segmenter-train                 # sample set's train split -> segmenter_weights.json
    python -m cbt segmenter-train --epochs 15 --out /tmp/w.json

Averaged perceptron over unit features (cbt.sections.unit_features) with transition features, decoded
with the same Viterbi the segmenter uses, so training and inference cannot drift apart.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cbt.io import iter_json_array, write_json
from cbt.schema import CBTRecord, SectionSpan
from cbt.sections import (
    LABELS,
    NONE,
    WEIGHTS_PATH,
    Unit,
    decode,
    label_units,
    spans_from_units,
    split_units,
    unit_features,
)


@dataclass
class GoldAnswer:
    text: str
    spans: list[SectionSpan]

    def char_labels(self) -> list[str | None]:
        labels: list[str | None] = [None] * len(self.text)
        for s in self.spans:
            labels[s.start : s.end] = [s.section] * (s.end - s.start)
        return labels


def gold_unit_labels(units: Sequence[Unit], char_labels: Sequence[str | None]) -> list[str]:
    """Majority section of each unit's characters (none when unlabelled)."""
    out = []
    for u in units:
        counts: dict[str, int] = defaultdict(int)
        for lab in char_labels[u.start : u.end]:
            counts[lab or NONE] += 1
        out.append(max(counts, key=lambda k: counts[k]))
    return out


def _sequence_features(
    feats: list[list[str]], units: Sequence[Unit], labels: Sequence[str]
) -> dict[tuple[str, str], float]:
    phi: dict[tuple[str, str], float] = defaultdict(float)
    prev = "<s>"
    for i, (f, lab) in enumerate(zip(feats, labels, strict=True)):
        for name in f:
            phi[(name, lab)] += 1.0
        phi[(f"T{int(units[i].para_start or i == 0)}:{prev}", lab)] += 1.0
        prev = lab
    return phi


def train(golds: Sequence[GoldAnswer], epochs: int = 12, seed: int = 0) -> dict[str, dict[str, float]]:
    """Averaged structured perceptron; returns weights as {feature: {label: weight}}.

    Weights are kept as per-label vectors, the form decoding reads, so each update is in place.
    """
    data = []
    for g in golds:
        units = split_units(g.text)
        if units:
            data.append((units, unit_features(g.text, units), gold_unit_labels(units, g.char_labels())))
    n_lab = len(LABELS)
    index = {lab: k for k, lab in enumerate(LABELS)}
    w: dict[str, list[float]] = {}
    acc: dict[str, list[float]] = {}  # sum of c * update, for averaging
    c = 1
    rng = random.Random(seed)

    def update(feats: list[list[str]], units: Sequence[Unit], labels: Sequence[str], sign: float) -> None:
        for (name, lab), v in _sequence_features(feats, units, labels).items():
            if name not in w:
                w[name], acc[name] = [0.0] * n_lab, [0.0] * n_lab
            k = index[lab]
            w[name][k] += sign * v
            acc[name][k] += sign * c * v

    for _ in range(epochs):
        rng.shuffle(data)
        for units, feats, gold in data:
            pred = decode(feats, units, w)
            if pred != gold:
                update(feats, units, gold, 1.0)
                update(feats, units, pred, -1.0)
            c += 1
    out: dict[str, dict[str, float]] = {}
    for name, row in w.items():
        avg = {LABELS[k]: round(row[k] - acc[name][k] / c, 4) for k in range(n_lab)}
        avg = {lab: v for lab, v in avg.items() if abs(v) > 1e-9}
        if avg:
            out[name] = avg
    return out


def _nested(flat: dict[tuple[str, str], float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (name, lab), v in flat.items():
        out[name][lab] = round(v, 4)
    return dict(out)


def char_accuracy(golds: Sequence[GoldAnswer], weights: dict | None = None) -> float:
    """Share of characters whose predicted section equals the gold one (None counts as a label).

    Whitespace is excluded: which side of a paragraph break a newline falls on is not a judgement.
    """
    right = total = 0
    for g in golds:
        units = split_units(g.text)
        pred: list[str | None] = [None] * len(g.text)
        if units:
            for s, e, sec in spans_from_units(g.text, units, label_units(g.text, units, weights)):
                pred[s:e] = [sec] * (e - s)
        for ch, p, t in zip(g.text, pred, g.char_labels(), strict=True):
            if not ch.isspace():
                total += 1
                right += p == t
    return right / total if total else 0.0


def golds_from_records(records: Sequence[CBTRecord]) -> list[GoldAnswer]:
    return [GoldAnswer(r.answer, list(r.sections)) for r in records if r.sections]


def load_offset_gold(gold_path: str | Path, source_dir: str | Path) -> list[GoldAnswer]:
    """Gold spans stored as offsets only (no text), resolved against the real answers they annotate.

    Each line: {"file", "index", "sha1", "spans": [{section, start, end}]}; `file` is a JSON array in
    `source_dir` whose element `index` has the annotated "cbt_answer". The sha1 guards against drift.
    """
    import hashlib

    from cbt.io import DataError, iter_jsonl

    sources: dict[str, list] = {}
    out = []
    for line, row in iter_jsonl(gold_path):
        name = row["file"]
        if name not in sources:
            sources[name] = [v for _, v in iter_json_array(Path(source_dir) / name)]
        text = sources[name][row["index"]]["cbt_answer"]
        if hashlib.sha1(text.encode("utf-8")).hexdigest() != row["sha1"]:
            raise DataError(gold_path, line, f"{name}[{row['index']}] is not the text that was annotated (sha1)")
        out.append(GoldAnswer(text, [SectionSpan(**s) for s in row["spans"]]))
    return out


def main(argv: Sequence[str]) -> int:
    import argparse

    from cbt.io import SAMPLE_PATH, load_cbtqa
    from cbt.split import split_records

    p = argparse.ArgumentParser(prog="python -m cbt segmenter-train", description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(SAMPLE_PATH), help="CBT QA file with gold 'sections'")
    p.add_argument(
        "--offset-gold",
        nargs=2,
        action="append",
        default=[],
        metavar=("GOLD", "SOURCE_DIR"),
        help="also train on offset-only gold spans (e.g. tests/gold/real_sections_train.jsonl with the folder of "
        "the real answers it annotates); repeatable",
    )
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--offset-gold-weight", type=int, default=2, help="how many times each offset-gold answer is seen per epoch"
    )
    p.add_argument("--out", default=str(WEIGHTS_PATH))
    args = p.parse_args(argv)
    train_set, test_set = split_records(load_cbtqa(args.input))
    golds = golds_from_records(train_set)
    for gold_path, source_dir in args.offset_gold:
        golds += load_offset_gold(gold_path, source_dir) * args.offset_gold_weight
    weights = train(golds, epochs=args.epochs)
    write_json(
        Path(args.out),
        {
            "about": "CBT segmenter perceptron weights; rebuild: python -m cbt segmenter-train",
            "labels": list(LABELS),
            "train_records": len(golds),
            "train_sources": [args.input, *(g for g, _ in args.offset_gold)],
            "epochs": args.epochs,
            "weights": weights,
        },
    )
    print(
        f"trained on {len(golds)} answers; train char accuracy {char_accuracy(golds, weights):.3f}; "
        f"held-out {char_accuracy(golds_from_records(test_set), weights):.3f}; wrote {args.out}"
    )
    return 0
