"""One dataclass per evaluation stage (predict, evaluate, report), loaded from YAML with `key=value` overrides.

The CLI and the evaluation tab build the same objects and call the same run functions.

>>> PredictConfig(backbone="retrieval", input="q.jsonl", output="p.jsonl").batch_size
8
>>> load_config(EvalConfig, None, ["predictions=p.jsonl", "references=r.json", "metrics=bleu,chrf"]).metrics
['bleu', 'chrf']
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

import yaml

from cbt.textutil import coerce_override

DEFAULT_TEXT_METRICS = ["bleu", "chrf", "meteor", "structure", "distortion_coverage"]
DEFAULT_METRICS = [*DEFAULT_TEXT_METRICS, "bertscore", "bleurt"]

C = TypeVar("C")


@dataclass
class PredictConfig:
    """Generation over a test file with one backbone (greedy by default: reproducible predictions)."""

    backbone: str = field(metadata={"help": "backbone id from configs/backbones.yaml (or CBT_BACKBONES)"})
    input: str = field(metadata={"help": "questions: CBT QA JSONL/JSON or PsyQA JSON (questionID)"})
    output: str = field(metadata={"help": "predictions JSONL; also the resumable ledger while running"})
    backbones_config: str = field(default="", metadata={"help": "backbones YAML; empty: CBT_BACKBONES or default"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generate() call for hf backbones"})
    concurrency: int = field(default=4, metadata={"help": "requests in flight for openai backbones"})
    max_new_tokens: int = field(default=512, metadata={"help": "answer length cap in tokens"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=0.9, metadata={"help": "nucleus sampling when temperature > 0"})
    repetition_penalty: float = field(default=1.1, metadata={"help": "hf backbones only"})
    seed: int | None = field(default=None, metadata={"help": "sampling seed where the backend supports one"})
    limit: int = field(default=0, metadata={"help": "answer only the first N questions (0 = all)"})
    instruction_lang: str = field(default="en", metadata={"help": "training instruction language: en or zh"})
    progress: bool = field(default=True, metadata={"help": "tqdm progress bar on stderr"})

    def __post_init__(self) -> None:
        if not self.backbone:
            raise ValueError("backbone is required")
        if not self.input or not self.output:
            raise ValueError("input and output paths are required")
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        if not 1 <= self.max_new_tokens <= 8192:
            raise ValueError("max_new_tokens must be between 1 and 8192")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature must be between 0 and 2")
        if self.limit < 0:
            raise ValueError("limit must be 0 (all) or positive")
        if self.instruction_lang not in ("en", "zh"):
            raise ValueError("instruction_lang must be en or zh")


@dataclass
class EvalConfig:
    """Metrics of one prediction file against references, paired by id."""

    predictions: str = field(metadata={"help": "predictions JSONL/JSON: id + prediction field"})
    references: str = field(metadata={"help": "reference records: id (or questionID) + reference field"})
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS), metadata={"help": "metric names"})
    reference_field: str = field(default="answer", metadata={"help": "reference text field (autocbt: cbt_answer)"})
    prediction_field: str = field(default="prediction", metadata={"help": "prediction text field"})
    bertscore_model: str = field(default="", metadata={"help": "local BERT checkpoint; empty: BERTScore skipped"})
    bleurt_checkpoint: str = field(default="", metadata={"help": "local BLEURT checkpoint; empty: skipped"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95% CIs"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed (fixed: deterministic reports)"})
    allow_missing: bool = field(default=False, metadata={"help": "score the ids both files share"})

    def __post_init__(self) -> None:
        if not self.predictions or not self.references:
            raise ValueError("predictions and references paths are required")
        if isinstance(self.metrics, str):
            self.metrics = [m.strip() for m in self.metrics.split(",") if m.strip()]
        known = set(DEFAULT_METRICS)
        unknown = [m for m in self.metrics if m not in known]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {DEFAULT_METRICS}")
        if not self.metrics:
            raise ValueError("no metrics selected")
        if self.n_boot < 0:
            raise ValueError("n_boot must be 0 (no CIs) or positive")


@dataclass
class ReportConfig:
    """Tables 3-5 and the Table 4 chart from prediction files, references and optional labels/ratings."""

    predictions: list[str] = field(metadata={"help": "one predictions file per Table 4 row"})
    references: str = field(metadata={"help": "reference records, paired by id"})
    out: str = field(metadata={"help": "report folder (table4.md/.csv/.png, report.md/.json)"})
    names: list[str] = field(default_factory=list, metadata={"help": "row names; default: each file's backbone"})
    labels: str = field(default="", metadata={"help": "distortion labels JSONL (Table 3)"})
    ratings: str = field(default="", metadata={"help": "human ratings JSONL (Table 5)"})
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS), metadata={"help": "metric names"})
    reference_field: str = field(default="answer", metadata={"help": "reference text field"})
    prediction_field: str = field(default="prediction", metadata={"help": "prediction text field"})
    bertscore_model: str = ""
    bleurt_checkpoint: str = ""
    n_boot: int = 1000
    seed: int = 0
    allow_missing: bool = False
    title: str = field(default="CBT-LLM Studio evaluation report", metadata={"help": "report.md heading"})
    notes: str = field(default="", metadata={"help": "extra Markdown put under the heading (e.g. provenance)"})
    paper_table4: bool = field(default=True, metadata={"help": "print the paper's own Table 4 beside ours"})
    compare: list[str] = field(
        default_factory=list, metadata={"help": "row pairs 'a:b' (0-based) for the paired bootstrap; default k:0"}
    )

    def __post_init__(self) -> None:
        if isinstance(self.predictions, str):
            self.predictions = [p for p in self.predictions.split(",") if p]
        if isinstance(self.names, str):
            self.names = [n for n in self.names.split(",") if n]
        if isinstance(self.metrics, str):
            self.metrics = [m.strip() for m in self.metrics.split(",") if m.strip()]
        if not self.predictions:
            raise ValueError("at least one predictions file is required")
        if not self.references or not self.out:
            raise ValueError("references and out are required")
        if self.names and len(self.names) != len(self.predictions):
            raise ValueError(f"{len(self.names)} names for {len(self.predictions)} prediction files")
        unknown = [m for m in self.metrics if m not in DEFAULT_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {DEFAULT_METRICS}")
        if isinstance(self.compare, str):
            self.compare = [c for c in self.compare.split(",") if c]
        n = len(self.predictions)
        for pair in self.compare:
            a, _, b = pair.partition(":")
            if not (a.isdigit() and b.isdigit() and int(a) < n and int(b) < n and a != b):
                raise ValueError(f"compare pair '{pair}' must be 'a:b', two different row numbers below {n}")


def _coerce(value: str, current: Any) -> Any:
    if current is None:  # optional numbers (seed): a number when it reads as one
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value or None
    return coerce_override(value, current)


def _defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def load_config(cls: type[C], path: str | os.PathLike | None, overrides: list[str] | None = None) -> C:
    """YAML (optional), then `key=value` overrides typed like the field they set; unknown keys are errors."""
    data: dict[str, Any] = {}
    if path:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    defaults = _defaults(cls)
    types = {f.name: f.type for f in fields(cls)}  # type: ignore[arg-type]
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not key=value")
        key, value = item.split("=", 1)
        if key not in names:
            raise ValueError(f"override '{key}' is not a {cls.__name__} setting")
        current = data.get(key, defaults.get(key))
        if str(types[key]).startswith("list"):
            current = []  # a list setting given on the command line replaces the YAML's
        data[key] = _coerce(value, current)
    missing = [f.name for f in fields(cls) if f.name not in data and f.name not in defaults]  # type: ignore[arg-type]
    if missing:
        raise ValueError(f"missing setting(s) {missing} (give them as flags or in the YAML)")
    return cls(**data)
