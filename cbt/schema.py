"""Record types shared by every stage: CBT QA records, PsyQA items, alpaca instruction records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SectionSpan:
    """A gold or predicted span of one CBT section in an answer: characters [start, end)."""

    section: str
    start: int
    end: int


@dataclass
class CBTRecord:
    """One CBT QA item: a PsyQA-style question + description and a CBT answer.

    `distortions` are the taxonomy ids the answer names (None when unknown); `sections` are gold section
    spans where an annotator recorded them.
    """

    id: str
    question: str
    description: str
    answer: str
    source: str = ""
    distortions: list[str] | None = None
    sections: list[SectionSpan] | None = None
    topic: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with optional fields left out when unset."""
        out: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "description": self.description,
            "answer": self.answer,
        }
        if self.topic is not None:
            out["topic"] = self.topic
        if self.distortions is not None:
            out["distortions"] = list(self.distortions)
        if self.sections is not None:
            out["sections"] = [asdict(s) for s in self.sections]
        out["source"] = self.source
        out.update(self.extra)
        return out


@dataclass
class PsyQAItem:
    """One PsyQA question (the input of data-set generation); `answers` are the human answers' texts."""

    question_id: str
    question: str
    description: str
    keywords: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


@dataclass
class AlpacaRecord:
    """Instruction-tuning record in the alpaca layout used by the paper and by LLaMA-Factory."""

    instruction: str
    input: str
    output: str

    def to_dict(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}
