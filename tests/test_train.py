"""LoRA training with the tiny model: loss goes down, prompt masked, adapter and merge reproduce, resume, DDP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cbt.backends.base import GenParams
from cbt.backends.hf import HFBackend
from cbt.prompter import Prompter
from cbt.schema import AlpacaRecord
from train.config import load_config
from train.data import IGNORE, encode
from train.export import llamafactory_config, merge, write_llamafactory_yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "train" / "tiny.yaml"
GREEDY = GenParams(max_new_tokens=16, temperature=0.0)
ASK = [{"role": "user", "content": "考研失败了，我是不是一无是处？"}]


def tiny_cfg(model: Path, out: Path, *more: str):
    return load_config(TINY, [f"model={model}", f"output_dir={out}", *more])


def mean_loss(model_dir: Path, adapter: Path | None, cfg) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.sft import build_datasets

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    train_ds, _ = build_datasets(cfg, tok)
    losses = []
    with torch.no_grad():
        for row in train_ds.rows:
            out = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]]))
            losses.append(out.loss.item())
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, object]:
    from train.sft import run

    out = tmp_path_factory.mktemp("run")
    cfg = tiny_cfg(tiny_model_dir, out, "max_steps=24", "learning_rate=5e-3", "save_steps=12")
    return out, run(cfg), cfg


def test_prompt_tokens_carry_no_loss(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    p = Prompter()
    rec = AlpacaRecord(p.instruction, "我总是失眠\n最近压力很大", "你可以试着每天固定时间起床。")
    row = encode(rec, tok, p, 512)
    n_prompt = len(tok(p.model_prompt(rec.instruction, rec.input))["input_ids"])  # as the backend encodes it
    assert row["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:] and row["labels"][-1] == tok.eos_token_id
    short = encode(rec, tok, p, 24)  # prompt kept to half, the answer cut to fit
    assert (
        len(short["input_ids"]) == 24 and short["labels"][:12] == [IGNORE] * 12 and IGNORE not in short["labels"][12:]
    )


def test_a_few_steps_lower_the_loss(trained: tuple, tiny_model_dir: Path) -> None:
    out, summary, cfg = trained
    assert summary["global_step"] == 24 and summary["eval_loss"] is not None
    assert mean_loss(tiny_model_dir, out / "adapter", cfg) < mean_loss(tiny_model_dir, None, cfg) - 0.1
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert json.loads((out / "train_summary.json").read_text())["train_examples"] == 8


def test_saved_adapter_and_merged_model_reproduce_greedy_output(
    trained: tuple, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _ = trained
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    live = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out / "adapter").eval()
    prompt = Prompter().chat_prompt(ASK)
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        ref = live.generate(
            **ids, max_new_tokens=16, do_sample=False, repetition_penalty=1.1, pad_token_id=tok.pad_token_id
        )
    expected = tok.decode(ref[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    reloaded = HFBackend(str(tiny_model_dir), adapter=str(out / "adapter"), device="cpu").generate_batch([ASK], GREEDY)
    merged_dir = merge(str(tiny_model_dir), str(out / "adapter"), tmp_path / "merged")
    merged = HFBackend(str(merged_dir), device="cpu").generate_batch([ASK], GREEDY)
    base = HFBackend(str(tiny_model_dir), device="cpu").generate_batch([ASK], GREEDY)
    assert reloaded == merged == [expected] and base != reloaded


def test_resume_continues_the_step_count(tiny_model_dir: Path, tmp_path: Path) -> None:
    from train.sft import run

    first = run(tiny_cfg(tiny_model_dir, tmp_path, "max_steps=3"))
    assert first["global_step"] == 3 and first["resumed_from"] is None
    second = run(tiny_cfg(tiny_model_dir, tmp_path, "max_steps=6"))
    assert second["resumed_from"].endswith("checkpoint-3") and second["global_step"] == 6


def test_trimmed_lm_head_trains_and_the_adapter_fits_the_full_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from train.sft import run

    summary = run(tiny_cfg(tiny_model_dir, tmp_path, "vocab_trim=true", "max_steps=4"))
    assert summary["global_step"] == 4
    reply = HFBackend(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), device="cpu").generate_batch(
        [ASK], GREEDY
    )
    assert reply[0]


def test_two_process_distributed_run_finishes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Two CPU processes (DDP over gloo) through torch.distributed.run, the launcher accelerate wraps."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = [*launcher, "-m", "cbt", "train", "--config", str(TINY), f"model={tiny_model_dir}", f"output_dir={tmp_path}"]
    cmd.append("max_steps=4")
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 4
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert out.stdout.count('"world_size": 2') == 1  # one summary, from rank 0


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_training_yaml_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.model and cfg.output_dir
    if path.name.startswith(("chinese", "qwen-7b", "baichuan")):  # the paper's recipe
        assert (cfg.learning_rate, cfg.lr_scheduler, cfg.epochs, cfg.grad_accum, cfg.fp16) == (
            5e-5,
            "cosine",
            3,
            4,
            True,
        )


def test_config_errors_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\noutput_dir: o\nlearnin_rate: 1\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_config(bad)
    with pytest.raises(ValueError, match="not a training setting"):
        load_config(TINY, ["nope=1"])
    cfg = load_config(TINY, ["lora_targets=q_proj,k_proj", "fp16=false", "epochs=2"])
    assert cfg.lora_targets == ["q_proj", "k_proj"] and cfg.fp16 is False and cfg.epochs == 2.0


def test_llamafactory_yaml_for_the_same_run(tmp_path: Path) -> None:
    cfg = load_config(TINY, ["model=baichuan-inc/Baichuan-7B"])
    lf = llamafactory_config(cfg)
    assert lf["template"] == "alpaca" and lf["dataset"] == "cbt_qa_train" and lf["finetuning_type"] == "lora"
    path = write_llamafactory_yaml(load_config(TINY, ["model=Qwen/Qwen-7B"]), tmp_path / "lf.yaml")
    assert yaml.safe_load(path.read_text())["template"] == "qwen"
