"""The append-only, fsynced ledger that makes data-set generation resumable and never pay twice.

Every request is written as `sent` before it leaves and as `result` when it returns; an answer that passed
validation is a `done` event carrying the record, a question given up on is `failed`. Replaying the ledger
after a crash tells which ids are finished, what was spent, and which requests have an unknown outcome
(sent, no result): those are counted as possibly paid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LedgerState:
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # validation attempts per id
    spent_usd: float = 0.0  # billed results + worst-case estimates of unknown outcomes
    requests: int = 0  # requests sent, over every run
    unknown: int = 0  # sent with no result recorded (timeouts, kills)
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Ledger:
    """One JSON object per line; each append is flushed and fsynced before the caller goes on."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def append(self, event: dict[str, Any]) -> None:
        self._fh.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    @staticmethod
    def replay(path: str | os.PathLike) -> LedgerState:
        """State after every complete line; a torn last line (a kill mid-write) is ignored."""
        state = LedgerState()
        p = Path(path)
        if not p.exists():
            return state
        open_requests: dict[int, float] = {}
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                ev = json.loads(line)
                kind = ev["ev"]
                if kind == "sent":
                    state.requests += 1
                    open_requests[ev["req"]] = ev.get("est_usd", 0.0)
                elif kind == "result":
                    open_requests.pop(ev["req"], None)
                    state.spent_usd += ev.get("usd", 0.0)
                    state.prompt_tokens += ev.get("prompt_tokens", 0)
                    state.completion_tokens += ev.get("completion_tokens", 0)
                elif kind == "attempt":
                    state.attempts[ev["id"]] = state.attempts.get(ev["id"], 0) + 1
                elif kind == "done":
                    state.done[ev["id"]] = ev["record"]
                    state.failed.pop(ev["id"], None)
                elif kind == "failed":
                    state.failed[ev["id"]] = ev["reason"]
        state.unknown = len(open_requests)
        state.spent_usd += sum(open_requests.values())
        return state
