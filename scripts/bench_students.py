"""Benchmark: all three students on the shipped SST-2 label set, distilled vs gold labels only.

    .venv/bin/python scripts/bench_students.py                 # trains 6 runs, then times them (~40 min, 2 cores)
    .venv/bin/python scripts/bench_students.py --timing-only   # re-time the trained runs on a quiet machine

For each student (bilstm, cnn, transformer), with the defaults of `python -m distill.train`:
- dev accuracy when distilled from the teacher's logits (the shipped label set, MSE loss);
- dev accuracy trained on gold labels alone (`--alpha 1 --rows original`: only original rows
  have gold labels), with the same number of optimiser steps;
- parameters with and without the embedding table;
- CPU latency at batch 1 and 32, and the speedup over the teacher and over BERT-base.
All latencies come from one process, one thread setting, one phase after training, so the
speedups are ratios measured side by side. Results go to scripts/results/bench_students.{json,md}
and into README.md between the bench_students markers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import publish, run_jobs

from distill.data.tokenizer import encode
from distill.teacher.labelset import (
    DEFAULT_LABELS,
    LabelSet,
)
from distill.training.report import (
    measure_latency,
    model_from_config,
    random_model,
    student_inputs,
    teacher_inputs,
)
from distill.training.runfolder import load_run
from distill.training.student import teacher_length

STUDENTS = ("bilstm", "cnn", "transformer")
# distilled: teacher logits on every row of the shipped label set (original + augmented);
# gold: cross-entropy on gold labels, which only the original rows have. Each takes distill.train's
# default schedule, so their step counts differ: scripts/bench_quality.py is the equal-budget comparison.
MODES = {"distilled": [], "gold": ["--alpha", "1", "--rows", "original"]}
TARGET_DROP_POINTS = 3.0
TARGET_BILSTM_SPEEDUP_B1 = 20.0


def train_all(out: Path, students: tuple[str, ...], modes: dict[str, list[str]] = MODES, jobs: int = 1) -> dict:
    """Train (or reuse) runs/bench/<student>-<mode> for each student and mode.

    Each run is `python -m distill.train` in a subprocess (log in <run>.log). With jobs > 1, that
    many run at once with one thread each: more runs per hour on 2 cores, slower runs."""
    jobs_list = []
    for mode, extra in modes.items():  # mode-major: the first mode's runs of every student come first
        for student in students:
            run_dir = out / f"{student}-{mode}"
            jobs_list.append((run_dir, ["--student", student, "--output-dir", str(run_dir), "--latency-repeats", "3",
                                        "--no-progress", "--overwrite", *extra]))
    run_jobs(jobs_list, jobs)
    results = {}
    for student in students:
        for mode in modes:
            run_dir = out / f"{student}-{mode}"
            report = json.loads((run_dir / "report.json").read_text())
            results[(student, mode)] = {"dev_metric": report["student"]["dev_metric"],
                                        "wall_seconds": report.get("bench_wall_seconds"),
                                        "parallel_jobs": report.get("bench_parallel_jobs", 1),
                                        "best_epoch": report["training"]["best_epoch"],
                                        "steps": report["training"]["steps"],
                                        "rows": report["training"].get("rows_by_origin"),
                                        "run_dir": str(run_dir)}
    return results


def time_all(out: Path, students: tuple[str, ...], repeats: int) -> dict:
    """Latency of teacher, BERT-base and each distilled student, in one process."""
    from transformers import BertConfig

    ls = LabelSet.load(DEFAULT_LABELS)
    t_len = teacher_length(ls)
    models = {"teacher": (model_from_config(ls.teacher["config"]),
                          teacher_inputs(ls.teacher["config"]["vocab_size"], t_len, "bert")),
              "bert-base": (random_model(BertConfig(num_labels=2)), teacher_inputs(30522, t_len, "bert"))}
    sizes = {}
    for name in ("teacher", "bert-base"):
        m = models[name][0]
        total = sum(p.numel() for p in m.parameters())
        emb = sum(p.numel() for n, p in m.named_parameters() if n.endswith("_embeddings.weight"))
        sizes[name] = (total, total - emb)
    for student in students:
        model, tok, _ = load_run(out / f"{student}-distilled")
        dev = encode(ls.splits["dev"], ls.logits["dev"], tok)
        s_len = max(1, int(np.median(dev.lengths)))
        models[student] = (model, student_inputs(tok.vocab_size, s_len, False))
        sizes[student] = (model.num_parameters(), model.num_parameters(exclude_embeddings=True))
    latency = {}
    for name, (model, make) in models.items():
        print(f"timing {name} ...", flush=True)
        latency[name] = measure_latency(model, make, "cpu", repeats=repeats)
    return {"latency_ms": latency, "params": sizes, "teacher_length": t_len, "threads": torch.get_num_threads()}


def render(results: dict, timing: dict, students: tuple[str, ...], teacher_metric: float) -> tuple[dict, str]:
    lat, params = timing["latency_ms"], timing["params"]
    rows = []
    for s in students:
        d, g = results[(s, "distilled")], results[(s, "gold")]
        rows.append({
            "student": s,
            "params": params[s][0], "params_without_embeddings": params[s][1],
            "dev_distilled": d["dev_metric"], "dev_gold_only": g["dev_metric"],
            "drop_from_teacher_points": round(100 * (teacher_metric - d["dev_metric"]), 2),
            "gain_from_distillation_points": round(100 * (d["dev_metric"] - g["dev_metric"]), 2),
            "cpu_b1_ms": lat[s]["cpu_b1"], "cpu_b32_ms": lat[s]["cpu_b32"],
            "speedup_vs_teacher_b1": round(lat["teacher"]["cpu_b1"] / lat[s]["cpu_b1"], 1),
            "speedup_vs_teacher_b32": round(lat["teacher"]["cpu_b32"] / lat[s]["cpu_b32"], 1),
            "speedup_vs_bert_base_b1": round(lat["bert-base"]["cpu_b1"] / lat[s]["cpu_b1"], 1),
            "speedup_vs_bert_base_b32": round(lat["bert-base"]["cpu_b32"] / lat[s]["cpu_b32"], 1),
            "train_wall_seconds_distilled": d["wall_seconds"],
        })
    out = {"task": "sst2", "teacher": "minilm-sst2", "teacher_dev": teacher_metric, "timing": timing,
           "rows": rows, "targets": {"max_drop_points": TARGET_DROP_POINTS,
                                     "bilstm_min_speedup_vs_bert_base_b1": TARGET_BILSTM_SPEEDUP_B1}}
    lines = [
        f"SST-2 dev accuracy; teacher minilm-sst2 {100 * teacher_metric:.2f}. CPU latency: median ms, "
        f"{timing['threads']} threads, {timing['teacher_length']} teacher tokens; "
        f"teacher {lat['teacher']['cpu_b1']:.1f} / {lat['teacher']['cpu_b32']:.1f} ms and BERT-base "
        f"{lat['bert-base']['cpu_b1']:.1f} / {lat['bert-base']['cpu_b32']:.1f} ms at batch 1 / 32.",
        "",
        "| student | params | w/o emb | dev distilled | dev gold only | drop vs teacher | b1 ms | b32 ms "
        "| speedup vs BERT-base b1 / b32 | vs teacher b1 / b32 | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['student']} | {r['params'] / 1e6:.2f}M | {r['params_without_embeddings'] / 1e6:.2f}M "
            f"| {100 * r['dev_distilled']:.2f} | {100 * r['dev_gold_only']:.2f} "
            f"| {r['drop_from_teacher_points']:+.2f} | {r['cpu_b1_ms']:.2f} | {r['cpu_b32_ms']:.2f} "
            f"| {r['speedup_vs_bert_base_b1']}x / {r['speedup_vs_bert_base_b32']}x "
            f"| {r['speedup_vs_teacher_b1']}x / {r['speedup_vs_teacher_b32']}x "
            f"| {r['train_wall_seconds_distilled'] or 0:.0f} s |")
    jobs = results[(students[0], "distilled")].get("parallel_jobs", 1)
    lines += ["", f"Train time: wall time of each distilled run, {jobs} training run(s) at once"
              + (" (1 thread each)" if jobs > 1 else "") + ", timed by this script. "
              "Dev accuracy is the best epoch's; distilled and gold-only runs take the same number of steps."]
    return out, "\n".join(lines) + "\n"


def main_bench(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "bench"), help="where the trained runs go")
    p.add_argument("--students", default=",".join(STUDENTS), help="comma-separated students")
    p.add_argument("--timing-only", action="store_true", help="only re-time already trained runs")
    p.add_argument("--repeats", type=int, default=40, help="timed passes at batch 1 (a quarter at 32)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for timing (default: torch's)")
    p.add_argument("--jobs", type=int, default=1, help="training runs at once (1 thread each when > 1)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    students = tuple(args.students.split(","))
    results_dir = ROOT / "scripts" / "results"
    results_dir.mkdir(exist_ok=True)
    if args.timing_only:
        saved = json.loads((results_dir / "bench_students.json").read_text())
        results = {(r["student"], m): {"dev_metric": r[f"dev_{k}"],
                                       "wall_seconds": r["train_wall_seconds_distilled"] if m == "distilled" else None}
                   for r in saved["rows"] for m, k in (("distilled", "distilled"), ("gold", "gold_only"))}
    else:
        results = train_all(out, students, MODES, args.jobs)
    timing = time_all(out, students, args.repeats)
    teacher_metric = LabelSet.load(DEFAULT_LABELS).teacher["dev_metric"]
    data, md = render(results, timing, students, teacher_metric)
    publish("bench_students", data, md)
    print(md)


if __name__ == "__main__":
    main_bench()
