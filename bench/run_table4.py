"""Table 4 on real data: the paper's CBT-LLM answers and CBT-mini, against Qwen-with-CBT-prompt answers.

    python bench/run_table4.py                       # report from the committed CBT-mini predictions
    python bench/run_table4.py --predict             # (re)generate CBT-mini's answers first (resumable; hours on CPU)
    python bench/run_table4.py --mini /work/tmp/b/cbt-mini-autocbt100.jsonl --out reports/autocbt100

Data: ../shared/data/autocbt-psyqa-cbt-responses-zh (100 PsyQA questions; read at run time, never copied):
the CBT-LLM model's answers (psyqa_balanced_cbtllm.json) are row (a); CBT-mini (Gemma-3-270M + the committed
LoRA adapter, greedy) answers the same questions for row (b); the references are Qwen1.5-7B-Chat answers
written with the paper's CBT prompt (psyqa_balanced_qwen_prompt.json), the closest public stand-in for the
paper's ChatGPT references. Committed under --out: the report and CBT-mini's predictions without the PsyQA
question text (PsyQA may not be redistributed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cbt.io import iter_json_objects, write_jsonl  # noqa: E402
from eval.config import PredictConfig, ReportConfig  # noqa: E402
from eval.report import write_report  # noqa: E402

SHARED = Path(os.environ.get("CBT_SHARED_DIR", ROOT.parent / "shared"))
AUTOCBT = SHARED / "data" / "autocbt-psyqa-cbt-responses-zh"
KEEP = ("id", "prediction", "backbone", "seconds", "crisis", "max_new_tokens", "temperature")


def _cbtllm_rows(ids: set[str] | None = None) -> list[dict]:
    rows = [{"id": str(o["questionID"]), "prediction": o["cbt_answer"], "backbone": "cbt-llm"}
            for _, o in iter_json_objects(AUTOCBT / "psyqa_balanced_cbtllm.json")]  # fmt: skip
    return [r for r in rows if ids is None or r["id"] in ids]


def _predict(out: Path, batch_size: int, max_new_tokens: int) -> None:
    from eval.predict import run_predict

    cfg = PredictConfig("cbt-mini", str(AUTOCBT / "psyqa_balanced_cbtllm.json"), str(out), batch_size=batch_size,
                        max_new_tokens=max_new_tokens, temperature=0.0)  # fmt: skip
    print(json.dumps(run_predict(cfg)), file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "reports" / "autocbt100"))
    p.add_argument("--mini", default="", help="CBT-mini predictions JSONL (default: OUT/cbt-mini.predictions.jsonl)")
    p.add_argument("--predict", action="store_true", help="run CBT-mini on the 100 questions first (resumable)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=400)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--note", default="", help="Markdown added to the report's notes (e.g. run conditions)")
    args = p.parse_args()
    out = Path(args.out)
    mini = Path(args.mini) if args.mini else out / "cbt-mini.predictions.jsonl"
    if args.predict:
        _predict(mini, args.batch_size, args.max_new_tokens)
    mini_rows = [o for _, o in iter_json_objects(mini)]
    committed = out / "cbt-mini.predictions.jsonl"
    # committed: our model's answers only, never the PsyQA question text (PsyQA may not be redistributed)
    write_jsonl(committed, [{k: r[k] for k in KEEP if k in r} for r in mini_rows])
    ids = {str(r["id"]) for r in mini_rows}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files, names = [Path(tmp) / "cbtllm.jsonl"], ["CBT-LLM (paper's model, 100 answers)"]
        write_jsonl(files[0], _cbtllm_rows())
        if len(ids) < 100:  # the same questions as CBT-mini, so the two rows compare like with like
            files.append(Path(tmp) / "cbtllm_subset.jsonl")
            names.append(f"CBT-LLM (paper's model, the {len(ids)} questions CBT-mini answered)")
            write_jsonl(files[-1], _cbtllm_rows(ids))
        files.append(committed)
        names.append(f"CBT-mini (Gemma-3-270M + LoRA, greedy, {len(ids)} answers)")
        cfg = ReportConfig(
            predictions=[str(f) for f in files], names=names, out=str(out), allow_missing=True, n_boot=args.n_boot,
            references=str(AUTOCBT / "psyqa_balanced_qwen_prompt.json"), reference_field="cbt_answer",
            title="Table 4 on real data: 100 PsyQA questions (AutoCBT release)",
            notes=_notes(mini_rows) + (f"\n\n{args.note}" if args.note else ""),
            compare=["2:1"] if len(files) == 3 else [],
        )  # fmt: skip
        written = write_report(cfg)
    seconds = time.perf_counter() - start
    print(json.dumps({"written": written, "report_seconds": round(seconds, 1), "machine": _machine()}))


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _notes(mini_rows: list[dict]) -> str:
    secs = [float(r.get("seconds", 0)) for r in mini_rows]
    mnt = {r.get("max_new_tokens") for r in mini_rows}
    return (
        "Setting: the references are Qwen1.5-7B-Chat answers written with the paper's CBT prompt (AutoCBT release, "
        "`psyqa_balanced_qwen_prompt.json`, field `cbt_answer`), the closest public stand-in for the paper's "
        "ChatGPT references. Rows: the CBT-LLM model's own answers (`psyqa_balanced_cbtllm.json`) and CBT-mini "
        f"answering the same questions (prompt = training instruction + question + description; greedy; "
        f"max_new_tokens {sorted(x for x in mnt if x)}; mean {sum(secs) / max(len(secs), 1):.1f} s per answer "
        f"batched, wall time on {_machine()}). Data read at run time from "
        "`../shared/data/autocbt-psyqa-cbt-responses-zh`; regenerate with `python bench/run_table4.py`."
    )


if __name__ == "__main__":
    main()
