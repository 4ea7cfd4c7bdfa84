"""Tables 1 and 2 of the paper: data-set size, mean lengths and the cognitive distortions answers name.

Lengths are Python character counts of the stripped text (a CJK character counts 1, as in the paper).
Table 2 counts each response once per distortion type it names; "others" is the sum over the types the
paper does not list by name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cbt.schema import CBTRecord
from cbt.taxonomy import DISTORTION_IDS, DISTORTIONS, TABLE2_IDS

DistortionSource = Literal["auto", "text", "labels"]


@dataclass
class DatasetStats:
    n_records: int
    n_responses: int
    chars_question: float
    chars_description: float
    chars_response: float
    share_with_distortion: float
    n_with_distortion: int
    distortion_counts: dict[str, int] = field(default_factory=dict)
    distortion_source: str = "text"

    @property
    def others(self) -> int:
        return sum(n for d, n in self.distortion_counts.items() if d not in TABLE2_IDS)

    def to_dict(self) -> dict:
        return {
            "table1": {
                "n_question_description": self.n_records,
                "n_responses": self.n_responses,
                "chars_per_question": round(self.chars_question, 1),
                "chars_per_description": round(self.chars_description, 1),
                "chars_per_response": round(self.chars_response, 1),
                "share_naming_distortion": round(self.share_with_distortion, 4),
                "n_naming_distortion": self.n_with_distortion,
            },
            "table2": {
                **{d: self.distortion_counts.get(d, 0) for d in TABLE2_IDS},
                "others": self.others,
            },
            "distortion_counts": {d: self.distortion_counts.get(d, 0) for d in DISTORTION_IDS},
            "distortion_source": self.distortion_source,
        }


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def record_distortions(records: Sequence[CBTRecord], source: DistortionSource = "auto") -> tuple[list[list[str]], str]:
    """The distortion ids per record: recorded labels, or the extractor run on the answer text."""
    if source == "auto":
        source = "labels" if records and all(r.distortions is not None for r in records) else "text"
    if source == "labels":
        missing = [r.id for r in records if r.distortions is None]
        if missing:
            raise ValueError(f"{len(missing)} record(s) have no 'distortions' field, e.g. id {missing[0]!r}")
        return [list(r.distortions or []) for r in records], "labels"
    from cbt.distortions import extract_distortions

    return [extract_distortions(r.answer) for r in records], "text"


def compute_stats(records: Sequence[CBTRecord], source: DistortionSource = "auto") -> DatasetStats:
    """Table 1 and Table 2 figures for a list of CBT QA records.

    >>> recs = [CBTRecord("1", "一二三", "四五", "答案", distortions=["mind_reading"]),
    ...         CBTRecord("2", "一", "四五六七", "答", distortions=[])]
    >>> s = compute_stats(recs)
    >>> s.chars_question, s.chars_description, s.share_with_distortion, s.distortion_counts["mind_reading"]
    (2.0, 3.0, 0.5, 1)
    """
    per_record, used = record_distortions(records, source)
    counts: Counter[str] = Counter()
    for ids in per_record:
        counts.update(set(ids))
    answered = [r for r in records if r.answer.strip()]
    n_with = sum(1 for ids in per_record if ids)
    return DatasetStats(
        n_records=len(records),
        n_responses=len(answered),
        chars_question=_mean([len(r.question.strip()) for r in records]),
        chars_description=_mean([len(r.description.strip()) for r in records]),
        chars_response=_mean([len(r.answer.strip()) for r in answered]),
        share_with_distortion=n_with / len(records) if records else 0.0,
        n_with_distortion=n_with,
        distortion_counts=dict(counts),
        distortion_source=used,
    )


def format_tables(stats: DatasetStats) -> str:
    """Tables 1 and 2 as Markdown, laid out like the paper's."""
    t1 = stats.to_dict()["table1"]
    lines = [
        "Table 1: CBT QA data-set statistics",
        "",
        "| Criteria | Statistics |",
        "|---|---|",
        f"| No. of Question & Description | {t1['n_question_description']} |",
        f"| No. of CBT Response | {t1['n_responses']} |",
        f"| Characters Per Question | {t1['chars_per_question']:.1f} |",
        f"| Characters Per Description | {t1['chars_per_description']:.1f} |",
        f"| Characters Per CBT Response | {t1['chars_per_response']:.1f} |",
        f"| Percentage of Cognitive Distortions | {100 * t1['share_naming_distortion']:.1f}% |",
        "",
        f"Table 2: cognitive distortions named by the responses (source: {stats.distortion_source})",
        "",
        "| Cognitive Distortion Type | Samples |",
        "|---|---|",
    ]
    lines += [f"| {DISTORTIONS[d].en} | {stats.distortion_counts.get(d, 0)} |" for d in TABLE2_IDS]
    others = [d for d in DISTORTION_IDS if d not in TABLE2_IDS]
    detail = ", ".join(f"{DISTORTIONS[d].en} {stats.distortion_counts.get(d, 0)}" for d in others)
    lines.append(f"| Others ({detail}) | {stats.others} |")
    return "\n".join(lines) + "\n"
