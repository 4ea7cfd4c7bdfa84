"""Generate a CBT QA data set: the paper's CBT prompt against any OpenAI-compatible API, resumable.

    OPENAI_API_KEY=... python -m cbt generate --input psyqa.json --output cbt_qa.jsonl \\
        --base-url https://api.openai.com/v1 --model gpt-4o-mini --concurrency 16 --budget-usd 20

A job that dies halfway loses nothing and pays for nothing twice: every request is in the fsynced ledger
(`OUT.ledger.jsonl`) before it is sent, finished ids are skipped on restart, and a request whose outcome is
unknown counts as paid at its worst case. Answers missing CBT parts are regenerated a few times, then kept
in `OUT.failures.jsonl` with the reason. The output is written at the end, one line per id, sorted by id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cbt.distortions import extract_distortions
from cbt.io import load_questions, write_jsonl
from cbt.ledger import Ledger, LedgerState
from cbt.prompter import Example, Prompter
from cbt.ratelimit import TokenBucket
from cbt.schema import CBTRecord
from cbt.sections import segment
from cbt.taxonomy import SECTION_IDS

log = logging.getLogger("cbt.generate")
CONFIG_PATH = Path(__file__).resolve().parents[1] / "configs" / "generation.yaml"


@dataclass
class GenerationConfig:
    """Everything a generation run needs; built from configs/generation.yaml plus CLI flags."""

    input: str = field(metadata={"help": "PsyQA JSON or our JSONL of questions"})
    output: str = field(metadata={"help": "JSONL output, one record per question id"})
    base_url: str = field(metadata={"help": "OpenAI-compatible base URL, e.g. http://localhost:8000/v1"})
    model: str = field(metadata={"help": "model name at that endpoint"})
    concurrency: int = 8
    max_requests: int | None = field(default=None, metadata={"help": "stop after this many requests this run"})
    budget_usd: float | None = field(default=None, metadata={"help": "never let spending exceed this"})
    rpm: float | None = None
    tpm: float | None = None
    temperature: float = 0.7
    max_tokens: int = 1500
    timeout_s: float = 120.0
    max_retries: int = 6
    validation_retries: int = 2
    lang: str = "zh"
    example: str | None = field(default=None, metadata={"help": "JSON file {question, description, answer}"})
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    batch_discount: float = 0.5
    batch: bool = False
    retry_failed: bool = field(default=False, metadata={"help": "give ids recorded as failed another go"})
    poll_s: float = 30.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.budget_usd is not None and self.budget_usd <= 0:
            raise ValueError("budget-usd must be positive")
        if self.lang not in ("zh", "en"):
            raise ValueError("lang must be zh or en")

    def price(self, batch: bool = False) -> tuple[float, float]:
        """USD per token (input, output) for this model."""
        row = self.prices.get(self.model) or self.prices.get("default") or {"input": 0.0, "output": 0.0}
        factor = self.batch_discount if batch else 1.0
        return row["input"] * factor / 1e6, row["output"] * factor / 1e6


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> GenerationConfig:
    """configs/generation.yaml (or `path`), then overrides that are not None."""
    with open(path or CONFIG_PATH, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return GenerationConfig(**data)


def answer_problems(answer: str) -> list[str]:
    """Why an answer is not a usable CBT answer (empty list: it is)."""
    if not answer.strip():
        return ["empty answer"]
    missing = [s for s in SECTION_IDS if s not in segment(answer).sections_present]
    return [f"missing parts: {', '.join(missing)}"] if missing else []


def id_key(rid: str) -> tuple[int, int | str]:
    """Sort ids numerically when they are numbers, else as text."""
    return (0, int(rid)) if rid.isdigit() else (1, rid)


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None, maybe_paid: bool = True) -> None:
        super().__init__(message)
        self.retry_after, self.maybe_paid = retry_after, maybe_paid


class BudgetExhausted(Exception):
    pass


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                return None
    return None


class Generator:
    """Runs one generation job; `client` is an openai.AsyncOpenAI (or anything with the same surface)."""

    def __init__(self, cfg: GenerationConfig, client: Any) -> None:
        self.cfg, self.client = cfg, client
        self.out = Path(cfg.output)
        self.ledger_path = self.out.with_name(self.out.name + ".ledger.jsonl")
        self.failures_path = self.out.with_name(self.out.name + ".failures.jsonl")
        self.prompter = Prompter()
        self.example = _load_example(cfg.example)
        self.state = Ledger.replay(self.ledger_path)
        self.ledger = Ledger(self.ledger_path)
        self.rpm, self.tpm = TokenBucket(cfg.rpm), TokenBucket(cfg.tpm)
        self.in_flight_usd = 0.0
        self.sent_this_run = 0
        self.stop_reason: str | None = None
        self.bar: Any = None

    # ------------------------------------------------------------ accounting

    def estimate_usd(self, prompt: str) -> float:
        """Worst case of one request: every prompt character a token, the full completion budget."""
        p_in, p_out = self.cfg.price()
        return len(prompt) * p_in + self.cfg.max_tokens * p_out

    def _reserve(self, est: float) -> None:
        cfg = self.cfg
        if cfg.max_requests is not None and self.sent_this_run >= cfg.max_requests:
            raise BudgetExhausted(f"max-requests {cfg.max_requests} reached")
        if cfg.budget_usd is not None and self.state.spent_usd + self.in_flight_usd + est > cfg.budget_usd:
            raise BudgetExhausted(
                f"budget ${cfg.budget_usd:.2f}: spent ${self.state.spent_usd:.4f}, "
                f"${self.in_flight_usd:.4f} in flight, next request up to ${est:.4f}"
            )
        self.in_flight_usd += est
        self.sent_this_run += 1
        self.state.requests += 1

    # ------------------------------------------------------------ one request

    async def _call(self, prompt: str) -> tuple[str, dict[str, int]]:
        import openai

        try:
            raw = await self.client.chat.completions.with_raw_response.create(
                model=self.cfg.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=self.cfg.temperature,
                max_tokens=self.cfg.max_tokens,
                timeout=self.cfg.timeout_s,
            )
            completion = raw.parse()
            text = completion.choices[0].message.content or ""
            usage = completion.usage
        except openai.APITimeoutError as exc:
            raise RetryableError("timeout") from exc
        except openai.APIConnectionError as exc:
            raise RetryableError(f"connection error: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                paid = exc.status_code >= 500
                raise RetryableError(f"HTTP {exc.status_code}", _retry_after(exc), maybe_paid=paid) from exc
            raise
        except (ValueError, AttributeError, IndexError, TypeError, openai.APIResponseValidationError) as exc:
            raise RetryableError(f"malformed response: {type(exc).__name__}") from exc
        tokens = {
            "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
            "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
        }
        return text, tokens

    async def _request(self, rid: str, prompt: str) -> tuple[str, dict[str, int]]:
        """One answer for `prompt`, retrying transient failures with backoff and jitter."""
        cfg = self.cfg
        for attempt in range(cfg.max_retries + 1):
            est = self.estimate_usd(prompt)
            await self.rpm.acquire(1)
            await self.tpm.acquire(len(prompt) + cfg.max_tokens)
            self._reserve(est)
            req = self.state.requests
            self.ledger.append({"ev": "sent", "id": rid, "req": req, "est_usd": round(est, 6), "t": time.time()})
            try:
                text, tokens = await self._call(prompt)
            except RetryableError as exc:
                self.in_flight_usd -= est
                if not exc.maybe_paid:  # a 429 is refused before any work: not billed
                    self.ledger.append({"ev": "result", "id": rid, "req": req, "status": str(exc), "usd": 0.0})
                else:  # outcome unknown: stays open in the ledger, counted at its worst case
                    self.state.spent_usd += est
                    self.state.unknown += 1
                if attempt == cfg.max_retries:
                    raise
                delay = exc.retry_after
                if delay is None:
                    delay = min(cfg.backoff_max_s, cfg.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)
                log.info("%s: %s; retrying in %.1fs", rid, exc, delay)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self.in_flight_usd -= est
                raise
            self.in_flight_usd -= est
            p_in, p_out = cfg.price()
            usd = tokens["prompt_tokens"] * p_in + tokens["completion_tokens"] * p_out
            self.state.spent_usd += usd
            self.state.prompt_tokens += tokens["prompt_tokens"]
            self.state.completion_tokens += tokens["completion_tokens"]
            self.ledger.append({"ev": "result", "id": rid, "req": req, "status": "ok", "usd": round(usd, 8), **tokens})
            return text, tokens
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ one question

    async def _question(self, rec: CBTRecord) -> None:
        prompt = self.prompter.generation_prompt(rec.question, rec.description, self.cfg.lang, self.example)
        while True:
            try:
                text, tokens = await self._request(rec.id, prompt)
            except RetryableError as exc:
                self._fail(rec.id, f"gave up after {self.cfg.max_retries + 1} requests: {exc}")
                return
            self.ledger.append({"ev": "attempt", "id": rec.id})
            self.state.attempts[rec.id] = self.state.attempts.get(rec.id, 0) + 1
            problems = answer_problems(text)
            if not problems:
                self._done(rec, text.strip(), tokens)
                return
            if self.state.attempts[rec.id] > self.cfg.validation_retries:
                self._fail(rec.id, f"{'; '.join(problems)} (after {self.state.attempts[rec.id]} answers)")
                return
            log.info("%s: %s; regenerating", rec.id, "; ".join(problems))

    def _done(self, rec: CBTRecord, answer: str, tokens: dict[str, int]) -> None:
        record = {
            "id": rec.id,
            "question": rec.question,
            "description": rec.description,
            "answer": answer,
            "distortions": extract_distortions(answer),
            "source": f"generated:{self.cfg.model}",
            "model": self.cfg.model,
            "usage": tokens,
        }
        self.ledger.append({"ev": "done", "id": rec.id, "record": record})
        self.state.done[rec.id] = record
        self._tick()

    def _fail(self, rid: str, reason: str) -> None:
        self.ledger.append({"ev": "failed", "id": rid, "reason": reason})
        self.state.failed[rid] = reason
        self._tick()

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                done=len(self.state.done), failed=len(self.state.failed), usd=f"{self.state.spent_usd:.4f}"
            )

    # ------------------------------------------------------------ the job

    def pending(self, records: Sequence[CBTRecord]) -> list[CBTRecord]:
        """Ids neither done nor given up on (those too with `retry_failed`, with fresh validation retries)."""
        if self.cfg.retry_failed:
            for r in records:
                if r.id in self.state.failed:
                    self.state.attempts[r.id] = 0
            return [r for r in records if r.id not in self.state.done]
        return [r for r in records if r.id not in self.state.done and r.id not in self.state.failed]

    async def run_async(self, records: Sequence[CBTRecord]) -> dict[str, Any]:
        todo = self.pending(records)
        queue: asyncio.Queue[CBTRecord] = asyncio.Queue()
        for r in todo:
            queue.put_nowait(r)

        async def worker() -> None:
            while self.stop_reason is None:
                try:
                    rec = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    await self._question(rec)
                except BudgetExhausted as exc:
                    self.stop_reason = str(exc)

        if self.cfg.progress and todo:
            from tqdm import tqdm

            self.bar = tqdm(total=len(todo), desc="generate", unit="q")
        try:
            await asyncio.gather(*(worker() for _ in range(min(self.cfg.concurrency, max(1, len(todo))))))
        finally:
            if self.bar is not None:
                self.bar.close()
        return self.finish(records)

    def finish(self, records: Sequence[CBTRecord]) -> dict[str, Any]:
        """Write OUT (sorted by id) and the failures file from the ledger's state; return a summary."""
        wanted = {r.id for r in records}
        done = [self.state.done[i] for i in sorted(self.state.done, key=id_key) if i in wanted]
        write_jsonl(self.out, done)
        failed = [
            {"id": i, "reason": self.state.failed[i], "answers": self.state.attempts.get(i, 0)}
            for i in sorted(self.state.failed, key=id_key)
            if i in wanted and i not in self.state.done
        ]
        write_jsonl(self.failures_path, failed)
        self.ledger.close()
        return summary(self.state, len(records), len(done), len(failed), self.stop_reason)


def summary(state: LedgerState, total: int, done: int, failed: int, stop: str | None) -> dict[str, Any]:
    return {
        "questions": total,
        "done": done,
        "failed": failed,
        "remaining": total - done - failed,
        "requests": state.requests,
        "unknown_outcome_requests": state.unknown,
        "spent_usd_upper_bound": round(state.spent_usd, 6),
        "prompt_tokens": state.prompt_tokens,
        "completion_tokens": state.completion_tokens,
        "stopped": stop,
    }


def _load_example(path: str | None) -> Example | None:
    if not path:
        return None
    import json

    with open(path, encoding="utf-8") as fh:
        raw = json.load(fh)
    return Example(raw["question"], raw.get("description", ""), raw["answer"])


def make_client(cfg: GenerationConfig) -> Any:
    """The official async client; retries are ours (to honour Retry-After and keep the ledger exact)."""
    import openai

    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ValueError("OPENAI_API_KEY is not set (use any non-empty value for local servers)")
    return openai.AsyncOpenAI(base_url=cfg.base_url, api_key=key, max_retries=0, timeout=cfg.timeout_s)


def run(cfg: GenerationConfig, client: Any | None = None) -> dict[str, Any]:
    """Generate answers for every question of cfg.input not yet done; the CLI and any UI call this."""
    records = load_questions(cfg.input)
    client = client or make_client(cfg)
    if cfg.batch:
        from cbt.generate_batch import BatchJob

        return asyncio.run(BatchJob(cfg, client).run_async(records))
    return asyncio.run(Generator(cfg, client).run_async(records))
