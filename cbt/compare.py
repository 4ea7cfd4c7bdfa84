"""Side-by-side comparison: one question to several backbones at once, with a blind A/B vote."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cbt.backends.base import GenParams
from cbt.backends.registry import BackendManager
from cbt.chat import analysed, crisis_turn, non_empty
from cbt.limits import check_length
from cbt.prompter import Prompter


@dataclass
class Column:
    backbone: str
    reply: str = ""
    pieces: list[tuple[str, str | None]] = field(default_factory=list)
    structure_score: float = 0.0
    chars: int = 0
    latency_s: float = 0.0
    error: str = ""


def ask(manager: BackendManager, backbone: str, question: str, description: str, params: GenParams) -> Column:
    """One backbone's answer, timed; a failure becomes the column's error, not an exception."""
    start = time.perf_counter()
    prompter = Prompter()
    messages = [
        {"role": "system", "content": prompter.instruction},
        {"role": "user", "content": prompter.input_text(question, description)},
    ]
    try:
        reply = manager.get(backbone).generate(messages, params)
    except Exception as exc:  # shown in the column; the others keep working
        return Column(backbone, error=f"{type(exc).__name__}: {exc}"[:300], latency_s=time.perf_counter() - start)
    turn = analysed(reply, done=True)
    return Column(backbone, reply, turn.pieces, turn.structure_score, len(reply), time.perf_counter() - start)


def compare(
    manager: BackendManager,
    backbones: Sequence[str],
    question: str,
    description: str,
    params: GenParams,
    allow: Callable[[], None] | None = None,
) -> tuple[list[Column], str | None]:
    """Columns for 2-4 backbones, asked concurrently; or no columns and the crisis reply.

    As in chat: the crisis check first, then the length cap, the backbone count and the rate limit (`allow`).
    """
    text = non_empty(f"{question or ''}\n{description or ''}")
    crisis = crisis_turn(text)
    if crisis is not None:
        return [], crisis.reply
    check_length(text)
    if not 2 <= len(backbones) <= 4:
        raise ValueError("choose 2 to 4 backbones to compare")
    if allow is not None:
        allow()
    with ThreadPoolExecutor(max_workers=len(backbones)) as pool:
        cols = list(pool.map(lambda b: ask(manager, b, question, description, params), backbones))
    return cols, None


def blind_order(backbones: Sequence[str], seed: int | None = None) -> list[str]:
    """A shuffled order so the voter cannot tell which column is which backbone."""
    order = list(backbones)
    random.Random(seed).shuffle(order)
    return order
