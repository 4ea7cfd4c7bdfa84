"""Loaders and writers for CBT QA, PsyQA and alpaca files.

Every loader names bad input as `file:line: what is wrong` and skips nothing silently; every writer is
atomic (temp file in the same folder, fsync, rename), so an interrupted write never truncates data.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cbt.schema import AlpacaRecord, CBTRecord, PsyQAItem, SectionSpan
from cbt.taxonomy import DISTORTION_IDS, SECTION_IDS

T = TypeVar("T")
PathLike = str | os.PathLike


class DataError(ValueError):
    """Bad input data; str() is `file:line: what is wrong`."""

    def __init__(self, path: PathLike, line: int | None, message: str) -> None:
        self.path, self.line, self.message = str(path), line, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


# ---------------------------------------------------------------- reading raw JSON objects with line numbers


def _read_text(path: PathLike) -> str:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def iter_jsonl(path: PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for each non-blank line of a JSON Lines file."""
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None


def iter_json_array(path: PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (line number where the element starts, element) for a file holding one JSON array."""
    text = _read_text(path)
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip_ws(0)
    if pos >= len(text) or text[pos] != "[":
        raise DataError(path, line_of(pos), "expected a JSON array ('[') or JSON Lines")
    pos = skip_ws(pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DataError(path, exc.lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
        yield line_of(pos), value
        pos = skip_ws(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if skip_ws(pos + 1) != len(text):
                raise DataError(path, line_of(pos + 1), "unexpected text after the JSON array")
            return
        raise DataError(path, line_of(pos), "expected ',' or ']' between array elements")


def iter_json_objects(path: PathLike) -> Iterator[tuple[int, Any]]:
    """JSON array or JSON Lines, decided by the first non-blank character; yields (line, value)."""
    head = _read_text(path).lstrip()
    if head.startswith("["):
        return iter_json_array(path)
    return iter_jsonl(path)


# ---------------------------------------------------------------- field checks


def _obj(path: PathLike, line: int, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(value).__name__}")
    return value


def _text_field(path: PathLike, line: int, obj: dict, name: str, *, required: bool = True, empty: bool = True) -> str:
    if name not in obj or obj[name] is None:
        if required:
            raise DataError(path, line, f"missing field '{name}'")
        return ""
    value = obj[name]
    if not isinstance(value, str):
        raise DataError(path, line, f"field '{name}' must be a string, got {type(value).__name__}")
    if not empty and not value.strip():
        raise DataError(path, line, f"field '{name}' is empty")
    return value


def _id_field(path: PathLike, line: int, obj: dict, name: str) -> str:
    if name not in obj:
        raise DataError(path, line, f"missing field '{name}'")
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise DataError(path, line, f"field '{name}' must be a non-empty string or integer")
    return str(value)


def _distortions(path: PathLike, line: int, obj: dict) -> list[str] | None:
    value = obj.get("distortions")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(path, line, "field 'distortions' must be a list of taxonomy ids")
    unknown = [v for v in value if v not in DISTORTION_IDS]
    if unknown:
        raise DataError(path, line, f"field 'distortions' has unknown id(s) {unknown}; known: {list(DISTORTION_IDS)}")
    return list(dict.fromkeys(value))


def _sections(path: PathLike, line: int, obj: dict, answer: str) -> list[SectionSpan] | None:
    value = obj.get("sections")
    if value is None:
        return None
    if not isinstance(value, list):
        raise DataError(path, line, "field 'sections' must be a list of {section, start, end}")
    spans, last_end = [], 0
    for i, span in enumerate(value):
        if not isinstance(span, dict) or set(span) < {"section", "start", "end"}:
            raise DataError(path, line, f"sections[{i}] must be an object with section, start, end")
        sid, start, end = span["section"], span["start"], span["end"]
        if sid not in SECTION_IDS:
            raise DataError(path, line, f"sections[{i}].section '{sid}' is not one of {list(SECTION_IDS)}")
        if not (isinstance(start, int) and isinstance(end, int) and last_end <= start < end <= len(answer)):
            raise DataError(
                path, line, f"sections[{i}] offsets [{start}, {end}) overlap or lie outside the answer ({len(answer)})"
            )
        spans.append(SectionSpan(sid, start, end))
        last_end = end
    return spans


# ---------------------------------------------------------------- loaders

_CBT_KEYS = {"id", "question", "description", "answer", "source", "distortions", "sections", "topic"}


def parse_cbt_record(path: PathLike, line: int, value: Any) -> CBTRecord:
    """Check one CBT QA object and build the record (errors name the file and line)."""
    obj = _obj(path, line, value)
    rid = _id_field(path, line, obj, "id")
    question = _text_field(path, line, obj, "question", empty=False)
    description = _text_field(path, line, obj, "description")
    answer = _text_field(path, line, obj, "answer", empty=False)
    return CBTRecord(
        id=rid,
        question=question,
        description=description,
        answer=answer,
        source=_text_field(path, line, obj, "source", required=False),
        distortions=_distortions(path, line, obj),
        sections=_sections(path, line, obj, answer),
        topic=obj.get("topic"),
        extra={k: v for k, v in obj.items() if k not in _CBT_KEYS},
    )


def _unique_ids(path: PathLike, rows: Iterable[tuple[int, T]], key: Callable[[T], str]) -> list[T]:
    seen: dict[str, int] = {}
    out = []
    for line, row in rows:
        rid = key(row)
        if rid in seen:
            raise DataError(path, line, f"duplicate id '{rid}' (first on line {seen[rid]})")
        seen[rid] = line
        out.append(row)
    return out


def load_cbtqa(path: PathLike) -> list[CBTRecord]:
    """Load CBT QA records from JSON Lines or a JSON array; ids must be unique."""
    rows = ((line, parse_cbt_record(path, line, value)) for line, value in iter_json_objects(path))
    return _unique_ids(path, rows, lambda r: r.id)


def load_psyqa(path: PathLike) -> list[PsyQAItem]:
    """Load PsyQA items (questionID, question, description, keywords, answers) from JSON or JSONL."""

    def parse(line: int, value: Any) -> PsyQAItem:
        obj = _obj(path, line, value)
        keywords = obj.get("keywords", "")
        if isinstance(keywords, str):
            keywords = [k.strip() for k in keywords.replace("，", ",").split(",") if k.strip()]
        elif not isinstance(keywords, list):
            raise DataError(path, line, "field 'keywords' must be a comma-separated string or a list")
        answers = obj.get("answers", [])
        if not isinstance(answers, list):
            raise DataError(path, line, "field 'answers' must be a list")
        texts = []
        for i, ans in enumerate(answers):
            text = ans.get("answer_text") if isinstance(ans, dict) else ans
            if not isinstance(text, str):
                raise DataError(path, line, f"answers[{i}] must be a string or an object with 'answer_text'")
            texts.append(text)
        return PsyQAItem(
            question_id=_id_field(path, line, obj, "questionID"),
            question=_text_field(path, line, obj, "question", empty=False),
            description=_text_field(path, line, obj, "description"),
            keywords=[str(k) for k in keywords],
            answers=texts,
        )

    rows = ((line, parse(line, value)) for line, value in iter_json_objects(path))
    return _unique_ids(path, rows, lambda r: r.question_id)


def load_questions(path: PathLike) -> list[CBTRecord]:
    """Questions to answer, from PsyQA JSON or our JSONL (answer optional); returns records with ids."""
    rows = []
    for line, value in iter_json_objects(path):
        obj = _obj(path, line, value)
        rid = _id_field(path, line, obj, "questionID" if "questionID" in obj else "id")
        rows.append(
            (
                line,
                CBTRecord(
                    id=rid,
                    question=_text_field(path, line, obj, "question", empty=False),
                    description=_text_field(path, line, obj, "description", required=False),
                    answer=obj.get("answer") if isinstance(obj.get("answer"), str) else "",
                    source=_text_field(path, line, obj, "source", required=False),
                ),
            )
        )
    return _unique_ids(path, rows, lambda r: r.id)


def load_alpaca(path: PathLike) -> list[AlpacaRecord]:
    """Load alpaca records (instruction, input, output) from a JSON array or JSON Lines."""
    out = []
    for line, value in iter_json_objects(path):
        obj = _obj(path, line, value)
        out.append(
            AlpacaRecord(
                instruction=_text_field(path, line, obj, "instruction"),
                input=_text_field(path, line, obj, "input", required=False),
                output=_text_field(path, line, obj, "output", empty=False),
            )
        )
    return out


# ---------------------------------------------------------------- atomic writers


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write text so that readers see the old file or the whole new one, never a truncated one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _file_mode(target))  # mkstemp makes 0600; keep the target's mode or the umask default
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def _file_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dumps_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl(path: PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Atomically write JSON Lines (UTF-8, one object per line, no ASCII escaping)."""
    return atomic_write_text(path, dumps_jsonl(rows))


def write_json(path: PathLike, value: Any) -> Path:
    """Atomically write pretty-printed UTF-8 JSON."""
    return atomic_write_text(path, json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def write_cbtqa(path: PathLike, records: Iterable[CBTRecord]) -> Path:
    return write_jsonl(path, (r.to_dict() for r in records))


# ---------------------------------------------------------------- the shipped sample set

SAMPLE_PATH = Path(__file__).parent / "data" / "sample_cbtqa.jsonl"


def load_sample() -> list[CBTRecord]:
    """The CBT QA sample set written for this project (see cbt/data/README.md)."""
    return load_cbtqa(SAMPLE_PATH)
