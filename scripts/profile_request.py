"""Where a bundle's request goes, and what ONNX Runtime's settings and the BiLSTM's graph cost.

    .venv/bin/python scripts/profile_request.py        # after scripts/bench_export.py (its bundles and runs)

On one thread, for the shipped bundles of scripts/bench_export.py (exports/bench/<student>/onnx-int8 where int8
was kept, else onnx), interleaved in rounds so that drift hits all alike:
1. the request path: the tokenizer, `Bundle.encode`, the model call and `Bundle.predict` (median ms over
   SST-2 dev sentences, one per call);
2. the model call under other session options: no spinning, no memory pattern, no arena, the extended
   optimisation level instead of all, and inputs passed as OrtValues;
3. the BiLSTM's int8 model call in three graphs, each quantized as its bundle is: traced by torch.onnx, with
   the student's hand-built backward direction (reverse each row within its length, a forward LSTM, reverse
   back: the graph bundles had before); traced with a plain flip and a plain max instead (right only for one
   unpadded row, how an int8 bundle runs); and the shipped graph (distill.bundle.onnx_bilstm: one
   bidirectional LSTM node per layer, with each row's length). The first two are not shipped.
Results: scripts/results/profile_request.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from benchlib import publish  # noqa: E402

SST2_DEV = ROOT.parent / "shared" / "data" / "glue" / "sst2" / "dev.tsv"
STUDENTS = ("bilstm", "cnn")


def shipped(exports: Path, student: str) -> str:
    """The bundle folder bench_export ships for a student: its int8 export if int8 was kept, else fp32."""
    meta = exports / student / "onnx-int8" / "metadata.json"
    return "onnx-int8" if meta.is_file() and json.loads(meta.read_text())["precision"] == "int8" else "onnx"
GRAPHS = {"traced": "traced, the student's own backward direction", "flip": "traced with a plain flip and max",
          "shipped": "one bidirectional LSTM node (shipped)"}
OPTIONS = ("default", "no spinning", "no memory pattern", "no arena", "extended optimisation", "OrtValue inputs")


def session(path: Path, option: str = "default"):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = 1, 1, 3
    if option == "no spinning":
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif option == "no memory pattern":
        o.enable_mem_pattern = False
    elif option == "no arena":
        o.enable_cpu_mem_arena = False
    elif option == "extended optimisation":
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def call(sess, option: str):
    import onnxruntime as ort

    if option == "OrtValue inputs":
        def run(ids, mask):
            feeds = {"input_ids": ort.OrtValue.ortvalue_from_numpy(ids),
                     "attention_mask": ort.OrtValue.ortvalue_from_numpy(mask)}
            return sess.run_with_ort_values(["logits"], feeds)[0].numpy()
        return run
    return lambda ids, mask: sess.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def timed(fns: dict, inputs: list[tuple], rounds: int) -> dict[str, float]:
    """Median ms of fn(*x) over inputs, each fn in turn within every round; the first round is warm-up."""
    times = {k: [] for k in fns}
    for r in range(rounds + 1):
        for k, fn in fns.items():
            for x in inputs:
                t0 = time.perf_counter()
                fn(*x)
                if r:
                    times[k].append(time.perf_counter() - t0)
    return {k: round(1e3 * statistics.median(v), 4) for k, v in times.items()}


def graph_cost(run_dir: Path, ids: list, rounds: int) -> dict:
    """The BiLSTM's int8 model call in three graphs: traced (the PyTorch student's hand-built backward direction),
    traced with a plain flip and max (right for one unpadded row only), and the shipped one (one bidirectional
    LSTM node per layer, distill.bundle.onnx_bilstm)."""
    import onnx
    import torch

    import students.bilstm as B
    from distill.bundle.onnx import export_onnx, export_traced, quantize_onnx
    from distill.training.runfolder import load_run

    model, _, _ = load_run(run_dir)
    model.eval()
    general, pooled = B.reverse_within_length, B.masked_max_pool
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        export_traced(model, out / "traced.onnx", pair=False, max_length=128)
        try:  # encode() reads these module globals at call time
            B.reverse_within_length = lambda x, lengths: torch.flip(x, dims=[1])
            B.masked_max_pool = lambda h, mask: h.amax(dim=1)
            export_traced(model, out / "flip.onnx", pair=False, max_length=128)
        finally:
            B.reverse_within_length, B.masked_max_pool = general, pooled
        export_onnx(model, out / "shipped.onnx", pair=False, max_length=128)
        for k in GRAPHS:
            quantize_onnx(out / f"{k}.onnx", out / f"{k}8.onnx", "bilstm")
        runs = {k: call(session(out / f"{k}8.onnx"), "default") for k in GRAPHS}
        nodes = {k: len(onnx.load(out / f"{k}8.onnx").graph.node) for k in GRAPHS}
        feeds = [(x, np.ones_like(x)) for x in ids]
        diff = max(float(np.abs(runs["shipped"](*x) - runs["traced"](*x)).max()) for x in feeds)
        ms = timed(runs, feeds, rounds)
    return {"nodes": nodes, "ms": ms, "max_logit_diff_shipped_vs_traced": diff}


def request_path(bundle, texts: list[str], rounds: int) -> tuple[dict, dict]:
    """The request path's parts, and the model call under each session option (median ms)."""
    rows = [(t,) for t in texts]
    encoded = [bundle.encode([t])[:2] for t in texts]
    path = {**timed({"tokenizer": lambda t: bundle.tokenizer.encode(t, add_special_tokens=False),
                     "encode": lambda t: bundle.encode([t]), "predict": lambda t: bundle.predict([t])}, rows, rounds),
            **timed({"model call": bundle.logits}, encoded, rounds)}
    options = timed({o: call(session(bundle.model_path, o), o) for o in OPTIONS}, encoded, rounds)
    return path, options


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--exports", default=str(ROOT / "exports" / "bench"), help="scripts/bench_export.py's bundles")
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench"), help="scripts/bench_export.py's runs")
    p.add_argument("--texts", type=int, default=200, help="SST-2 dev sentences timed per round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    from distill.bundle.runtime import Bundle

    exports, runs = Path(args.exports), Path(args.runs)
    bundles = {s: shipped(exports, s) for s in STUDENTS}
    missing = [exports / s / f for s, f in bundles.items() if not (exports / s / f).is_dir()]
    if missing or not (runs / "bilstm-distilled").is_dir() or not SST2_DEV.is_file():
        sys.exit(f"error: needs scripts/bench_export.py's bundles and runs ({', '.join(map(str, missing)) or runs}) "
                 f"and {SST2_DEV}; run scripts/bench_export.py first")
    with open(SST2_DEV, newline="") as f:
        texts = [row["sentence"] for row in csv.DictReader(f, delimiter="\t")][: args.texts]
    out = {"texts": len(texts), "rounds": args.rounds, "threads": 1, "path": {}, "options": {}}
    for student, folder in bundles.items():
        bundle = Bundle(exports / student / folder, threads=1)
        out["path"][student], out["options"][student] = request_path(bundle, texts, args.rounds)
    bilstm = Bundle(exports / "bilstm" / bundles["bilstm"], threads=1)
    ids = [bilstm.encode([t])[0] for t in texts[:50]]  # (1, T) each: one unpadded row
    out["graphs"] = graph_cost(runs / "bilstm-distilled", ids, args.rounds)

    lines = [f"One thread, median ms over {len(texts)} SST-2 dev sentences x {args.rounds} rounds (interleaved), "
             f"the bundles of scripts/bench_export.py ({', '.join(f'{s}: {f}' for s, f in bundles.items())}).", "",
             "| student | tokenizer | Bundle.encode | model call | Bundle.predict |", "|---|---|---|---|---|"]
    for s, r in out["path"].items():
        lines.append(f"| {s} | {r['tokenizer']:.3f} | {r['encode']:.3f} | {r['model call']:.3f} | {r['predict']:.3f} |")
    lines += ["", "| student | " + " | ".join(OPTIONS) + " |", "|---" * (len(OPTIONS) + 1) + "|"]
    for s, r in out["options"].items():
        lines.append(f"| {s} | " + " | ".join(f"{r[o]:.3f}" for o in OPTIONS) + " |")
    m = out["graphs"]
    lines += ["", "BiLSTM int8 model call on one unpadded row, by graph: "
              + "; ".join(f"{GRAPHS[k]} ({m['nodes'][k]} nodes) {m['ms'][k]:.3f} ms" for k in GRAPHS)
              + f". Shipped against traced: {100 * (1 - m['ms']['shipped'] / m['ms']['traced']):.0f}% less time, "
              f"largest logit difference {m['max_logit_diff_shipped_vs_traced']:.1e}."]
    publish("profile_request", out, "\n".join(lines) + "\n", readme=False)


if __name__ == "__main__":
    main()
