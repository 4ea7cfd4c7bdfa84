"""The shipped sample set: size, shape, lengths in the paper's range, gold annotations, originality."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from cbt.io import load_sample
from cbt.taxonomy import SECTION_IDS

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"chars_per_question": 21.6, "chars_per_description": 168.9, "chars_per_response": 522.8}


def test_sample_size_shape_and_gold() -> None:
    records = load_sample()
    assert len(records) >= 300
    for r in records:
        assert r.sections, r.id
        assert r.distortions is not None, r.id
        present = [s.section for s in r.sections]
        assert len(present) >= 4 and len(set(present)) == len(present), r.id
        covered = sum(s.end - s.start for s in r.sections)
        assert covered >= 0.95 * len(r.answer.replace("\n", "")), r.id
    assert set().union(*(set(s.section for s in r.sections) for r in records)) == set(SECTION_IDS)


def test_sample_has_the_hard_cases_and_topic_spread() -> None:
    records = load_sample()
    n_dist = Counter(len(r.distortions or []) for r in records)
    assert n_dist[0] >= 0.3 * len(records) and n_dist[2] >= 20
    unusual = [
        r
        for r in records
        if [s.section for s in r.sections] != sorted((s.section for s in r.sections), key=SECTION_IDS.index)
    ]
    assert len(unusual) >= 5
    assert len({r.topic for r in records}) >= 9
    assert sum(r.extra.get("style") == "prose" for r in records) >= 0.7 * len(records)


def test_stats_cli_on_sample_is_in_the_papers_range() -> None:
    out = subprocess.run([sys.executable, "-m", "cbt", "stats", "--json"], capture_output=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    t1 = json.loads(out.stdout)["table1"]
    for key, paper in PAPER.items():
        assert 0.6 * paper <= t1[key] <= 1.4 * paper, (key, t1[key])
    assert 0.35 <= t1["share_naming_distortion"] <= 0.75


def test_sample_copies_nothing_from_the_shared_data(autocbt_dir: Path) -> None:
    """No 16-character run of any sample text appears in the PsyQA-derived real data."""
    corpus = []
    for name in ("psyqa_balanced_cbtllm.json", "psyqa_balanced_qwen_prompt.json"):
        for item in json.loads((autocbt_dir / name).read_text(encoding="utf-8")):
            corpus += [item["question"], item["description"], item["cbt_answer"]]
            corpus += [a["answer_text"] for a in item["answers"]]
    grams = {t[i : i + 16] for t in corpus for i in range(len(t) - 15)}
    for r in load_sample():
        for text in (r.question, r.description, r.answer):
            assert not any(text[i : i + 16] in grams for i in range(len(text) - 15)), r.id
