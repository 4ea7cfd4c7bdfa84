"""OpenAI Batch API mode of data-set generation (`python -m cbt generate ... --batch`).

One JSONL batch file with a custom_id per question, uploaded and submitted; the run polls, downloads and
merges answers into the same ledger as the online mode. Resumable: `OUT.batches.json` lists the batches
of this job, and every batch carries the job's key in its metadata, so a run that died between submitting
and saving its state finds the batch again (`batches.list`) instead of paying for a second one. A new run
first reconciles open batches, then submits only the ids that are neither done nor in an open batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from collections.abc import Sequence
from typing import Any

from cbt.generate import GenerationConfig, Generator, answer_problems
from cbt.io import write_json
from cbt.schema import CBTRecord

TERMINAL_OK = {"completed"}
TERMINAL_BAD = {"failed", "expired", "cancelled"}
MAX_PER_BATCH = 50_000


class BatchJob(Generator):
    def __init__(self, cfg: GenerationConfig, client: Any) -> None:
        super().__init__(cfg, client)
        self.state_path = self.out.with_name(self.out.name + ".batches.json")
        self.job_key = hashlib.sha256(str(self.out.resolve()).encode()).hexdigest()[:16]
        self.batches: list[dict[str, Any]] = []
        if self.state_path.exists():
            self.batches = json.loads(self.state_path.read_text(encoding="utf-8"))["batches"]

    def _save(self) -> None:
        write_json(self.state_path, {"job": self.job_key, "batches": self.batches})

    async def _adopt_unsaved(self) -> None:
        """Batches of this job that were submitted but never saved (the run died in between)."""
        known = {b["id"] for b in self.batches}
        page = await self.client.batches.list(limit=100)
        for b in getattr(page, "data", []):
            meta = b.metadata or {}
            if meta.get("cbt_job") == self.job_key and b.id not in known:
                content = await self.client.files.content(b.input_file_id)
                ids = [json.loads(line)["custom_id"] for line in content.text.splitlines() if line.strip()]
                self.batches.append({"id": b.id, "ids": ids, "status": b.status, "merged": False})
        self._save()

    async def _reconcile(self, records: dict[str, CBTRecord]) -> None:
        for entry in self.batches:
            if entry.get("merged"):
                continue
            batch = await self.client.batches.retrieve(entry["id"])
            entry["status"] = batch.status
            if batch.status in TERMINAL_OK:
                await self._merge(batch, entry, records)
            elif batch.status in TERMINAL_BAD:
                entry["merged"] = True  # its unanswered ids become pending again
        self._save()

    async def _merge(self, batch: Any, entry: dict[str, Any], records: dict[str, CBTRecord]) -> None:
        p_in, p_out = self.cfg.price(batch=True)
        lines = []
        for file_id in (batch.output_file_id, getattr(batch, "error_file_id", None)):
            if file_id:
                content = await self.client.files.content(file_id)
                lines += content.text.splitlines()
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            rid = row["custom_id"]
            if rid in self.state.done or rid not in records:
                continue
            body = (row.get("response") or {}).get("body") or {}
            usage = body.get("usage") or {}
            tokens = {k: int(usage.get(k, 0) or 0) for k in ("prompt_tokens", "completion_tokens")}
            usd = tokens["prompt_tokens"] * p_in + tokens["completion_tokens"] * p_out
            self.state.spent_usd += usd
            self.ledger.append({"ev": "result", "id": rid, "req": f"batch:{batch.id}", "usd": usd, **tokens})
            self.ledger.append({"ev": "attempt", "id": rid})
            self.state.attempts[rid] = self.state.attempts.get(rid, 0) + 1
            try:
                text = body["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError):
                error = row.get("error") or (row.get("response") or {}).get("status_code")
                self._maybe_fail(rid, f"batch error: {error}")
                continue
            problems = answer_problems(text)
            if problems:
                self._maybe_fail(rid, "; ".join(problems))
            else:
                self._done(records[rid], text.strip(), tokens)
        entry["merged"] = True

    def _maybe_fail(self, rid: str, reason: str) -> None:
        """Record a failure once the validation retries are used up; before that the id is resubmitted."""
        if self.state.attempts.get(rid, 0) > self.cfg.validation_retries:
            self._fail(rid, f"{reason} (after {self.state.attempts[rid]} answers)")

    def _open_ids(self) -> set[str]:
        return {i for b in self.batches if not b.get("merged") for i in b["ids"]}

    async def _submit(self, todo: Sequence[CBTRecord]) -> None:
        for start in range(0, len(todo), MAX_PER_BATCH):
            chunk = todo[start : start + MAX_PER_BATCH]
            lines = []
            est = 0.0
            for rec in chunk:
                prompt = self.prompter.generation_prompt(rec.question, rec.description, self.cfg.lang, self.example)
                est += self.estimate_usd(prompt) * self.cfg.batch_discount
                body = {
                    "model": self.cfg.model,
                    "messages": [{"role": "user", "content": prompt}],
                    "temperature": self.cfg.temperature,
                    "max_tokens": self.cfg.max_tokens,
                }
                lines.append(
                    json.dumps({"custom_id": rec.id, "method": "POST", "url": "/v1/chat/completions", "body": body})
                )
            if self.cfg.budget_usd is not None and self.state.spent_usd + est > self.cfg.budget_usd:
                self.stop_reason = f"budget ${self.cfg.budget_usd:.2f}: a batch of {len(chunk)} may cost ${est:.4f}"
                return
            data = ("\n".join(lines) + "\n").encode("utf-8")
            upload = await self.client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch")
            ids = [r.id for r in chunk]
            batch = await self.client.batches.create(
                input_file_id=upload.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"cbt_job": self.job_key},
            )
            self.ledger.append({"ev": "batch", "batch": batch.id, "ids": ids, "est_usd": est, "t": time.time()})
            self.batches.append({"id": batch.id, "ids": ids, "status": batch.status, "merged": False})
            self._save()

    async def run_async(self, records: Sequence[CBTRecord], wait: bool = True) -> dict[str, Any]:
        by_id = {r.id: r for r in records}
        await self._adopt_unsaved()
        await self._reconcile(by_id)
        open_ids = self._open_ids()
        todo = [r for r in records if r.id not in self.state.done and r.id not in self.state.failed]
        todo = [r for r in todo if r.id not in open_ids]
        if todo:
            await self._submit(todo)
        while wait and self._open_ids():
            await asyncio.sleep(self.cfg.poll_s)
            await self._reconcile(by_id)
            todo = [
                r
                for r in records
                if r.id not in self.state.done and r.id not in self.state.failed and r.id not in self._open_ids()
            ]
            if todo and self.stop_reason is None:
                await self._submit(todo)
        result = self.finish(records)
        result["batches"] = [{"id": b["id"], "status": b["status"], "questions": len(b["ids"])} for b in self.batches]
        return result
