"""Benchmark: the real MiniLM SST-2 teacher labelling on PyTorch, ONNX Runtime fp32 and ONNX Runtime int8.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_label_runtime.py [--train-rows 2000] [--threads 1]

Labels the first --train-rows SST-2 training sentences and the dev set (872) with each runtime
(`distill.label --runtime torch|onnx|onnx-int8`, no augmentation) and reports rows/s of the whole
labelling call (ONNX export, quantization and checks included, so short runs understate ONNX),
the largest logit difference from the PyTorch labels, label agreement, and the int8 teacher's dev
accuracy. Writes scripts/results/bench_label_runtime.{json,md}. About a minute on one thread.

A second table times the teacher's model call alone in steady state (no export, no checks): the dev set in
length-sorted batches of 64, each system once per round, rounds rotated (--rounds), median seconds. Beside
PyTorch eager and the two graphs `distill.label` runs (ONNX fp32, and its int8: MatMul and Gather weights
per channel), it times the same export after ONNX Runtime's transformer fusion (`onnxruntime.transformers.
optimizer`, the teacher exported with eager attention so that Attention fuses too) in fp32 and with its
MatMul and Attention nodes in dynamic int8: what the labelling path could gain from fusion. --no-steady skips
it (about 3 minutes on one thread).
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


STEADY_BATCH = 64
TORCH = "PyTorch eager (distill.label --runtime torch)"  # the steady-state baseline


def steady_state(teacher: Path, dev: Split, work: Path, threads: int, rounds: int) -> dict:
    """The teacher's model call alone on `dev`, per system (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill.bundle.trace import quiet
    from distill.teacher import onnx_teacher

    tok = AutoTokenizer.from_pretrained(teacher)
    model = AutoModelForSequenceClassification.from_pretrained(teacher).eval()
    texts = [t[0] for t in dev.texts]
    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = [order[i:i + STEADY_BATCH] for i in range(0, len(order), STEADY_BATCH)]
    encs = [tok([texts[j] for j in b], padding=True, truncation=True, max_length=128, return_tensors="np")
            for b in batches]
    names = onnx_teacher.teacher_inputs(model, tok)
    work.mkdir(parents=True, exist_ok=True)
    plain = onnx_teacher.export_teacher(model, tok, work / "steady.onnx", 128)
    eager = AutoModelForSequenceClassification.from_pretrained(teacher, attn_implementation="eager").eval()
    cfg = eager.config
    fused_src = onnx_teacher.export_teacher(eager, tok, work / "steady-eager.onnx", 128)
    fused_path, fused_int8 = work / "steady-fused.onnx", work / "steady-fused-int8.onnx"
    with quiet():
        fused = optimizer.optimize_model(str(fused_src), model_type="bert", num_heads=cfg.num_attention_heads,
                                         hidden_size=cfg.hidden_size, opt_level=1)
        fused.save_model_to_file(str(fused_path))
        quantize_dynamic(onnx.load(str(fused_path)), str(fused_int8), op_types_to_quantize=["MatMul", "Attention"],
                         per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
    sessions = {"ONNX fp32 (distill.label --runtime onnx)": plain,
                "ONNX int8 (distill.label --runtime onnx-int8)": onnx_teacher.quantize_teacher(
                    plain, work / "steady.int8.onnx"),
                "ONNX fp32, fused": fused_path, "ONNX int8, fused (MatMul, Attention)": fused_int8}
    sessions = {k: onnx_teacher.OnnxTeacher(v, model.config.num_labels, threads) for k, v in sessions.items()}

    def torch_call():
        with torch.inference_mode():
            return [model(**{n: torch.as_tensor(e[n]) for n in names}).logits.numpy() for e in encs]

    def ort_call(session):
        return lambda: [session({n: e[n] for n in names}) for e in encs]

    systems = {TORCH: torch_call,
               **{k: ort_call(v) for k, v in sessions.items()}}
    times: dict[str, list[float]] = {k: [] for k in systems}
    logits: dict[str, np.ndarray] = {}
    for r in range(rounds):
        keys = list(systems)
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:  # each round starts one system later
            t0 = time.perf_counter()
            parts = systems[k]()
            times[k].append(time.perf_counter() - t0)
            out = np.zeros((len(texts), model.config.num_labels), np.float32)
            for b, part in zip(batches, parts):
                out[b] = part
            logits[k] = out
    gold = np.asarray(dev.labels)
    ref = logits[TORCH].argmax(1)
    med = {k: float(np.median(v)) for k, v in times.items()}
    base = med[TORCH]
    return {"rows": len(texts), "rounds": rounds, "systems": {
        k: {"seconds": med[k], "all_seconds": times[k], "speedup_vs_torch": base / med[k],
            "label_agreement_vs_torch": float((logits[k].argmax(1) == ref).mean()),
            "dev_accuracy": float((logits[k].argmax(1) == gold).mean())} for k in systems}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-rows", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="steady-state table: rotated rounds")
    ap.add_argument("--no-steady", action="store_true", help="skip the steady-state table")
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
        steady = None if args.no_steady else steady_state(teacher, small["dev"], Path(tmp), args.threads,
                                                          args.rounds)
    out = ROOT / "scripts" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_label_runtime.json").write_text(json.dumps(
        {"rows": rows, "threads": args.threads, "results": results, "steady_state": steady}, indent=1))
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
    if steady:
        lines += ["", f"Model call alone, steady state: {steady['rows']} dev rows in length-sorted batches of "
                  f"{STEADY_BATCH}, {args.threads} thread(s), median of {args.rounds} rotated rounds; agreement "
                  "with PyTorch's labels.", "",
                  "| system | seconds | x PyTorch | labels agree vs torch | dev acc |", "|---|---|---|---|---|"]
        for k, r in steady["systems"].items():
            lines.append(f"| {k} | {r['seconds']:.2f} | {r['speedup_vs_torch']:.2f}x | "
                         f"{100 * r['label_agreement_vs_torch']:.2f}% | {100 * r['dev_accuracy']:.2f} |")
    (out / "bench_label_runtime.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
