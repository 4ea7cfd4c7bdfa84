"""Durable blind A/B votes from the comparison tab: an append-only, fsynced JSONL in the data directory.

The annotation store (SQLite / PostgreSQL) will take these over; until then every confirmed vote is on
disk before the UI says so.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def data_dir() -> Path:
    """CBT_DATA_DIR, or /data on a Space with persistent storage, or ./data."""
    env = os.environ.get("CBT_DATA_DIR")
    if env:
        return Path(env)
    return Path("/data") if Path("/data").is_dir() and os.access("/data", os.W_OK) else Path("data")


def save_vote(vote: dict[str, Any], path: str | os.PathLike | None = None) -> Path:
    """Append one vote ({question, columns: [backbone...], winner: backbone | "tie"}) and fsync it."""
    if vote.get("winner") not in (*vote.get("columns", []), "tie"):
        raise ValueError("winner must be one of the compared backbones or 'tie'")
    target = Path(path) if path else data_dir() / "ab_votes.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({**vote, "t": time.time()}, ensure_ascii=False) + "\n"
    with _LOCK, open(target, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return target


def load_votes(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    target = Path(path) if path else data_dir() / "ab_votes.jsonl"
    if not target.exists():
        return []
    with open(target, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.endswith("\n") and line.strip()]
