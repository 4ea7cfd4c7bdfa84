"""Any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI), streamed."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from cbt.backends.base import Backend, GenParams, Message


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        if not base_url or not model:
            raise ValueError("an OpenAI-compatible backend needs a base URL and a model name")
        self.base_url, self.model, self.timeout_s = base_url, model, timeout_s
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.client: Any = None

    def load(self) -> None:
        import openai

        self.client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s)

    def stream(self, messages: Sequence[Message], params: GenParams) -> Iterator[str]:
        if self.client is None:
            self.load()
        extra = {"seed": params.seed} if params.seed is not None else {}
        chunks = self.client.chat.completions.create(
            model=self.model,
            messages=list(messages),
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            stream=True,
            **extra,
        )
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
