"""Shared fixtures: paths to the real data sets in ../shared and the gold sets in tests/gold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLD = Path(__file__).parent / "gold"
SHARED = Path(os.environ.get("CBT_SHARED_DIR", ROOT.parent / "shared"))
AUTOCBT = SHARED / "data" / "autocbt-psyqa-cbt-responses-zh"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` runs only with RUN_SLOW=1; `gpu` only where CUDA is present."""
    run_slow = os.environ.get("RUN_SLOW") == "1"
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: set RUN_SLOW=1"))
        if "gpu" in item.keywords:
            try:
                import torch

                has_cuda = torch.cuda.is_available()
            except ImportError:
                has_cuda = False
            if not has_cuda:
                item.add_marker(pytest.mark.skip(reason="gpu: no CUDA device"))


@pytest.fixture(scope="session")
def autocbt_dir() -> Path:
    if not AUTOCBT.is_dir():
        pytest.skip(f"real data not found at {AUTOCBT} (set CBT_SHARED_DIR)")
    return AUTOCBT


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
