"""Small text helpers shared by the analysers."""

from __future__ import annotations

import re

_CLAUSE_BREAK = re.compile(r"[，。！？；：,.!?;:\n]")


def clause_prefix(text: str, start: int, width: int) -> str:
    """The part of the clause before `start`, at most `width` characters: where negations are looked for.

    >>> clause_prefix("我很好，但我并不是想死", 10, 20)
    '但我并不是想'
    """
    window = text[max(0, start - width) : start]
    cut = max((m.end() for m in _CLAUSE_BREAK.finditer(window)), default=0)
    return window[cut:]
