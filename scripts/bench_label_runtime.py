"""Benchmark: the real MiniLM SST-2 teacher labelling on PyTorch, ONNX Runtime fp32 and ONNX Runtime int8.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_label_runtime.py [--train-rows 2000] [--threads 1]

Labels the first --train-rows SST-2 training sentences and the dev set (872) with each runtime
(`distill.label --runtime torch|onnx|onnx-int8`, no augmentation) and reports rows/s of the whole
labelling call (ONNX export, quantization and checks included, so short runs understate ONNX),
the largest logit difference from the PyTorch labels, label agreement, and the int8 teacher's dev
accuracy. Writes scripts/results/bench_label_runtime.{json,md}. About a minute on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from distill.data import Split, load_splits, resolve_task  # noqa: E402
from distill.errors import DistillError  # noqa: E402
from distill.teacher import labelling  # noqa: E402

SHARED = ROOT.parent / "shared"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-rows", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    teacher = SHARED / "teachers" / "minilm-sst2"
    task, splits = load_splits(resolve_task("sst2"), SHARED / "data" / "glue" / "sst2")
    train = splits["train"]
    small = {"train": Split(train.texts[: args.train_rows], train.labels[: args.train_rows], train.source),
             "dev": splits["dev"]}
    rows = sum(len(s) for s in small.values())
    results, ref = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in ("torch", "onnx", "onnx-int8"):
            t0 = time.perf_counter()
            try:
                ls = labelling.label(str(teacher), task, small, Path(tmp) / runtime, progress=False,
                                     runtime=runtime, threads=args.threads, device=torch.device("cpu"))
            except DistillError as e:  # the int8 gate refusing is a result too
                results[runtime] = {"refused": str(e), "seconds": round(time.perf_counter() - t0, 1)}
                print(runtime, "refused:", e, flush=True)
                continue
            seconds = time.perf_counter() - t0
            logits = np.concatenate([ls.logits["train"], ls.logits["dev"]])
            ref = logits if ref is None else ref
            results[runtime] = {
                "seconds": round(seconds, 1), "rows_per_s": round(rows / seconds, 1),
                "max_abs_logit_diff_vs_torch": float(np.abs(logits - ref).max()),
                "label_agreement_vs_torch": float((logits.argmax(1) == ref.argmax(1)).mean()),
                "dev_accuracy": ls.teacher["dev_metric"], "runtime_manifest": ls.manifest["runtime"]}
            print(runtime, json.dumps({k: v for k, v in results[runtime].items() if k != "runtime_manifest"}),
                  flush=True)
    out = ROOT / "scripts" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_label_runtime.json").write_text(json.dumps(
        {"rows": rows, "threads": args.threads, "results": results}, indent=1))
    lines = [f"MiniLM-L6 SST-2 teacher, {rows:,} rows ({args.train_rows:,} train + {len(small['dev'])} dev), "
             f"{args.threads} thread(s), CPU; seconds include export, quantization and checks.", "",
             "| runtime | seconds | rows/s | max logit diff vs torch | labels agree vs torch | dev acc |",
             "|---|---|---|---|---|---|"]
    refused = [f"{k}: {r['refused']}" for k, r in results.items() if "refused" in r]
    for k, r in results.items():
        if "refused" in r:
            lines.append(f"| {k} | {r['seconds']} | refused | — | — | — |")
            continue
        lines.append(f"| {k} | {r['seconds']} | {r['rows_per_s']:,.0f} | {r['max_abs_logit_diff_vs_torch']:.1e} | "
                     f"{100 * r['label_agreement_vs_torch']:.2f}% | {100 * r['dev_accuracy']:.2f} |")
    lines += ["", *refused] if refused else []
    (out / "bench_label_runtime.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
