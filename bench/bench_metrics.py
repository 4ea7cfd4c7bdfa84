"""Benchmark: the text metrics (BLEU, chrF, METEOR, structure, distortion coverage) on 2,233 pairs of ~500 chars.

    python bench/bench_metrics.py [--n 2233] [--chars 500] [--workers 2] [--no-baseline] [--out PATH]

Pairs: for question i % 100 of ../shared/data/autocbt-psyqa-cbt-responses-zh, a ~500-character window of the
CBT-LLM answer (prediction) against the same window of the Qwen-with-CBT-prompt answer (reference), the
window shifted for each cycle so no two pairs are identical; falls back to the shipped sample set if the
shared data is absent. Target (issue 7): BLEU, chrF, METEOR and structure together <= 30 s on the 2-core
CPU. Times: sacrebleu's own corpus BLEU/chrF (baseline), each metric alone on a fresh Corpus, then one
evaluate() call with all text metrics and 1,000 bootstrap resamples. Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval import metrics as m  # noqa: E402

SHARED = Path(os.environ.get("CBT_SHARED_DIR", ROOT.parent / "shared")) / "data" / "autocbt-psyqa-cbt-responses-zh"


def _answers() -> tuple[list[str], list[str], str]:
    a, b = SHARED / "psyqa_balanced_cbtllm.json", SHARED / "psyqa_balanced_qwen_prompt.json"
    if a.is_file() and b.is_file():
        pred = {r["questionID"]: r["cbt_answer"] for r in json.loads(a.read_text(encoding="utf-8"))}
        ref = {r["questionID"]: r["cbt_answer"] for r in json.loads(b.read_text(encoding="utf-8"))}
        ids = sorted(pred.keys() & ref.keys())
        return [pred[i] for i in ids], [ref[i] for i in ids], "autocbt (CBT-LLM vs Qwen+CBT prompt)"
    from cbt.io import load_sample

    answers = [r.answer for r in load_sample()]
    return answers, answers[1:] + answers[:1], "sample set (answer vs next answer)"


def _window(text: str, cycle: int, chars: int) -> str:
    text = text * (1 + chars // max(len(text), 1))
    start = (cycle * 37) % max(1, len(text) - chars)
    return text[start : start + chars]


def build_pairs(n: int, chars: int) -> tuple[list[str], list[str], str]:
    preds, refs, source = _answers()
    k = len(preds)
    hyps = [_window(preds[i % k], i // k, chars) for i in range(n)]
    return hyps, [_window(refs[i % k], i // k, chars) for i in range(n)], source


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker pool): load-independent."""
    import resource

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def _time(fn, cpu: dict, key: str) -> tuple[float, object]:
    """Wall seconds of fn() (and its CPU seconds into cpu[key])."""
    c0, t0 = _cpu(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    cpu[key] = _cpu() - c0
    return wall, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2233)
    p.add_argument("--chars", type=int, default=500)
    p.add_argument("--workers", type=int, default=None, help="processes (default: min(2, cores))")
    p.add_argument("--no-baseline", action="store_true", help="skip sacrebleu's own BLEU/chrF timing")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_metrics.json")
    args = p.parse_args()
    hyps, refs, source = build_pairs(args.n, args.chars)
    m.jieba_tokens("预热")  # load jieba's dictionary outside the timings (as a long-lived process would)
    rows: dict[str, float] = {}
    cpu: dict[str, float] = {}
    if not args.no_baseline:
        from sacrebleu.metrics import BLEU, CHRF

        key = "sacrebleu BLEU (baseline)"
        rows[key], _ = _time(lambda: BLEU(tokenize="zh").corpus_score(hyps, [refs]), cpu, key)
        key = "sacrebleu chrF (baseline)"
        rows[key], _ = _time(lambda: CHRF().corpus_score(hyps, [refs]), cpu, key)
    scores = {}
    for name in m.TEXT_METRICS:
        key = f"{name} alone"
        rows[key], res = _time(lambda n=name: m.evaluate(hyps, refs, [n], n_boot=0, workers=args.workers), cpu, key)
        scores[name] = res["metrics"][name]["score"]
    four = ["bleu", "chrf", "meteor", "structure"]
    key = "bleu+chrf+meteor+structure, 1000 bootstraps"
    rows[key], _ = _time(lambda: m.evaluate(hyps, refs, four, n_boot=1000, workers=args.workers), cpu, key)
    key = "all 5 text metrics, 1000 bootstraps"
    rows[key], full = _time(
        lambda: m.evaluate(hyps, refs, list(m.TEXT_METRICS), n_boot=1000, workers=args.workers), cpu, key
    )
    result = {
        "pairs": args.n, "mean_chars_pred": sum(map(len, hyps)) / len(hyps),
        "mean_chars_ref": sum(map(len, refs)) / len(refs), "source": source,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "load_avg_1min": os.getloadavg()[0], "seconds": {k: round(v, 2) for k, v in rows.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "scores": {k: round(v, 4) for k, v in scores.items()},
        "ci95": {k: v.get("ci95") for k, v in full["metrics"].items()},
    }  # fmt: skip
    print(f"{'step':<46} {'wall s':>8} {'CPU s':>8}")
    for k, v in rows.items():
        print(f"{k:<46} {v:>8.2f} {cpu[k]:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
