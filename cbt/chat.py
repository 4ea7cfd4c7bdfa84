"""One chat turn: the crisis check first, then the model's streamed reply, segmented as it streams.

The UI and the `chat` API endpoint both call `respond`; nothing here imports gradio. Order of checks (see
cbt/limits.py): crisis, then the length cap, then the rate limit, then the backbone, then the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from cbt.backends.base import Backend, GenParams, Message
from cbt.browse import distortion_names, highlight_pieces
from cbt.distortions import extract_distortions
from cbt.limits import MAX_MESSAGE_CHARS, InputTooLong, check_length, crisis_scan_text
from cbt.safety import assess, crisis_reply, looks_english
from cbt.sections import segment

RESEGMENT_EVERY_S = 0.15
__all__ = ["MAX_MESSAGE_CHARS", "InputTooLong", "Turn", "check_message", "crisis_turn", "respond"]


@dataclass
class Turn:
    """The state of the reply being shown: text so far, its highlighted pieces and what it names."""

    reply: str
    pieces: list[tuple[str, str | None]] = field(default_factory=list)
    distortions: list[str] = field(default_factory=list)
    structure_score: float = 0.0
    crisis: bool = False
    crisis_reasons: list[str] = field(default_factory=list)
    done: bool = False


def check_message(message: str, max_chars: int | None = None) -> str:
    """The stripped message; ValueError when empty, InputTooLong over the cap (CBT_MAX_MESSAGE_CHARS)."""
    text = non_empty(message)
    return check_length(text, max_chars)


def non_empty(message: str) -> str:
    text = (message or "").strip()
    if not text:
        raise ValueError("please type a message")
    return text


def crisis_turn(message: str) -> Turn | None:
    """The fixed crisis reply when the message signals risk; None otherwise. Runs before any model."""
    result = assess(crisis_scan_text(message))
    if not result.crisis:
        return None
    text = crisis_reply("en" if looks_english(message) else "zh")
    return Turn(text, [(text, None)], crisis=True, crisis_reasons=result.reasons, done=True)


def build_messages(system_prompt: str, history: Sequence[Message], message: str) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    msgs += [m for m in history if m["role"] in ("user", "assistant") and m["content"].strip()]
    msgs.append({"role": "user", "content": message})
    return msgs


def analysed(reply: str, done: bool) -> Turn:
    seg = segment(reply)
    return Turn(
        reply,
        highlight_pieces(reply, seg.spans),
        distortion_names(extract_distortions(reply)),
        seg.structure_score,
        done=done,
    )


def respond(
    message: str,
    history: Sequence[Message],
    backend: Backend | Callable[[], Backend],
    system_prompt: str,
    params: GenParams,
    max_chars: int | None = None,
    allow: Callable[[], None] | None = None,
) -> Iterator[Turn]:
    """Yield the reply as it grows; a crisis message yields only the fixed crisis reply.

    The crisis check comes before everything that can refuse: an over-long or rate-limited crisis message, or one
    sent while no backbone is ready, still gets the crisis reply. `backend` may be a function that returns it (or
    raises why it cannot), called only after the checks; `allow` raises RateLimited when the caller is over its rate.
    """
    text = non_empty(message)
    crisis = crisis_turn(text)
    if crisis is not None:
        yield crisis
        return
    check_length(text, max_chars)
    if allow is not None:
        allow()
    if not isinstance(backend, Backend) and callable(backend):
        backend = backend()
    reply, last = "", 0.0
    for piece in backend.stream(build_messages(system_prompt, history, text), params):
        reply += piece
        now = time.monotonic()
        if now - last >= RESEGMENT_EVERY_S:
            last = now
            yield analysed(reply, done=False)
    yield analysed(reply, done=True)


def flatten_history(history: Sequence[dict] | None) -> list[Message]:
    """Chat history from the UI as plain messages (Gradio 6 may send content as a list of parts)."""
    out: list[Message] = []
    for m in history or []:
        content = m.get("content", "")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        elif not isinstance(content, str):
            content = str(content)
        if m.get("role") in ("user", "assistant"):
            out.append({"role": m["role"], "content": content})
    return out
