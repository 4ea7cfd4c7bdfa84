"""CBT-mini against its own base on the sample set's test split, greedy.

    python bench/eval_mini.py [--n 16] [--max-new-tokens 384] [--batch 8]

Writes predictions to outputs/eval_mini/ and prints one JSON line: structure score (segmenter), BLEU and
chrF against the reference answers, generation speed, for both models.
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

from cbt.backends.base import GenParams  # noqa: E402
from cbt.backends.gemma_base import DEFAULT_DIR  # noqa: E402
from cbt.backends.hf import HFBackend  # noqa: E402
from cbt.io import load_sample, write_jsonl  # noqa: E402
from cbt.prompter import Prompter  # noqa: E402
from cbt.split import split_records  # noqa: E402
from eval.metrics import bleu, chrf, structure  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=384)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--base", default=str(DEFAULT_DIR))
    p.add_argument("--adapter", default=str(ROOT / "models" / "cbt-mini" / "adapter"))
    args = p.parse_args()
    _, test = split_records(load_sample())
    test = test[: args.n]
    prompter = Prompter()
    convs = [
        [
            {"role": "system", "content": prompter.instruction},
            {"role": "user", "content": prompter.input_text(r.question, r.description)},
        ]
        for r in test
    ]
    refs = [r.answer for r in test]
    params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    out_dir = ROOT / "outputs" / "eval_mini"
    result = {"test_questions": len(test), "max_new_tokens": args.max_new_tokens}
    for name, adapter in (("gemma-270m-base", None), ("cbt-mini", args.adapter)):
        backend = HFBackend(args.base, adapter=adapter, device="cpu")
        backend.load()
        start = time.perf_counter()
        preds = []
        for i in range(0, len(convs), args.batch):
            preds += backend.generate_batch(convs[i : i + args.batch], params)
        seconds = time.perf_counter() - start
        tokens = sum(len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in preds)
        write_jsonl(
            out_dir / f"{name}.jsonl",
            [{"id": r.id, "prediction": t, "backbone": name} for r, t in zip(test, preds, strict=True)],
        )
        s = structure(preds)
        result[name] = {
            "structure_score": round(s["score"], 3),
            "all_five_parts": round(s["all_five"], 3),
            "bleu": round(bleu(preds, refs)["score"], 2),
            "chrf": round(chrf(preds, refs)["score"], 2),
            "mean_chars": round(sum(map(len, preds)) / len(preds), 1),
            "tokens_per_s_batched": round(tokens / seconds, 1),
        }
    result["bleu_signature"] = bleu(["a"], ["a"])["signature"]
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
