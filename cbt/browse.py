"""Browsing a CBT QA set: filtering records and the (text, section) pieces the UI highlights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cbt.distortions import extract_distortions
from cbt.schema import CBTRecord
from cbt.sections import segment
from cbt.taxonomy import DISTORTIONS, SECTIONS


def section_label(section_id: str | None) -> str | None:
    """Legend label of a section: "验证和共情 Validation and empathy"."""
    if section_id is None:
        return None
    s = SECTIONS[section_id]
    return f"{s.zh} {s.en}"


def colour_map() -> dict[str, str]:
    """Legend label -> colour (the paper's Figure 4: green, yellow, purple, blue, red)."""
    return {section_label(s.id): s.hex for s in SECTIONS.values()}


def highlight_pieces(
    text: str, spans: Sequence[tuple[int, int, str | None]] | None = None
) -> list[tuple[str, str | None]]:
    """(text, legend label or None) pieces covering the answer: gold spans when given, else the segmenter's."""
    if spans is None:
        spans = segment(text).spans
    return [(text[s:e], section_label(sec)) for s, e, sec in spans if e > s]


def record_spans(record: CBTRecord) -> list[tuple[int, int, str | None]] | None:
    """Gold spans of a record, gaps filled with None, or None when the record has none."""
    if not record.sections:
        return None
    out, pos = [], 0
    for s in record.sections:
        if s.start > pos:
            out.append((pos, s.start, None))
        out.append((s.start, s.end, s.section))
        pos = s.end
    if pos < len(record.answer):
        out.append((pos, len(record.answer), None))
    return out


def distortion_names(ids: Sequence[str]) -> list[str]:
    return [f"{DISTORTIONS[d].zh} ({DISTORTIONS[d].en})" for d in ids]


@dataclass
class RecordView:
    """What the browse tab shows for one record."""

    title: str
    question: str
    description: str
    pieces: list[tuple[str, str | None]]
    distortions: list[str]
    source_of_sections: str


def filter_records(records: Sequence[CBTRecord], query: str = "", topic: str = "") -> list[CBTRecord]:
    """Records whose question, description or answer contains `query` (and of `topic`, when given)."""
    q = query.strip()
    return [
        r
        for r in records
        if (not topic or r.topic == topic) and (not q or q in r.question or q in r.description or q in r.answer)
    ]


def view_record(record: CBTRecord, use_gold: bool = True) -> RecordView:
    """Gold sections and distortions when recorded (and asked for), otherwise the analysers' output."""
    gold = record_spans(record) if use_gold else None
    distortions = record.distortions if (use_gold and record.distortions is not None) else None
    return RecordView(
        title=f"{record.id}" + (f" · {record.topic}" if record.topic else ""),
        question=record.question,
        description=record.description,
        pieces=highlight_pieces(record.answer, gold),
        distortions=distortion_names(distortions if distortions is not None else extract_distortions(record.answer)),
        source_of_sections="gold annotation" if gold else "segmenter",
    )
