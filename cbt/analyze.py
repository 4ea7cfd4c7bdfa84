"""Apply the segmenter and the distortion extractor to a file of answers (e.g. a model's predictions).

python -m cbt analyze ../shared/data/autocbt-psyqa-cbt-responses-zh/psyqa_balanced_cbtllm.json --field cbt_answer
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from cbt.distortions import extract_distortions
from cbt.io import DataError, PathLike, iter_json_objects
from cbt.sections import segment
from cbt.taxonomy import DISTORTION_IDS, SECTION_IDS


@dataclass
class AnswerReport:
    n: int
    share_all_five: float
    share_naming_distortion: float
    mean_structure_score: float
    section_presence: dict[str, float] = field(default_factory=dict)
    distortion_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "answers": self.n,
            "share_all_five_sections": round(self.share_all_five, 4),
            "share_naming_distortion": round(self.share_naming_distortion, 4),
            "mean_structure_score": round(self.mean_structure_score, 4),
            "section_presence": {k: round(v, 4) for k, v in self.section_presence.items()},
            "distortion_counts": self.distortion_counts,
        }


def analyze_one(text: str) -> tuple[list[str], float, list[str]]:
    """(sections present, structure score, distortion ids) of one answer."""
    seg = segment(text)
    return seg.sections_present, seg.structure_score, extract_distortions(text)


def analyze_many(texts: Sequence[str], workers: int = 1) -> list[tuple[list[str], float, list[str]]]:
    """analyze_one over many answers; `workers` > 1 spreads large batches over processes."""
    if workers <= 1 or len(texts) < 2000:
        return [analyze_one(t) for t in texts]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(analyze_one, texts, chunksize=max(1, len(texts) // (workers * 8))))


def analyze_answers(texts: Sequence[str], workers: int = 1) -> AnswerReport:
    """Structure and distortion statistics over answers (each answer counted once per type it names)."""
    presence: Counter[str] = Counter()
    dist: Counter[str] = Counter()
    all_five = naming = 0
    score = 0.0
    for present, structure, ids in analyze_many(texts, workers):
        presence.update(present)
        all_five += len(present) == len(SECTION_IDS)
        score += structure
        naming += bool(ids)
        dist.update(ids)
    n = max(len(texts), 1)
    return AnswerReport(
        n=len(texts),
        share_all_five=all_five / n,
        share_naming_distortion=naming / n,
        mean_structure_score=score / n,
        section_presence={s: presence[s] / n for s in SECTION_IDS},
        distortion_counts={d: dist[d] for d in DISTORTION_IDS if dist[d]},
    )


def load_texts(path: PathLike, field_name: str) -> list[str]:
    """The `field_name` strings of a JSON array or JSON Lines file (errors name file:line)."""
    out = []
    for line, obj in iter_json_objects(path):
        value = obj.get(field_name) if isinstance(obj, dict) else None
        if not isinstance(value, str):
            raise DataError(path, line, f"field '{field_name}' missing or not a string")
        out.append(value)
    return out
