"""Answer every question of a test file with one backbone: batched (hf), concurrent (openai), resumable.

    python -m cbt predict --backbone cbt-mini --input test.jsonl --output preds.jsonl --batch-size 8
    OPENAI_BASE_URL=http://host:8000/v1 OPENAI_MODEL=my-model python -m cbt predict --backbone openai ...

The prompt is the one the model was trained on and the chat tab sends: the training instruction as the
system message, question + description (cbt.prompter.input_text) as the user message. The output file is
also the ledger: each finished answer is appended and fsynced, so a killed run loses at most the batch in
flight; a rerun skips the ids already there (a torn last line is cut off), and the finished file is
rewritten atomically in input order. Predictions are research generation, not chat: the crisis check of
each question is recorded in its row ("crisis": level), and the question is still answered.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from cbt.backends.base import Backend, GenParams, Message
from cbt.io import DataError, load_questions, write_jsonl
from cbt.prompter import Prompter
from cbt.safety import assess
from cbt.schema import CBTRecord
from eval.config import PredictConfig

log = logging.getLogger(__name__)


class PredictError(RuntimeError):
    """A run that cannot start or finish; str() says why in one line."""


def build_messages(record: CBTRecord, prompter: Prompter) -> list[Message]:
    """System = the training instruction, user = question + description, as in training and the chat tab."""
    return [
        {"role": "system", "content": prompter.instruction},
        {"role": "user", "content": prompter.input_text(record.question, record.description)},
    ]


def load_backend(cfg: PredictConfig) -> tuple[Backend, str]:
    """The configured backbone, loaded, and its type; errors list the known ids or say why loading failed."""
    from cbt.backends.registry import CONFIG_PATH, build, load_specs

    path = cfg.backbones_config or os.environ.get("CBT_BACKBONES") or CONFIG_PATH
    specs, _ = load_specs(path)
    by_id = {s.id: s for s in specs}
    if cfg.backbone not in by_id:
        raise PredictError(f"unknown backbone '{cfg.backbone}' (known in {path}: {', '.join(by_id)})")
    spec = by_id[cfg.backbone]
    try:
        backend = build(spec)
        backend.load()
    except Exception as exc:  # the reason matters more than the type: show it in one line
        raise PredictError(f"backbone '{cfg.backbone}' failed to load: {type(exc).__name__}: {exc}") from exc
    return backend, spec.type


def read_done(path: str | os.PathLike, backbone: str) -> dict[str, dict[str, Any]]:
    """Rows already in the output file, by id; a torn last line (a kill mid-write) is cut off the file."""
    p = Path(path)
    if not p.exists():
        return {}
    data = p.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        log.warning("%s: dropping a partial last line (%d bytes) left by an interrupted run", p, len(data) - keep)
        with open(p, "r+b") as fh:
            fh.truncate(keep)
            os.fsync(fh.fileno())
        data = data[:keep]
    done: dict[str, dict[str, Any]] = {}
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(p, lineno, f"invalid JSON ({exc.msg}); not a predictions file?") from None
        if not isinstance(row, dict) or "id" not in row or "prediction" not in row:
            raise DataError(p, lineno, "expected a prediction row with 'id' and 'prediction'")
        if row.get("backbone") != backbone:
            raise DataError(p, lineno, f"holds backbone '{row.get('backbone')}', not '{backbone}': use another output")
        done[str(row["id"])] = row
    return done


class _Appender:
    """Append-only, fsynced JSONL writer (the run's ledger)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def append(self, row: dict[str, Any]) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _row(cfg: PredictConfig, record: CBTRecord, prediction: str, seconds: float) -> dict[str, Any]:
    return {
        "id": record.id,
        "prediction": prediction,
        "backbone": cfg.backbone,
        "question": record.question,
        "description": record.description,
        "seconds": round(seconds, 3),
        "crisis": assess(f"{record.question}\n{record.description}").level,
        "max_new_tokens": cfg.max_new_tokens,
        "temperature": cfg.temperature,
    }


def _run_batched(cfg, backend, todo, prompter, params, emit) -> int:
    for i in range(0, len(todo), cfg.batch_size):
        batch = todo[i : i + cfg.batch_size]
        start = time.perf_counter()
        outs = backend.generate_batch([build_messages(r, prompter) for r in batch], params)
        per = (time.perf_counter() - start) / len(batch)
        for rec, text in zip(batch, outs, strict=True):
            emit(_row(cfg, rec, text, per))
    return 0


def _run_concurrent(cfg, backend, todo, prompter, params, emit) -> int:
    def one(rec: CBTRecord) -> tuple[CBTRecord, str, float]:
        start = time.perf_counter()
        return rec, backend.generate(build_messages(rec, prompter), params), time.perf_counter() - start

    failed = 0
    with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
        futures = {pool.submit(one, r): r for r in todo}
        for fut in as_completed(futures):
            try:
                rec, text, seconds = fut.result()
            except Exception as exc:  # one failed request must not lose the others' answers
                failed += 1
                log.error("question %s failed: %s: %s", futures[fut].id, type(exc).__name__, exc)
                continue
            emit(_row(cfg, rec, text, seconds))
    return failed


def run_predict(cfg: PredictConfig, backend: Backend | None = None, backend_type: str | None = None) -> dict[str, Any]:
    """Answer the questions not yet in cfg.output; returns a summary. Raises PredictError when some failed."""
    records = load_questions(cfg.input)
    if cfg.limit:
        records = records[: cfg.limit]
    out = Path(cfg.output)
    done = read_done(out, cfg.backbone)
    todo = [r for r in records if r.id not in done]
    summary: dict[str, Any] = {"questions": len(records), "already_done": len(records) - len(todo)}
    if todo:
        if backend is None:
            backend, backend_type = load_backend(cfg)
        params = GenParams(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.repetition_penalty, cfg.seed)
        summary["failed"] = _generate(cfg, backend, backend_type or "hf", todo, params, done, out)
    else:
        summary["failed"] = 0
    order = [r.id for r in records if r.id in done]
    extra = sorted(set(done) - {r.id for r in records})
    write_jsonl(out, [done[i] for i in order] + [done[i] for i in extra])
    summary.update(written=len(order), extra_ids_kept=len(extra), output=str(out))
    if summary["failed"]:
        raise PredictError(f"{summary['failed']} question(s) failed (see log); rerun the same command to retry them")
    return summary


def _generate(cfg, backend, btype, todo, params, done, out) -> int:
    from tqdm import tqdm

    prompter = Prompter(cfg.instruction_lang)
    ledger = _Appender(out)
    bar = tqdm(total=len(todo), desc=f"predict {cfg.backbone}", unit="q", disable=not cfg.progress)

    def emit(row: dict[str, Any]) -> None:
        ledger.append(row)
        done[row["id"]] = row
        bar.update(1)

    run: Callable[..., int] = _run_concurrent if btype == "openai" else _run_batched
    try:
        return run(cfg, backend, todo, prompter, params, emit)
    finally:
        bar.close()
        ledger.close()
