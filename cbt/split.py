"""The seeded 90/10 train/test split and the export LLaMA-Factory reads.

The split ranks ids by a seeded hash, so it depends only on the ids and the seed: input order does not
matter, and adding records moves few existing ones across the boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from cbt.io import write_cbtqa, write_json
from cbt.prompter import Prompter
from cbt.schema import CBTRecord

DEFAULT_SEED = 42
DEFAULT_TEST_RATIO = 0.1


def _rank(seed: int, rid: str) -> str:
    return hashlib.sha256(f"{seed}\x00{rid}".encode()).hexdigest()


def split_records(
    records: Sequence[CBTRecord], test_ratio: float = DEFAULT_TEST_RATIO, seed: int = DEFAULT_SEED
) -> tuple[list[CBTRecord], list[CBTRecord]]:
    """Split into (train, test) with round(n * test_ratio) test records; each keeps the input order.

    >>> recs = [CBTRecord(str(i), "q", "d", "a") for i in range(20)]
    >>> train, test = split_records(recs)
    >>> len(train), len(test), set(r.id for r in train) & set(r.id for r in test)
    (18, 2, set())
    """
    if not 0.0 < test_ratio < 1.0:
        raise ValueError(f"test_ratio must be between 0 and 1, got {test_ratio}")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique to split")
    n_test = round(len(records) * test_ratio)
    test_ids = set(sorted(ids, key=lambda rid: _rank(seed, rid))[:n_test])
    train = [r for r in records if r.id not in test_ids]
    test = [r for r in records if r.id in test_ids]
    return train, test


def dataset_info(name: str) -> dict:
    """The dataset_info.json entries that let LLaMA-Factory train on our alpaca files."""
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    return {
        f"{name}_{part}": {"file_name": f"{name}_{part}.json", "formatting": "alpaca", "columns": columns}
        for part in ("train", "test")
    }


def export_split(
    train: Sequence[CBTRecord],
    test: Sequence[CBTRecord],
    out_dir: str | Path,
    name: str = "cbt_qa",
    prompter: Prompter | None = None,
) -> dict[str, Path]:
    """Write train/test JSONL (our records), alpaca JSON (the paper's triads) and dataset_info.json."""
    prompter = prompter or Prompter()
    out = Path(out_dir)
    written = {}
    for part, rows in (("train", train), ("test", test)):
        written[f"{part}_jsonl"] = write_cbtqa(out / f"{part}.jsonl", rows)
        alpaca = [prompter.to_alpaca(r).to_dict() for r in rows]
        written[f"{part}_alpaca"] = write_json(out / f"{name}_{part}.json", alpaca)
    written["dataset_info"] = write_json(out / "dataset_info.json", dataset_info(name))
    return written
