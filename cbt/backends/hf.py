"""A transformers causal LM (local path or hub id), optionally with a LoRA adapter, streamed on CPU or GPU.

Prompts use the same alpaca template as training (cbt.prompter), so a fine-tuned model sees in the app
what it saw in training. Batches are left-padded so every row's answer starts where its prompt ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from cbt.backends.base import Backend, GenParams, Message
from cbt.prompter import Prompter

# A base model prompted with the alpaca template tends to open a new "### ..." section after its answer;
# the answer ends there.
STOP_MARKERS = ("\n###", "### ")


def cut_at_stop(text: str) -> tuple[str, bool]:
    """The text before the first stop marker, and whether one was found.

    >>> cut_at_stop("回答。\\n### Explanation: ...")
    ('回答。', True)
    """
    cuts = [i for i in (text.find(m) for m in STOP_MARKERS) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        revision: str | None = None,
        trust_remote_code: bool = False,
        max_input_tokens: int = 1536,
    ) -> None:
        self.model_id, self.adapter, self.device_pref, self.dtype = model, adapter, device, dtype
        self.revision, self.trust_remote_code, self.max_input_tokens = revision, trust_remote_code, max_input_tokens
        self.prompter = Prompter()
        self.model: Any = None
        self.tokenizer: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device_pref
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {"auto": torch.float16 if device == "cuda" else torch.float32, "float32": torch.float32,
                 "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]  # fmt: skip
        kw = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        tokenizer = AutoTokenizer.from_pretrained(self.model_id, **kw)
        model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=dtype, **kw)
        if self.adapter:
            from peft import PeftModel

            # merged once at load: the same outputs as the adapter, without its extra matmuls per token
            model = PeftModel.from_pretrained(model, self.adapter).merge_and_unload()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer, self.model, self.device = tokenizer, model.to(device).eval(), device

    def _ensure(self) -> None:
        with self._lock:
            if self.model is None:
                self.load()

    def _gen_kwargs(self, params: GenParams) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "stop_strings": list(STOP_MARKERS),
            "tokenizer": self.tokenizer,
            "max_new_tokens": params.max_new_tokens,
            "repetition_penalty": params.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            kw.update(do_sample=False)
        if params.seed is not None:
            import torch

            torch.manual_seed(params.seed)
        return kw

    def _encode(self, prompts: list[str]) -> Any:
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_input_tokens
        )
        return enc.to(self.device)

    def stream(self, messages: Sequence[Message], params: GenParams) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        self._ensure()
        inputs = self._encode([self.prompter.chat_prompt(messages)])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs = {**inputs, **self._gen_kwargs(params), "streamer": streamer}
        thread = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        thread.start()
        sent, text = 0, ""
        try:
            for piece in streamer:
                text += piece
                # hold back a few characters: a stop marker may be split across pieces
                kept, stopped = cut_at_stop(text)
                ready = len(kept) if stopped else max(sent, len(kept) - 4)
                if ready > sent:
                    yield kept[sent:ready]
                    sent = ready
                if stopped:
                    break
            else:
                if len(text) > sent:
                    yield text[sent:]
        finally:
            thread.join()

    def generate_batch(self, batch: Sequence[Sequence[Message]], params: GenParams) -> list[str]:
        import torch

        self._ensure()
        inputs = self._encode([self.prompter.chat_prompt(m) for m in batch])
        with torch.no_grad():
            out = self.model.generate(**inputs, **self._gen_kwargs(params))
        new = out[:, inputs["input_ids"].shape[1] :]
        return [cut_at_stop(t)[0].strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
