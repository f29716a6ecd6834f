"""Benchmark: does the search's predicted latency rank students as their exported bundles run?

    .venv/bin/python scripts/bench_latency_rank.py               # about 2-3 minutes on one core
    .venv/bin/python scripts/bench_latency_rank.py --rounds 5

Six students of different sizes (BiLSTM, TextCNN and tiny transformer widths and depths, random
weights: latency does not depend on them) on the shipped SST-2 label set's tokenizer, at the typical
SST-2 length (the median dev length in student tokens, as search.run times). For each:
- predicted: what `search.run` computes for its latency budget, with --latency-runtime onnx (the
  default: exported by the export's code and timed by ONNX Runtime) and with --latency-runtime torch
  (the PyTorch eager student), 1 thread, batch 1;
- measured: the student saved as a run folder, exported as a real bundle with distill.export (fp32),
  and timed through the bundle's own runner (distill.bundle.runtime.Bundle.logits), 1 thread, batch 1,
  in rotated blocks: each round times every bundle once, in a rotated order, so load drift on a
  shared machine spreads over all of them; the latency is the median of the rounds' block medians.
The result is Spearman's rank correlation of each prediction with the measured latency (target for
the ONNX prediction: >= 0.8). Results go to scripts/results/bench_latency_rank.{json,md} and into
README.md between the bench_latency_rank markers.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import publish

from distill import export
from distill.bundle.runtime import Bundle
from distill.train import TrainArgs
from distill.training.report import median_ms
from distill.training.runfolder import run_config, write_run_files
from search.budget import Budget, Timing, measure
from search.objective import Objective, TrialSettings, trial_args
from search.probe import median_dev_length
from search.space import Candidate

TARGET = 0.8
TRAINING = {"dropout": 0.1, "lr": 1e-3, "alpha": 0.0}  # not timed; Candidate.describe shows them


def cand(student: str, train: dict, arch: dict) -> Candidate:
    return Candidate(student, train | TRAINING, arch)


CANDIDATES = [  # smallest to largest compute, mixing the three students
    cand("cnn", {"width": 32, "depth": None, "embed_dim": 32}, {"filter_widths": (3, 4), "mlp_hidden": 0}),
    cand("transformer", {"width": 64, "depth": 1, "embed_dim": 64}, {"heads": 2, "ff_dim": 128}),
    cand("bilstm", {"width": 64, "depth": 1, "embed_dim": 64}, {"mlp_hidden": 64}),
    cand("cnn", {"width": 256, "depth": None, "embed_dim": 128},
              {"filter_widths": (2, 3, 4, 5), "mlp_hidden": 256}),
    cand("transformer", {"width": 192, "depth": 4, "embed_dim": 128}, {"heads": 4, "ff_dim": 768}),
    cand("bilstm", {"width": 256, "depth": 2, "embed_dim": 128}, {"mlp_hidden": 256}),
]


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (ties get their mean rank)."""
    def ranks(x):
        x = np.asarray(x, float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # ties: the mean of their ranks
            r[x == v] = r[x == v].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def bundle_latencies(bundles: list[Bundle], length: int, rounds: int, calls: int) -> list[float]:
    """Median ms per bundle of one batch-1 call, timed in rotated blocks of `calls` calls."""
    rng = np.random.default_rng(0)
    inputs = []
    for b in bundles:
        vocab = b.tokenizer.get_vocab_size(with_added_tokens=True)
        ids = rng.integers(2, vocab, size=(1, length), dtype=np.int64)
        inputs.append((ids, np.ones_like(ids)))
    blocks: list[list[float]] = [[] for _ in bundles]
    for r in range(rounds):
        for k in range(len(bundles)):
            i = (k + r) % len(bundles)
            ids, mask = inputs[i]
            blocks[i].append(median_ms(lambda b=bundles[i], ids=ids, mask=mask: b.logits(ids, mask), 3, calls))
    return [statistics.median(x) for x in blocks]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-latency-rank"), help="run folders and bundles")
    p.add_argument("--repeats", type=int, default=20, help="timed calls of each prediction (search.run's default)")
    p.add_argument("--rounds", type=int, default=7, help="rotated rounds of bundle timing")
    p.add_argument("--calls", type=int, default=30, help="timed calls per bundle per round")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    out = Path(args.out)
    base = TrainArgs(student="bilstm", no_progress=True)
    objective = Objective(TrialSettings(base=base, students=("bilstm", "cnn", "transformer"), budget=Budget()),
                          device="cpu")
    length = median_dev_length(objective, base)
    timing = Timing(batch=1, length=length, threads=1, repeats=args.repeats, runtime="onnx")
    ls = objective.ls
    rows, bundles = [], []
    # the run folders only feed the export (random weights): a temporary folder, never one of the user's
    with tempfile.TemporaryDirectory(prefix="bench-latency-rank-") as tmp:
        for i, c in enumerate(CANDIDATES):
            targs = trial_args(base, c)
            tok = objective.tokenizer(targs)
            torch.manual_seed(i)
            model, onnx_cost = objective.cost_of(c, targs)  # what search.run computes (the ONNX path)
            torch_cost = measure(model, tok.vocab_size, ls.task.pair, dataclasses.replace(timing, runtime="torch"))
            run_dir, bundle_dir = Path(tmp) / f"{i}-{c.student}", out / "bundles" / f"{i}-{c.student}"
            run_dir.mkdir()
            write_run_files(run_dir, config=run_config(targs, model, ls, tok, "random", {}), tok=tok, model=model)
            export.run(export.parse_args([str(run_dir), "--output-dir", str(bundle_dir), "--overwrite",
                                          "--parity-rows", "100", "--threads", "1"]))
            bundles.append(Bundle(bundle_dir, threads=1))
            rows.append({"student": c.student, "config": c.describe(), "params": onnx_cost.params,
                         "predicted_onnx_ms": round(onnx_cost.latency_ms, 4),
                         "predicted_torch_ms": round(torch_cost.latency_ms, 4)})
            print(f"{c.describe()}: predicted {onnx_cost.latency_ms:.3f} ms (ONNX), "
                  f"{torch_cost.latency_ms:.3f} ms (PyTorch)", flush=True)
    for row, ms in zip(rows, bundle_latencies(bundles, length, args.rounds, args.calls)):
        row["bundle_ms"] = round(ms, 4)
    measured = [r["bundle_ms"] for r in rows]
    rho_onnx = spearman([r["predicted_onnx_ms"] for r in rows], measured)
    rho_torch = spearman([r["predicted_torch_ms"] for r in rows], measured)
    seconds = time.perf_counter() - t_start
    data = {"rows": rows, "spearman_onnx": round(rho_onnx, 3), "spearman_torch": round(rho_torch, 3),
            "target": TARGET, "passed": rho_onnx >= TARGET, "length": length, "threads": 1, "batch": 1,
            "repeats": args.repeats, "rounds": args.rounds, "calls": args.calls, "seconds": round(seconds, 1),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads()}}
    lines = [f"Predicted latency (what `search.run` times for its budget) against the exported bundle's, "
             f"batch 1, {length} tokens (the median SST-2 dev length), 1 thread, random weights "
             f"(`scripts/bench_latency_rank.py`, {seconds:.0f} s).", "",
             "| student | params | predicted, ONNX Runtime (default) ms | predicted, PyTorch eager ms | "
             "bundle (distill.export, ONNX Runtime) ms |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config'].split(' drop=')[0]} | {r['params']:,} | {r['predicted_onnx_ms']:.3f} | "
                     f"{r['predicted_torch_ms']:.3f} | {r['bundle_ms']:.3f} |")
    lines += ["", f"Spearman rank correlation with the bundle: **{rho_onnx:.2f}** for `--latency-runtime onnx` "
              f"(target >= {TARGET}: {'met' if rho_onnx >= TARGET else 'NOT met'}), {rho_torch:.2f} for "
              "`--latency-runtime torch`. Bundles are timed in rotated blocks "
              f"({args.rounds} rounds of {args.calls} calls), on a 2-core machine that other jobs may share.", ""]
    publish("bench_latency_rank", data, "\n".join(lines))


if __name__ == "__main__":
    main()
