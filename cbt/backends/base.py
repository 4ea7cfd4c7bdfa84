"""The backend interface every backbone implements: stream one reply, or generate a batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypedDict


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass
class GenParams:
    """Sampling settings shared by every backend (each uses what it supports)."""

    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 8192:
            raise ValueError("max_new_tokens must be between 1 and 8192")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")


class Backend(ABC):
    """A backbone that answers chat messages. `stream` yields text pieces; joined, they are the reply."""

    name: str = "backend"

    def load(self) -> None:  # noqa: B027 - optional hook: heavy backends load weights here
        """Load weights or connect; called once, in the background, before the first request."""

    @abstractmethod
    def stream(self, messages: Sequence[Message], params: GenParams) -> Iterator[str]:
        """Yield the reply in pieces as it is produced."""

    def generate(self, messages: Sequence[Message], params: GenParams) -> str:
        return "".join(self.stream(messages, params))

    def generate_batch(self, batch: Sequence[Sequence[Message]], params: GenParams) -> list[str]:
        """One reply per conversation; backends that can batch override this."""
        return [self.generate(m, params) for m in batch]


def last_user_message(messages: Sequence[Message]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    raise ValueError("no user message to answer")
