"""The retrieval baseline: the answer of the most similar question in a CBT QA set. Instant, offline.

Similarity is cosine over IDF-weighted character bigrams of question + description, with an inverted
index, so a 22k-record set answers in milliseconds.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

from cbt.backends.base import Backend, GenParams, Message, last_user_message
from cbt.schema import CBTRecord

_PIECE = re.compile(r"[^。！？!?\n]*[。！？!?\n]+|[^。！？!?\n]+$")


def _grams(text: str) -> Counter[str]:
    text = re.sub(r"\s+", "", text.lower())
    return Counter(text[i : i + 2] for i in range(len(text) - 1)) or Counter([text])


class RetrievalBackend(Backend):
    name = "retrieval"

    def __init__(self, records: Sequence[CBTRecord]) -> None:
        if not records:
            raise ValueError("the retrieval backend needs at least one CBT QA record")
        self.records = list(records)
        docs = [_grams(r.question + r.description) for r in self.records]
        df: Counter[str] = Counter()
        for d in docs:
            df.update(d.keys())
        n = len(docs)
        self.idf = {g: math.log((n + 1) / (c + 1)) + 1.0 for g, c in df.items()}
        self.index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.norms = []
        for i, d in enumerate(docs):
            weights = {g: tf * self.idf[g] for g, tf in d.items()}
            self.norms.append(math.sqrt(sum(w * w for w in weights.values())) or 1.0)
            for g, w in weights.items():
                self.index[g].append((i, w))

    def nearest(self, query: str) -> tuple[CBTRecord, float]:
        """The most similar record and its cosine similarity."""
        q = {g: tf * self.idf.get(g, 0.0) for g, tf in _grams(query).items()}
        qn = math.sqrt(sum(w * w for w in q.values())) or 1.0
        scores: dict[int, float] = defaultdict(float)
        for g, wq in q.items():
            for i, wd in self.index.get(g, ()):
                scores[i] += wq * wd
        if not scores:
            return self.records[0], 0.0
        best = max(scores, key=lambda i: scores[i] / self.norms[i])
        return self.records[best], scores[best] / (self.norms[best] * qn)

    def stream(self, messages: Sequence[Message], params: GenParams) -> Iterator[str]:
        record, _ = self.nearest(last_user_message(messages))
        yield from (m.group(0) for m in _PIECE.finditer(record.answer) if m.group(0))
