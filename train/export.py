"""Export: merge a LoRA adapter into its base model, and write the LLaMA-Factory YAML of the same run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from train.config import TrainConfig

# LLaMA-Factory chat templates by backbone family. Our prompts are alpaca-style; Qwen chat models use
# their own. LLaMA-Factory dropped its "baichuan" template after v0.9.4: use "alpaca" (as here) or pin
# llamafactory<=0.9.4 to reproduce the paper's Baichuan-7B run with its original template.
TEMPLATES = {"qwen": "qwen", "baichuan": "alpaca", "llama": "alpaca", "alpaca": "alpaca", "gemma": "alpaca"}


def template_for(model: str) -> str:
    name = model.lower()
    return next((t for key, t in TEMPLATES.items() if key in name), "alpaca")


def merge(base: str, adapter: str, out_dir: str | os.PathLike, trust_remote_code: bool = False) -> Path:
    """Base weights + LoRA deltas as one model folder (loads with plain transformers, no peft)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out = Path(out_dir)
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(
        adapter if (Path(adapter) / "tokenizer_config.json").exists() else base
    ).save_pretrained(out)
    return out


def llamafactory_config(cfg: TrainConfig, dataset_dir: str = "data/llamafactory") -> dict[str, Any]:
    """LLaMA-Factory's train YAML for the same recipe (use `python -m cbt split` to write its data)."""
    return {
        "model_name_or_path": cfg.model,
        "trust_remote_code": cfg.trust_remote_code,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": cfg.lora_dropout,
        "lora_target": ",".join(cfg.lora_targets),
        "dataset_dir": dataset_dir,
        "dataset": "cbt_qa_train",
        "template": template_for(cfg.model),
        "cutoff_len": cfg.max_length,
        "output_dir": cfg.output_dir,
        "per_device_train_batch_size": cfg.per_device_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.epochs,
        "lr_scheduler_type": cfg.lr_scheduler,
        "fp16": cfg.fp16,
        "logging_steps": cfg.logging_steps,
        "save_steps": cfg.save_steps,
        "seed": cfg.seed,
    }


def write_llamafactory_yaml(cfg: TrainConfig, path: str | os.PathLike) -> Path:
    from cbt.io import atomic_write_text

    text = "# LLaMA-Factory: llamafactory-cli train THIS_FILE\n" + yaml.safe_dump(
        llamafactory_config(cfg), allow_unicode=True, sort_keys=False
    )
    return atomic_write_text(path, text)
