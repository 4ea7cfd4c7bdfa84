"""Pure helpers behind the annotation tabs: guidelines, choices, what one item shows, navigation, exports.

Gradio-free, so the tabs' callbacks stay one-liners over these and the store, and everything here is unit-tested.

>>> score_choices("relevance")[2]
('2 · 完全相关 Fully relevant', 2)
>>> normalize_distortions(["mind_reading", "none"], ["mind_reading"])
['none']
>>> progress_text({"done": 12, "skipped": 1, "total": 100})
'12 / 100 done · 1 skipped'
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from annotation.export import write_export
from annotation.store import AnnotationStore
from cbt.browse import highlight_pieces
from cbt.taxonomy import DISTORTIONS

RESOURCES = Path(__file__).parent / "resources"
METRICS = ("relevance", "structure", "helpfulness")
NONE = "none"


@cache
def guidelines() -> dict[str, Any]:
    """annotation/resources/guidelines.yaml: the paper's Appendix A (rating) and our labelling instructions."""
    with open(RESOURCES / "guidelines.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def open_store(url: str | None = None) -> AnnotationStore:
    """The app's store (CBT_ANNOTATION_DB, else the data dir's SQLite file) with the configured raters loaded:
    the users file named by CBT_USERS_FILE, then env CBT_USERS. No users is fine: the tabs say how to add them."""
    store = AnnotationStore(url)
    if os.environ.get("CBT_USERS_FILE"):
        store.load_users(os.environ["CBT_USERS_FILE"])
    if os.environ.get("CBT_USERS"):
        store.load_users()
    return store


def metric(metric_id: str) -> dict[str, Any]:
    for row in guidelines()["rating"]["metrics"]:
        if row["id"] == metric_id:
            return row
    raise KeyError(f"no guideline for metric {metric_id!r}; known: {', '.join(METRICS)}")


def score_choices(metric_id: str) -> list[tuple[str, int]]:
    """Radio choices (label, score): each 0-2 level with its meaning, zh + en."""
    return [(f"{lv['score']} · {lv['zh']} {lv['en']}", int(lv["score"])) for lv in metric(metric_id)["levels"]]


def metric_label(metric_id: str) -> str:
    m = metric(metric_id)
    return f"{m['zh']} {m['en']} (0-2)"


def confidence_choices() -> list[tuple[str, int]]:
    return [(f"{c['score']} · {c['zh']} {c['en']}", int(c["score"])) for c in guidelines()["labelling"]["confidence"]]


def distortion_choices() -> list[tuple[str, str]]:
    """The taxonomy (zh + en names from cbt.taxonomy) and "none" last."""
    none = guidelines()["labelling"]["none"]
    return [(f"{d.zh} {d.en}", d.id) for d in DISTORTIONS.values()] + [(f"{none['zh']} ({none['en']})", NONE)]


def rating_guidelines_markdown() -> str:
    """The paper's Appendix A as the rating tab shows it."""
    g = guidelines()["rating"]
    parts = [g["intro"]["zh"] + g["note"]["zh"], "", f"{g['intro']['en']} {g['note']['en']}", ""]
    for m in g["metrics"]:
        levels = "; ".join(f"**{lv['score']}** {lv['zh']} / {lv['en']}" for lv in m["levels"])
        parts += [f"**{m['zh']} {m['en']}**: {m['description']['zh']}", "", m["description"]["en"], "", levels, ""]
    parts += [f"**标记 Flag**: {g['flag']['zh']} {g['flag']['en']}"]
    return "\n".join(parts)


def labelling_guidelines_markdown() -> str:
    g = guidelines()["labelling"]
    defs = "\n".join(f"- **{d.zh} {d.en}**: {d.definition}" for d in DISTORTIONS.values())
    return f"{g['intro']['zh']}\n\n{g['intro']['en']}\n\n{defs}"


def normalize_distortions(new: Sequence[str] | None, old: Sequence[str] | None) -> list[str]:
    """Keep "none" exclusive: ticking "none" clears the types, ticking a type clears "none".

    >>> normalize_distortions(["none", "labeling"], ["none"])
    ['labeling']
    """
    new, old = list(new or []), list(old or [])
    if NONE in new and len(new) > 1:
        return [NONE] if NONE not in old else [d for d in new if d != NONE]
    return new


def progress_text(progress: Mapping[str, int]) -> str:
    """ "12 / 100 done · 1 skipped" from the store's {"done", "skipped", "total"}."""
    return f"{progress['done']} / {progress['total']} done · {progress['skipped']} skipped"


def saved_text(fields: Mapping[str, Any]) -> str:
    """The confirmation shown only after the store returned: which fields, and when."""
    shown = ", ".join(f"{k} = {v!r}" if not isinstance(v, str) else f"{k} ({len(v)} chars)" for k, v in fields.items())
    return f"✓ saved 已保存: {shown} · {time.strftime('%H:%M:%S')}"


def error_text(exc: Exception) -> str:
    return f"✗ not saved 未保存: {exc}"


@dataclass(frozen=True)
class ItemView:
    """What a rating or labelling page shows for one item. There is no backbone field, on purpose."""

    item_id: str
    heading: str
    question: str
    description: str
    response: str
    pieces: list[tuple[str, str | None]] | None
    saved: dict[str, Any]


def item_view(item: Mapping[str, Any] | None, highlight: bool = False) -> ItemView | None:
    """Display values of a store item; `highlight` adds the section pieces (off by default: may bias scores)."""
    if item is None:
        return None
    response = str(item.get("response") or "")
    return ItemView(
        item_id=str(item["item_id"]),
        heading=f"Item 条目 {item['position']} / {item['total']}",
        question=str(item.get("question") or ""),
        description=str(item.get("description") or ""),
        response=response,
        pieces=highlight_pieces(response) if highlight and response else None,
        saved=dict(item.get("saved") or {}),
    )


def neighbour(listing: Sequence[Mapping[str, Any]], item_id: str | None, step: int) -> str | None:
    """The item `step` places away in the rater's order (prev: -1, next: +1), or None past either end.

    >>> neighbour([{"item_id": "a", "position": 1}, {"item_id": "b", "position": 2}], "a", 1)
    'b'
    """
    order = [row["item_id"] for row in sorted(listing, key=lambda r: r["position"])]
    if item_id not in order:  # from the "all done" page: prev opens the last item, next the first
        return (order[-1] if step < 0 else order[0]) if order else None
    i = order.index(item_id) + step
    return order[i] if 0 <= i < len(order) else None


def edge_text(step: int) -> str:
    return "This is the first item. 已是第一条。" if step < 0 else "This is the last item. 已是最后一条。"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def export_file(rows: Sequence[Mapping[str, Any]], kind: str, fmt: str, folder: str | os.PathLike) -> Path:
    """Ratings or labels as one JSONL or CSV file under `folder` (annotation.export's writer: the CLI's bytes)."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"export format must be 'jsonl' or 'csv' for a download, got {fmt!r}")
    return write_export([dict(r) for r in rows], kind, fmt, Path(folder) / f"{kind}.{fmt}")[0]


def table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) for a Dataframe: the union of keys in first-seen order, cells as text."""
    headers: list[str] = []
    for r in rows:
        headers += [k for k in r if k not in headers]
    return headers, [[_cell(r.get(h)) for h in headers] for r in rows]


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def agreement_markdown(agreement: Mapping[str, Any]) -> str:
    """The store's agreement dict ({section: {name: {stat: value}}}) as one Markdown table per section."""
    parts = []
    for section, named in agreement.items():
        stats: list[str] = []
        for row in named.values():
            stats += [k for k in row if k not in stats]
        lines = [f"**{section}**", "", "| | " + " | ".join(stats) + " |", "|---" * (len(stats) + 1) + "|"]
        lines += [
            f"| {name} | " + " | ".join(_number(row.get(k)) for k in stats) + " |" for name, row in named.items()
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) or "No ratings or labels yet."
