r"""The CBT section segmenter: labels every character of a response with one of the five sections or none.

The response is cut into sentence units; each unit gets cue-lexicon, position, shape, announcement
("让我们来挑战一下这个想法：") and character-bigram features; a linear-chain CRF (weights in
cbt/resources/segmenter_weights.json, trained on the sample set's train split and hand-annotated real
answers by `python -m cbt segmenter-train`) scores them and Viterbi decoding picks the best section
sequence, so order and contiguity are learned, not hard-coded. Headings ("【验证和共情】", "3. Strategy:")
fix the section outright. Python + numpy, under a millisecond per answer, no model download.

>>> r = segment("我能理解你的难过，这段时间你一定很辛苦。\n\n你似乎认为自己一无是处，这可能是一种以偏概全。\n\n"
...             "真的是这样吗？有没有一些时候你其实做得不错？\n\n你可以每天写下三件做到的小事。\n\n"
...             "改变需要时间，相信你会慢慢好起来。")
>>> [s["section"] for s in r.to_dict()["spans"] if s["section"]]
['validation', 'key_thought', 'challenge', 'strategy', 'encouragement']
"""

from __future__ import annotations

import itertools
import json
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cbt.taxonomy import RESOURCES, SECTION_IDS, load_resource

NONE = "none"
LABELS: tuple[str, ...] = (*SECTION_IDS, NONE)
WEIGHTS_PATH = RESOURCES / "segmenter_weights.json"
# Share of characters each section takes in a well-formed answer (the paper's structure, as our sample
# set and the 200 real answers show it); used by the structure score.
TARGET_SHARE = {"validation": 0.13, "key_thought": 0.2, "challenge": 0.15, "strategy": 0.37, "encouragement": 0.15}

_UNIT = re.compile(r"[^\n。！？!?…]*(?:[。！？!?…]+[”’\"」』）)\]】]*|\n|$)")
# Chat-template debris a model may leak ("<|im_end|>", "<|im_start|>assistant", "[/INST]").
_ARTIFACT = re.compile(r"^(?:(?:<\|[a-z_]+\|>|\[/?inst\]|</?s>)\s*[a-z_]*\s*)+$|^###.*$", re.IGNORECASE)
_WORDLIKE = re.compile(r"[\w\u3400-\u9fff]")
_TURN_START = re.compile(r"<\|im_start\|>|<\|start_header_id\|>|\[inst\]", re.IGNORECASE)
_NUMBERED = re.compile(
    r"^\s*(?:\d{1,2}[.、．)）]|[一二三四五六][、.．]|[(（][一二三四五六\d][)）]|第[一二三四五六]步?[，、:：])"
)
_BULLET = re.compile(r"^\s*[-*•·]\s")
_HEAD_PREFIX = r"^\s*(?:#{1,4}\s*)?(?:\d{1,2}[.、．)）]\s*|[一二三四五六][、.．]\s*)?(?:\*\*|【|\[)?\s*"
_HEAD_SUFFIX = r"\s*(?:\*\*|】|\])?\s*(?:[:：]|\*\*|】|\n|$)"


@dataclass(frozen=True)
class Unit:
    """A sentence-like stretch of the text: [start, end) without surrounding whitespace."""

    start: int
    end: int
    text: str
    para_start: bool


@dataclass
class Segmentation:
    text: str
    spans: list[tuple[int, int, str | None]]

    @property
    def labels(self) -> list[str | None]:
        """One section id (or None) per character."""
        out: list[str | None] = [None] * len(self.text)
        for s, e, sec in self.spans:
            out[s:e] = [sec] * (e - s)
        return out

    @property
    def sections_present(self) -> list[str]:
        seen = {s for _, _, s in self.spans if s}
        return [s for s in SECTION_IDS if s in seen]

    @property
    def structure_score(self) -> float:
        return structure_score(self.spans, len(self.text))

    def to_dict(self) -> dict:
        """The `python -m cbt segment` contract: spans cover the whole text."""
        return {
            "spans": [{"start": s, "end": e, "text": self.text[s:e], "section": sec} for s, e, sec in self.spans],
            "sections_present": self.sections_present,
            "structure_score": round(self.structure_score, 4),
        }


# ---------------------------------------------------------------- units and features


def split_units(text: str) -> list[Unit]:
    """Sentence units: cut after 。！？!?… (and closing quotes) and at newlines; whitespace trimmed."""
    units, para = [], True
    for m in _UNIT.finditer(text):
        raw = m.group(0)
        if not raw:
            continue
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            start = m.start() + lead
            units.append(Unit(start, start + len(stripped), stripped, para))
            para = False
        if "\n" in raw:
            para = True
    return units


@lru_cache(maxsize=1)
def _lexicon() -> tuple[list[tuple[str, str, re.Pattern[str]]], re.Pattern[str], list[tuple[str, re.Pattern[str]]]]:
    raw = load_resource("segmenter.yaml")
    cues = [
        (f"cue:{sec}{i}", sec, re.compile(p, re.IGNORECASE if re.search("[A-Za-z]", p) else 0))
        for sec, pats in raw["cues"].items()
        for i, p in enumerate(pats)
    ]
    # One alternative per section, each a whole anchored pattern: the first section that matches wins.
    heads = re.compile(
        "|".join(
            f"(?P<{sec}>{_HEAD_PREFIX}(?:{'|'.join(pats)})[^:：\n]{{0,24}}?{_HEAD_SUFFIX})"
            for sec, pats in raw["headings"].items()
        ),
        re.IGNORECASE,
    )
    # Announcements: one pattern per section scanned over the text, and the "^" ones (at the start of a
    # sentence unit) as one anchored pattern tried on each unit (a lookbehind would slow the scan 2x).
    ann_pats = [(sec, [p for p in pats if not p.startswith("^")]) for sec, pats in raw["announce"].items()]
    ann = [(sec, re.compile("|".join(pats))) for sec, pats in ann_pats if pats]
    heads_of = ((sec, [p[1:] for p in pats if p.startswith("^")]) for sec, pats in raw["announce"].items())
    ann.append(("", re.compile("|".join(f"(?P<{sec}>{'|'.join(ps)})" for sec, ps in heads_of if ps) or "(?!)")))
    return cues, heads, ann


def heading_section(unit_text: str) -> str | None:
    """The section a heading at the start of a unit names ("【鼓励与前瞻】", "2. Identify key thought:")."""
    m = _lexicon()[1].match(unit_text)
    return m.lastgroup if m else None


def unit_features(text: str, units: Sequence[Unit]) -> list[list[str]]:
    """Feature names per unit; cues are found once over the whole text and mapped to units."""
    cues = _lexicon()[0]
    starts = [u.start for u in units]
    found: list[set[str]] = [set() for _ in units]
    unit_secs: list[set[str]] = [set() for _ in units]  # sections whose cues each unit carries
    for name, sec, pattern in cues:
        for m in pattern.finditer(text):
            i = bisect_right(starts, m.start()) - 1
            if i >= 0 and m.start() < units[i].end:
                found[i].add(name)
                unit_secs[i].add(sec)
    n, total = len(units), max(len(text), 1)
    para_of, p = [], -1
    for u in units:
        p += u.para_start
        para_of.append(p)
    n_para = p + 1
    # Sections whose cues a paragraph carries: context for its units (lists, mixed paragraphs).
    para_secs: list[set[str]] = [set() for _ in range(n_para)]
    for i, secs in enumerate(unit_secs):
        para_secs[para_of[i]] |= secs
    texts = [u.text for u in units]
    ctx = _announced(text, units, para_of)
    seen_twice = {t for t, k in Counter(texts).items() if k > 1 and len(t) > 4}
    feats = []
    for i, u in enumerate(units):
        t = u.text
        rel = (u.start + u.end) / 2 / total
        f = ["bias", _POS10[min(int(rel * 10), 9)], _POS5[min(int(rel * 5), 4)], _LEN[min(len(t) // 25, 6)]]
        f += found[i]
        f += map(_P.__getitem__, para_secs[para_of[i]])
        if i > 0:
            f += map(_PREV.__getitem__, unit_secs[i - 1])
        if i < n - 1:
            f += map(_NEXT.__getitem__, unit_secs[i + 1])
        if i < 2 or i >= n - 2:
            f += _position_flags(i, n)
        if u.para_start:
            f.append("para")
        if n_para > 2:
            f.append(_PFIRST[min(para_of[i], 3)])
            f.append(_PLAST[min(n_para - 1 - para_of[i], 3)])
        if t.endswith(_QMARKS) or (t.endswith(_CLOSERS) and t.rstrip(_CLOSERS_S).endswith(_QMARKS)):
            f.append("q_end")
        f.append("w1:" + t[:1])
        f.append("w2:" + t[:2])
        if _NUMBERED.match(t):
            f.append("numbered")
        if _BULLET.match(t):
            f.append("bullet")
        if "**" in t:
            f.append("bold")
        if t.endswith(("：", ":")):
            f.append("colon_end")
        if t in seen_twice:
            f.append("repeated")
        if _ARTIFACT.match(t) or not _WORDLIKE.search(t):
            f.append("artifact")
        f += ctx[i]
        feats.append(f)
    return feats


# Feature names built once (string formatting per unit is a measurable share of the segmenting time).
_POS10 = [f"pos{k}" for k in range(10)]
_POS5 = [f"pos5_{k}" for k in range(5)]
_LEN = [f"len{k}" for k in range(7)]
_PFIRST = [f"pfirst{k}" for k in range(4)]
_PLAST = [f"plast{k}" for k in range(4)]
_P, _PREV, _NEXT = ({sec: f"{pre}:{sec}" for sec in SECTION_IDS} for pre in ("P", "prev", "next"))
_QMARKS, _CLOSERS_S = ("？", "?"), '”’"」』）)'
_CLOSERS = tuple(_CLOSERS_S)
_ANN = {sec: (f"A:{sec}", f"AP:{sec}", f"A0:{sec}") for sec in SECTION_IDS}


def _position_flags(i: int, n: int) -> list[str]:
    flags = []
    if i == 0:
        flags.append("first")
    if i == n - 1:
        flags.append("last")
    if i == 1:
        flags.append("second")
    if i == n - 2:
        flags.append("penult")
    return flags


def _announced(text: str, units: Sequence[Unit], para_of: list[int]) -> list[list[str]]:
    """Which section the latest announcing sentence named ("让我们来挑战一下这个想法：", "以下是一些建议："):
    A:sec after it, AP:sec too while in its paragraph, A0:sec on the announcing unit itself."""
    starts = [u.start for u in units]
    *scans, (_, at_start) = _lexicon()[2]
    first: dict[int, tuple[int, int, str]] = {}  # unit -> (offset, section order, section) of its first hit
    for order, (sec, pattern) in enumerate(scans):
        for m in pattern.finditer(text):
            i = bisect_right(starts, m.start()) - 1
            if i >= 0 and m.start() < units[i].end:
                first[i] = min(first.get(i, (m.start(), order, sec)), (m.start(), order, sec))
    for i, u in enumerate(units):
        m = at_start.match(u.text)
        if m and (i not in first or first[i][0] > u.start):
            first[i] = (u.start, -1, m.lastgroup)
    own = {i: sec for i, (_, _, sec) in first.items()}
    out: list[list[str]] = []
    last, last_para = None, -1
    for i in range(len(units)):
        f = []
        if last is not None:
            f.append(_ANN[last][0])
            if last_para == para_of[i]:
                f.append(_ANN[last][1])
        if i in own:
            last, last_para = own[i], para_of[i]
            f.append(_ANN[last][2])
        out.append(f)
    return out


# ---------------------------------------------------------------- decoding


@lru_cache(maxsize=1)
def _weights() -> dict[str, dict[str, float]]:
    if not WEIGHTS_PATH.exists():
        raise FileNotFoundError(f"{WEIGHTS_PATH} is missing: rebuild it with `python -m cbt segmenter-train`")
    return load_weights(WEIGHTS_PATH)


def load_weights(path: Path) -> dict[str, dict[str, float]]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)["weights"]


def unit_bigrams(units: Sequence[Unit]) -> list[list[str]]:
    """Character-bigram features ("b:" + two characters) per unit, with repeats; the trainer adds them to
    unit_features. At inference they are scored in bulk by Model.bigram_emissions, not built as strings."""
    return [["b:" + u.text[j : j + 2] for j in range(len(u.text) - 1)] for u in units]


class Model:
    """Weights in the form decoding reads: {feature: [weight per label]} plus a bigram table.

    Bigrams are looked up by direct addressing: each character of the bigram vocabulary gets a small id
    (0 for any other character) and `index[id1 * n_chars + id2]` is the bigram's row in `table`; the last
    row is zeros and stands for "not in the vocabulary".
    """

    def __init__(self, weights: dict[str, dict[str, float]]) -> None:
        self.vec = {n: [row.get(lab, 0.0) for lab in LABELS] for n, row in weights.items() if not n.startswith("b:")}
        self.row_of = {n: k for k, n in enumerate(self.vec)}
        self.missing = len(self.vec)  # row index of the zero row that unknown features read
        self.feat_table = np.array([*self.vec.values(), [0.0] * len(LABELS)])
        grams = [n[2:] for n in weights if n.startswith("b:") and len(n) == 4]
        chars = sorted({c for g in grams for c in g})
        self.n_chars = len(chars) + 1
        self.char_id = np.zeros(0x110000, dtype=np.int32 if self.n_chars > 2**15 else np.int16)
        self.char_id[[ord(c) for c in chars]] = np.arange(1, self.n_chars)
        self.index = np.full(self.n_chars**2, len(grams), dtype=np.int32 if len(grams) >= 2**15 else np.int16)
        ids = self.char_id[[[ord(c) for c in g] for g in grams]].reshape(-1, 2).astype(np.int64)
        self.index[ids[:, 0] * self.n_chars + ids[:, 1]] = np.arange(len(grams))
        rows = [[weights["b:" + g].get(lab, 0.0) for lab in LABELS] for g in grams] + [[0.0] * len(LABELS)]
        self.table = np.array(rows)

    def bigram_emissions(self, text: str, units: Sequence[Unit]) -> np.ndarray:
        """Sum of the bigram weights inside each unit (same result as scoring unit_bigrams' strings):
        one lookup over the whole text, then differences of a running sum at the unit borders."""
        if len(self.table) == 1:  # weights trained without bigrams
            return np.zeros((len(units), len(LABELS)))
        ids = self.char_id[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)].astype(np.int32)
        rows = self.table[self.index[ids[:-1] * self.n_chars + ids[1:]]]
        running = np.zeros((max(len(text), 1), len(LABELS)))
        np.cumsum(rows, axis=0, out=running[1:])
        borders = np.array([(u.start, u.end - 1) for u in units], dtype=np.int64).reshape(-1, 2)
        return running[borders[:, 1]] - running[borders[:, 0]]

    def emissions(self, text: str, units: Sequence[Unit], feats: list[list[str]]) -> list[list[float]]:
        """Per unit and label: the summed weights of its features and bigrams (one gather, one reduce)."""
        if not units:
            return []
        get, rows, firsts = self.row_of.get, [], []
        for f in feats:
            firsts.append(len(rows))
            rows += map(get, f, itertools.repeat(self.missing, len(f)))
        scores = np.add.reduceat(self.feat_table[rows], firsts, axis=0)
        return (scores + self.bigram_emissions(text, units)).tolist()


@lru_cache(maxsize=1)
def _default_model() -> Model:
    return Model(_weights())


_last: list = [None, None]  # the last weights dict passed in, and its Model (evaluation calls repeat it)


def _model(weights: dict | None) -> Model:
    if weights is None:
        return _default_model()
    if _last[0] is not weights:
        _last[:] = [weights, Model(weights)]
    return _last[1]


def viterbi(emissions: list[list[float]], vec: dict[str, list[float]], paras: Sequence[bool]) -> list[str]:
    """Best label sequence under emission + transition weights.

    Transitions are conditioned on whether the unit opens a paragraph ("T1:prev") or not ("T0:prev"):
    real answers change section mostly at paragraph breaks, and the weights learn how much.
    """
    if not emissions:
        return []
    n_lab = len(LABELS)
    zero = [0.0] * n_lab
    trans = [[vec.get(f"T{k}:{lab}", zero) for lab in LABELS] for k in (0, 1)]
    start = vec.get("T1:<s>", zero)
    score = [start[j] + emissions[0][j] for j in range(n_lab)]
    back: list[list[int]] = []
    for i in range(1, len(emissions)):
        t = trans[int(paras[i])]
        new, ptr = [], []
        for j in range(n_lab):
            best_p, best_s = 0, score[0] + t[0][j]
            for p in range(1, n_lab):
                v = score[p] + t[p][j]
                if v > best_s:
                    best_p, best_s = p, v
            new.append(best_s + emissions[i][j])
            ptr.append(best_p)
        score = new
        back.append(ptr)
    j = max(range(n_lab), key=score.__getitem__)
    path = [j]
    for ptr in reversed(back):
        j = ptr[j]
        path.append(j)
    return [LABELS[k] for k in reversed(path)]


def forced_labels(units: Sequence[Unit]) -> list[str | None]:
    """Units whose label is not the model's to choose.

    Template debris and lines repeated three or more times (degenerate generation) are none, as is
    everything after a new chat turn opens mid-answer. Headings pin their own unit and, once two or more
    distinct headings appear, the units after them.
    """
    texts = [u.text for u in units]
    counts: dict[str, int] = {}
    for t in texts:
        counts[t] = counts.get(t, 0) + 1
    heads = [heading_section(t) for t in texts]
    headed = len({h for h in heads if h}) >= 2
    forced: list[str | None] = []
    current, new_turn = None, False
    for i, (t, h) in enumerate(zip(texts, heads, strict=True)):
        new_turn = new_turn or (i >= 2 and bool(_TURN_START.search(t)))
        current = h or current
        if new_turn or _ARTIFACT.match(t) or (counts[t] >= 3 and len(t) > 4):
            forced.append(NONE)
        else:
            forced.append(current if headed else h)
    return forced


def decode(text: str, units: Sequence[Unit], model: Model) -> list[str]:
    """Labels for units: emission scores, forced rules, then Viterbi."""
    ems = model.emissions(text, units, unit_features(text, units))
    for e, fl in zip(ems, forced_labels(units), strict=True):
        if fl:
            e[LABELS.index(fl)] += 1000.0
    return viterbi(ems, model.vec, [u.para_start for u in units])


def label_units(text: str, units: Sequence[Unit], weights: dict | None = None) -> list[str]:
    """Section label (or "none") per unit; `weights` overrides the shipped ones (evaluation uses this)."""
    return decode(text, units, _model(weights))


def spans_from_units(text: str, units: Sequence[Unit], labels: Sequence[str]) -> list[tuple[int, int, str | None]]:
    """Character spans covering the whole text; whitespace between different sections is none."""
    spans: list[tuple[int, int, str | None]] = []

    def add(start: int, end: int, sec: str | None) -> None:
        if end <= start:
            return
        if spans and spans[-1][2] == sec and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end, sec)
        else:
            spans.append((start, end, sec))

    pos, prev = 0, None
    for u, lab in zip(units, labels, strict=True):
        sec = None if lab == NONE else lab
        add(pos, u.start, sec if (sec is not None and sec == prev) else None)
        add(u.start, u.end, sec)
        pos, prev = u.end, sec
    add(pos, len(text), None)
    return spans


def segment(text: str) -> Segmentation:
    """Label each character of a CBT response with a section id or None, plus spans and a structure score."""
    units = split_units(text)
    spans = spans_from_units(text, units, label_units(text, units)) if text else []
    return Segmentation(text, spans)


# ---------------------------------------------------------------- structure score


def structure_score(spans: Sequence[tuple[int, int, str | None]], length: int) -> float:
    """0..1: 0.5 for the share of the five parts present, 0.25 for their order, 0.25 for proportions.

    A part counts as present when it covers at least 3% of the characters. Order is the share of
    consecutive present parts (in text order of first appearance) that follow the paper's order.
    Proportion is 1 - half the L1 distance between the parts' shares and TARGET_SHARE.
    """
    if length <= 0:
        return 0.0
    share = dict.fromkeys(SECTION_IDS, 0)
    first: dict[str, int] = {}
    for s, e, sec in spans:
        if sec:
            share[sec] += e - s
            first.setdefault(sec, s)
    labelled = sum(share.values()) or 1
    present = [s for s in SECTION_IDS if share[s] / length >= 0.03]
    if not present:
        return 0.0
    seq = sorted(present, key=lambda s: first[s])
    pairs = list(itertools.pairwise(seq))
    order = sum(SECTION_IDS.index(a) < SECTION_IDS.index(b) for a, b in pairs) / len(pairs) if pairs else 0.0
    l1 = sum(abs(share[s] / labelled - TARGET_SHARE[s]) for s in SECTION_IDS)
    return 0.5 * len(present) / 5 + 0.25 * order + 0.25 * max(0.0, 1 - l1 / 2)
