"""Input checks and row shapes for the annotation store: what a rater may save, and how a row reads back.

Every check raises AnnotationError naming the field and the value, before anything is written.

>>> check_score("relevance", 3, (0, 1, 2))
Traceback (most recent call last):
...
annotation.rows.AnnotationError: relevance: must be one of 0, 1, 2, got 3
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cbt.taxonomy import DISTORTION_IDS

MAX_COMMENT, MAX_KEY_THOUGHT = 2000, 1000


class AnnotationError(ValueError):
    """Bad input; the message names the field and the value."""


class AuthError(AnnotationError):
    """Not logged in, wrong password, not your row, or not an admin."""


class ThrottledError(AuthError):
    """Too many failed logins for a user or a client."""


@dataclass(frozen=True)
class Task:
    """One annotation task: its item table, its row table, the fields a rater saves and those that complete it."""

    name: str
    items: str
    rows: str
    fields: tuple[str, ...]
    required: tuple[str, ...]


RATING = Task("rating", "rating_items", "ratings", ("relevance", "structure", "helpfulness", "comment", "flag",
              "skipped"), ("relevance", "structure", "helpfulness"))  # fmt: skip
LABEL = Task("label", "label_items", "labels", ("distortions", "key_thought", "confidence", "skipped"),
             ("distortions", "confidence"))  # fmt: skip
TASKS = (RATING, LABEL)


def rating_item_id(question_id: str, backbone: str) -> str:
    """A stable id for (question, backbone): the same on every machine and every import.

    >>> rating_item_id("q1", "cbt-mini")
    'r-830d26486ccd9df8'
    """
    return "r-" + hashlib.sha256(f"{question_id}\0{backbone}".encode()).hexdigest()[:16]


def rater_order(username: str, item_ids: Iterable[str]) -> list[str]:
    """The rater's own shuffle: items ranked by a hash of (username, item id), stable across sessions."""
    return sorted(item_ids, key=lambda i: hashlib.sha256(f"{username}\0{i}".encode()).digest())


# ---------------------------------------------------------------- input checks


def check_score(field: str, value: Any, allowed: tuple[int, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise AnnotationError(f"{field}: must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def check_text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise AnnotationError(f"{field}: must be text, got {value!r}")
    if len(value) > limit:
        raise AnnotationError(f"{field}: at most {limit} characters, got {len(value)}")
    return value


def check_flag(field: str, value: Any) -> int:
    if not isinstance(value, bool):
        raise AnnotationError(f"{field}: must be true or false, got {value!r}")
    return int(value)


def check_distortions(value: Any) -> str:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise AnnotationError(f"distortions: must be a list of taxonomy ids or ['none'], got {value!r}")
    unknown = [v for v in value if v != "none" and v not in DISTORTION_IDS]
    if unknown:
        known = ", ".join(DISTORTION_IDS)
        raise AnnotationError(f"distortions: unknown distortion id {unknown[0]!r} (known: {known})")
    if "none" in value and len(set(value)) > 1:
        raise AnnotationError(f"distortions: 'none' cannot be combined with distortion ids, got {list(value)!r}")
    if not value:
        raise AnnotationError("distortions: choose at least one distortion, or 'none'")
    ordered = ["none"] if "none" in value else [d for d in DISTORTION_IDS if d in value]
    return json.dumps(ordered)


def item_text(row: Any, i: int, field: str, *, empty: bool = False) -> str:
    value = row.get(field, "") if isinstance(row, dict) else None
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise AnnotationError(f"rows[{i}].{field}: must be {'' if empty else 'non-empty '}text, got {value!r}")
    return value


def decode_row(task: Task, row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {}
    out = {f: row[f] for f in task.fields}
    out["skipped"] = bool(out["skipped"])
    if "flag" in out:
        out["flag"] = None if out["flag"] is None else bool(out["flag"])
    if "distortions" in out and out["distortions"] is not None:
        out["distortions"] = json.loads(out["distortions"])
    return out


def row_status(task: Task, saved: dict[str, Any]) -> str:
    if not saved:
        return "todo"
    if saved["skipped"]:
        return "skipped"
    if all(saved[f] is not None for f in task.required):
        return "done"
    return "partial" if any(saved[f] not in (None, False, "") for f in task.fields) else "todo"
