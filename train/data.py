"""Instruction data for LoRA SFT: section 4.1's triads, tokenized with the prompt masked out of the loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cbt.prompter import Prompter
from cbt.schema import AlpacaRecord

IGNORE = -100


def encode(record: AlpacaRecord, tokenizer: Any, prompter: Prompter, max_length: int) -> dict[str, list[int]]:
    """input_ids and labels where every prompt token's label is IGNORE; the answer ends with EOS.

    When too long, the answer is cut (the prompt is kept whole, up to max_length // 2 tokens).
    """
    prompt = prompter.model_prompt(record.instruction, record.input)
    p_ids = tokenizer(prompt)["input_ids"]  # special tokens (BOS) exactly as the hf backend encodes prompts
    a_ids = [*tokenizer(record.output, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    p_ids = p_ids[: max_length // 2]
    a_ids = a_ids[: max_length - len(p_ids)]
    return {"input_ids": p_ids + a_ids, "labels": [IGNORE] * len(p_ids) + a_ids}


@dataclass
class Collator:
    """Right-pads a batch for training; padded positions carry no loss and no attention."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids, labels, mask = [], [], []
        for f in features:
            pad = width - len(f["input_ids"])
            ids.append(f["input_ids"] + [self.pad_token_id] * pad)
            labels.append(f["labels"] + [IGNORE] * pad)
            mask.append([1] * len(f["input_ids"]) + [0] * pad)
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
