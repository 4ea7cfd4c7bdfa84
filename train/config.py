"""The LoRA fine-tuning recipe as one dataclass, loaded from YAML with `key=value` overrides."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import yaml

from cbt.textutil import coerce_override


@dataclass
class TrainConfig:
    """Defaults are the paper's recipe (section 4.3): lr 5e-5, cosine, 3 epochs, grad-accum 4, fp16 on GPU."""

    model: str = field(metadata={"help": "base causal LM: hub id or local folder"})
    output_dir: str = field(metadata={"help": "checkpoints, the adapter, loss curve and logs go here"})
    data: str = field(default="sample", metadata={"help": "CBT QA file, or 'sample' for the shipped set"})
    seed: int = 42
    test_ratio: float = 0.1
    instruction_lang: str = "en"
    max_length: int = 1024
    learning_rate: float = 5e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    epochs: float = 3.0
    max_steps: int = -1
    per_device_batch_size: int = 1
    grad_accum: int = 4
    fp16: bool = field(default=True, metadata={"help": "used only where CUDA is available"})
    bf16: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    logging_steps: int = 10
    eval_steps: int = 0
    save_steps: int = 200
    save_total_limit: int = 3
    resume: bool = field(default=True, metadata={"help": "continue from the newest checkpoint in output_dir"})
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    max_eval_records: int = 0
    limit_train_records: int = 0
    vocab_trim: bool = field(default=False, metadata={"help": "cut embedding/LM head to the tokens the data uses"})
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if self.grad_accum < 1 or self.per_device_batch_size < 1:
            raise ValueError("grad_accum and per_device_batch_size must be at least 1")
        if self.lora_r < 1:
            raise ValueError("lora_r must be at least 1")
        if self.instruction_lang not in ("en", "zh"):
            raise ValueError("instruction_lang must be en or zh")


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """YAML, then `key=value` overrides (typed like the field they set); unknown keys are errors."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}")
    defaults = {
        f.name: f.default
        if f.default is not MISSING
        else (f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
        for f in fields(TrainConfig)
    }
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not key=value")
        key, value = item.split("=", 1)
        if key not in names:
            raise ValueError(f"override '{key}' is not a training setting")
        current = data.get(key, defaults.get(key))
        data[key] = coerce_override(value, current if current is not None else "")
    return TrainConfig(**data)
