"""Loaders: good files, each kind of bad line reported as file:line, atomic writes that survive a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cbt.io import (
    DataError,
    load_alpaca,
    load_cbtqa,
    load_psyqa,
    load_questions,
    write_cbtqa,
    write_jsonl,
)
from cbt.schema import CBTRecord, SectionSpan

GOOD = {"id": "a1", "question": "为什么我总是失眠？", "description": "最近压力很大。", "answer": "我能理解你。"}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_and_json_array_give_the_same_records(tmp_path: Path) -> None:
    rows = [
        GOOD,
        {
            **GOOD,
            "id": 2,
            "distortions": ["mind_reading"],
            "sections": [{"section": "validation", "start": 0, "end": 5}],
        },
    ]
    a = load_cbtqa(write_lines(tmp_path / "a.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows]))
    b_path = tmp_path / "b.json"
    b_path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    b = load_cbtqa(b_path)
    assert a == b
    assert a[1].id == "2" and a[1].distortions == ["mind_reading"]
    assert a[1].sections == [SectionSpan("validation", 0, 5)]


def test_blank_lines_are_allowed_and_extra_fields_kept(tmp_path: Path) -> None:
    recs = load_cbtqa(write_lines(tmp_path / "x.jsonl", ["", json.dumps({**GOOD, "model": "m"}), "  "]))
    assert len(recs) == 1 and recs[0].extra == {"model": "m"}
    assert recs[0].to_dict()["model"] == "m"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"id": "b", "question": "q"', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "answer"} | {"id": "b"}), "missing field 'answer'"),
        (json.dumps({**GOOD, "id": "b", "question": 5}), "field 'question' must be a string"),
        (json.dumps({**GOOD, "id": "b", "answer": "  "}), "field 'answer' is empty"),
        (json.dumps({**GOOD, "id": "b", "distortions": ["nope"]}), "unknown id(s) ['nope']"),
        (json.dumps({**GOOD, "id": "b", "sections": [{"section": "validation", "start": 3, "end": 99}]}), "outside"),
        (json.dumps({**GOOD, "id": "b", "sections": [{"section": "hello", "start": 0, "end": 1}]}), "'hello'"),
        (json.dumps({**GOOD, "id": True}), "field 'id' must be"),
        (json.dumps(GOOD), "duplicate id 'a1' (first on line 1)"),
    ],
)
def test_bad_line_is_named_by_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), "", bad_line])
    with pytest.raises(DataError) as err:
        load_cbtqa(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


def test_json_array_errors_name_the_element_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"id": "1", "question": "q", "description": "", "answer": "a"},\n  {"id": "2"}\n]\n')
    with pytest.raises(DataError, match=r"bad\.json:3: missing field 'question'"):
        load_cbtqa(path)
    ok = json.dumps(GOOD, ensure_ascii=False)
    path.write_text(f"[\n  {ok} {ok}\n]", encoding="utf-8")
    with pytest.raises(DataError, match=r":2: expected ',' or ']'"):
        load_cbtqa(path)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_cbtqa(tmp_path / "nope.jsonl")
    bad = tmp_path / "gbk.jsonl"
    bad.write_bytes(json.dumps(GOOD, ensure_ascii=False).encode("gbk"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_cbtqa(bad)


def test_psyqa_loader(tmp_path: Path) -> None:
    items = [
        {
            "questionID": 7,
            "question": "怎么办？",
            "description": "描述",
            "keywords": "成长,压力管理",
            "answers": [{"answer_text": "回答一", "has_label": False, "labels_sequence": []}],
        }
    ]
    path = tmp_path / "psyqa.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    (item,) = load_psyqa(path)
    assert (item.question_id, item.keywords, item.answers) == ("7", ["成长", "压力管理"], ["回答一"])
    path.write_text(json.dumps([{**items[0], "answers": [{"text": 1}]}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"psyqa\.json:1: answers\[0\]"):
        load_psyqa(path)
    assert [q.id for q in load_questions(tmp_path / "psyqa.json")] == ["7"]


def test_alpaca_loader(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps([{"instruction": "i", "input": "x", "output": "y"}, {"instruction": "i", "output": ""}])
    )
    with pytest.raises(DataError, match=r"a\.json:1: field 'output' is empty"):
        load_alpaca(path)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_cbtqa(path, [CBTRecord("1", "q", "d", "a")])
    write_cbtqa(path, [CBTRecord("2", "q", "d", "b")])
    assert [r.id for r in load_cbtqa(path)] == ["2"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp files left behind


def test_atomic_write_keeps_a_readable_mode(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write_jsonl(path, [{"a": 1}])
    assert path.stat().st_mode & 0o044 == 0o044  # not mkstemp's 0600
    path.chmod(0o640)
    write_jsonl(path, [{"a": 2}])
    assert path.stat().st_mode & 0o777 == 0o640


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"id": "old"}])

    def rows():
        yield {"id": "new"}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == '{"id": "old"}\n'
    assert len(list(tmp_path.iterdir())) == 1


WRITER = """
import sys
from cbt.io import write_jsonl
n = 0
while True:
    n += 1
    write_jsonl(sys.argv[1], ({"i": n, "pad": "x" * 200} for _ in range(20000)))
    print(n, flush=True)
"""


def test_sigkill_during_writes_never_truncates(tmp_path: Path) -> None:
    """Kill a process that rewrites a 4 MB file in a loop at several points: the file is always whole."""
    path = tmp_path / "data.jsonl"
    write_jsonl(path, ({"i": 0, "pad": "x" * 200} for _ in range(20000)))
    root = Path(__file__).resolve().parents[1]
    for delay in (0.05, 0.2, 0.45, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=root, stdout=subprocess.PIPE)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        lines = path.read_text().splitlines()
        assert len(lines) == 20000
        assert len({json.loads(line)["i"] for line in lines}) == 1
