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


def coerce_override(value: str, current: object) -> object:
    """A `key=value` command-line override, typed like the setting it replaces (train and eval configs).

    >>> coerce_override("3", 1), coerce_override("no", True), coerce_override("a,b", []), coerce_override("x", "")
    (3, False, ['a', 'b'], 'x')
    """
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, list):
        return [v for v in value.split(",") if v]
    return value
