"""LoRA supervised fine-tuning of a causal LM on CBT QA instruction data, as the paper's section 4.

    python -m cbt train --config configs/train/qwen2.5-7b.yaml
    python -m cbt train --config configs/train/mini.yaml epochs=1 output_dir=outputs/try
    accelerate launch -m cbt train --config ...          # several GPUs / processes (DDP)

Steps: split the data (seeded 90/10), build section 4.1's triads, tokenize with the prompt masked out of
the loss, wrap the base model with LoRA (peft), train with transformers' Trainer (cosine schedule,
gradient accumulation, fp16 on GPU, checkpoints, resume), evaluate the loss on the test split, save the
adapter, a loss curve (PNG) and a summary (JSON).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any

from cbt.io import SAMPLE_PATH, load_cbtqa
from cbt.prompter import Prompter
from cbt.split import split_records
from train.config import TrainConfig
from train.data import IGNORE, Collator, encode

log = logging.getLogger("train")


class ListDataset:
    """A map-style dataset over pre-tokenized examples (what Trainer needs)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def build_datasets(cfg: TrainConfig, tokenizer: Any) -> tuple[ListDataset, ListDataset]:
    records = load_cbtqa(SAMPLE_PATH if cfg.data == "sample" else cfg.data)
    train_recs, test_recs = split_records(records, test_ratio=cfg.test_ratio, seed=cfg.seed)
    if cfg.limit_train_records:
        train_recs = train_recs[: cfg.limit_train_records]
    if cfg.max_eval_records:
        test_recs = test_recs[: cfg.max_eval_records]
    prompter = Prompter(cfg.instruction_lang)

    def rows(recs: list) -> list[dict[str, list[int]]]:
        return [encode(prompter.to_alpaca(r), tokenizer, prompter, cfg.max_length) for r in recs]

    return ListDataset(rows(train_recs)), ListDataset(rows(test_recs))


def load_model(cfg: TrainConfig) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if (cuda and cfg.bf16) else torch.float16 if (cuda and cfg.fp16) else torch.float32
    model_id = os.path.expanduser(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return tokenizer, model


def add_lora(cfg: TrainConfig, model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA r=%d on %s: %d trainable parameters", cfg.lora_r, cfg.lora_targets, trainable)
    return model


def trim_lm_head(model: Any, datasets: list[ListDataset]) -> Any:
    """Train against an LM head cut to the tokens the data uses (labels remapped); returns the old head.

    LoRA never touches the head, so the saved adapter works with the untouched base model. On a
    262k-token vocabulary this makes a CPU step about three times faster. The loss is computed by
    TrimmedHeadTrainer, so the model's config (and what peft saves) never changes.
    """
    import torch

    used = sorted({t for ds in datasets for row in ds.rows for t in row["labels"] if t != IGNORE})
    old_head = model.get_output_embeddings()
    new_head = torch.nn.Linear(old_head.in_features, len(used), bias=False, dtype=old_head.weight.dtype)
    new_head.weight = torch.nn.Parameter(old_head.weight.detach()[used].clone(), requires_grad=False)
    model.set_output_embeddings(new_head)
    remap = {t: i for i, t in enumerate(used)}
    for ds in datasets:
        for row in ds.rows:
            row["labels"] = [remap.get(t, IGNORE) for t in row["labels"]]
    log.info("LM head trimmed to %d of %d tokens for training", len(used), old_head.weight.shape[0])
    return old_head


def trimmed_head_trainer() -> type:
    """A Trainer whose loss is next-token cross-entropy over the (trimmed) logits, labels already remapped."""
    import torch
    from transformers import Trainer

    class TrimmedHeadTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits[:, :-1, :].float()
            target = labels[:, 1:].to(logits.device)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
            )
            count = num_items_in_batch if num_items_in_batch is not None else (target != IGNORE).sum()
            loss = loss / count
            return (loss, outputs) if return_outputs else loss

    return TrimmedHeadTrainer


def training_args(cfg: TrainConfig, has_eval: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    return TrainingArguments(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a value below 1 is a share of the steps
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        logging_steps=cfg.logging_steps,
        eval_strategy=("steps" if cfg.eval_steps else "epoch") if has_eval else "no",
        eval_steps=cfg.eval_steps or None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        fp16=cfg.fp16 and cuda and not cfg.bf16,
        bf16=cfg.bf16 and cuda,
        seed=cfg.seed,
        report_to=[],
        remove_unused_columns=False,
        dataloader_pin_memory=cuda,
        # several CPU processes (torchrun) talk over gloo; a single process needs no backend
        ddp_backend="gloo" if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        disable_tqdm=False,
    )


def latest_checkpoint(output_dir: str) -> str | None:
    ckpts = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def save_loss_curve(log_history: list[dict[str, Any]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval loss (test split)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train; the CLI and any UI call this with a TrainConfig."""
    from transformers import Trainer, set_seed

    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, model = load_model(cfg)
    train_ds, eval_ds = build_datasets(cfg, tokenizer)
    model = add_lora(cfg, model)
    old_head = trim_lm_head(model.get_base_model(), [train_ds, eval_ds]) if cfg.vocab_trim else None
    trainer_cls = trimmed_head_trainer() if old_head is not None else Trainer
    trainer = trainer_cls(
        model=model,
        args=training_args(cfg, has_eval=len(eval_ds) > 0),
        train_dataset=train_ds,
        eval_dataset=eval_ds if len(eval_ds) else None,
        data_collator=Collator(tokenizer.pad_token_id),
    )
    resume = latest_checkpoint(cfg.output_dir) if cfg.resume else None
    start = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - start
    metrics = trainer.evaluate() if len(eval_ds) else {}
    if old_head is not None:
        model.get_base_model().set_output_embeddings(old_head)
    adapter_dir = out / "adapter"
    if trainer.is_world_process_zero():
        model.save_pretrained(adapter_dir)  # the tokenizer is the base model's: not copied
    summary = {
        "model": cfg.model,
        "train_examples": len(train_ds),
        "eval_examples": len(eval_ds),
        "global_step": trainer.state.global_step,
        "resumed_from": resume,
        "world_size": trainer.args.world_size,
        "train_loss": result.training_loss,
        "eval_loss": metrics.get("eval_loss"),
        "train_seconds": round(seconds, 1),
        "steps_per_s": round(trainer.state.global_step / seconds, 4) if seconds else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "adapter": str(adapter_dir),
    }
    if trainer.is_world_process_zero():
        curve = save_loss_curve(trainer.state.log_history, out / "loss_curve.png")
        summary["loss_curve"] = str(curve) if curve else None
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
