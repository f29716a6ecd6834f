"""Benchmark: the students' table from the teacher's input embeddings or its pooled hidden states, tuned or frozen.

    export NLTK_DATA=../shared/data/nltk_data
    .venv/bin/python scripts/bench_init.py --students cnn --jobs 2     # the label set (~22 min), 4 arms x 3 seeds
    .venv/bin/python scripts/bench_init.py --students bilstm transformer --arms svd contextual --jobs 2   # ~25 min
    .venv/bin/python scripts/bench_init.py --students cnn bilstm --arms svd contextual --seeds 6 --jobs 2  # 3 more
    .venv/bin/python scripts/bench_init.py --students bilstm transformer --arms svd-frozen contextual-frozen --jobs 2
    .venv/bin/python scripts/bench_init.py --report-only --seeds 6     # publish every finished run

1. `python -m distill.label` on SST-2 with the shipped teacher (../shared/teachers/minilm-sst2), made as the
   shipped label set was (2 Tang copies per sentence, the used table rows) and with `--contextual-layer`:
   the label set then stores both tables, so every arm learns the same logits on the same rows.
2. Each student as bench_quality's augmented arm (--steps optimiser steps, dev every --eval-every, --seeds
   seeds) in up to four arms: `--embedding-init teacher-svd` (PCA of the teacher's input table: the CNN's and
   the transformer's default, the BiLSTM's before this benchmark chose),
   `teacher-contextual` (PCA of the hidden states after the layer, pooled per token over the original
   training rows; Bommasani et al. 2020), and each of them with `--freeze-embeddings` (Kim 2014's static).
Every finished arm of every student is reported. Dev chooses; SST-2 has no labelled test split here.
Resumable. Results go to scripts/results/bench_init.{json,md} and into README.md between its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_quality import STUDENTS, _diff, _mean_std, collect, runs_of
from benchlib import publish, run_jobs

from distill.teacher.contextual import default_layer

SHARED = ROOT.parent / "shared"
ARMS = {  # arm: distill.train flags
    "svd": ["--embedding-init", "teacher-svd"],
    "contextual": ["--embedding-init", "teacher-contextual"],
    "svd-frozen": ["--embedding-init", "teacher-svd", "--freeze-embeddings"],  # Kim's static
    "contextual-frozen": ["--embedding-init", "teacher-contextual", "--freeze-embeddings"],
}
COMPARED = (("contextual", "svd"), ("svd-frozen", "svd"), ("contextual-frozen", "contextual"))


def label_argv(labels: Path, layer: str) -> list[str]:
    return ["--teacher", str(SHARED / "teachers" / "minilm-sst2"), "--task", "sst2",
            "--data", str(SHARED / "data" / "glue" / "sst2"), "--augment", "tang", "--augment-copies", "2",
            "--embedding-rows", "used", "--contextual-layer", layer, "--output-dir", str(labels), "--no-progress"]


def render(rows: list[dict], contextual: dict, depth: int, args) -> str:
    lines = [f"SST-2 dev (MiniLM teacher {rows[0]['teacher']:.2f}; the shipped label set's rows and settings, "
             f"labelled again to store the pooled table: layer {contextual['layer']} of {depth}, pooled over "
             f"{contextual['rows_pooled']:,} training rows in {contextual['seconds']:.0f} s). Each run is "
             f"bench_quality's augmented arm: {args.steps} steps, dev every {args.eval_every}; frozen: "
             f"`--freeze-embeddings` (Kim's static)."
             if rows else "No run has finished.", "",
             "| student | " + " | ".join(ARMS) + " | " + " | ".join(f"{a} - {b}" for a, b in COMPARED) + " |",
             "|---|" + "---|" * (len(ARMS) + len(COMPARED))]
    for r in rows:
        stats = {a: r.get(a) for a in ARMS}
        cells = [f"{m[0]:.2f} ± {m[1]:.2f}" + (f" ({m[2]} seeds)" if m[2] != args.seeds else "") if m else "—"
                 for m in stats.values()]
        diffs = [_diff(stats[a][:2], stats[b][:2]) if stats[a] and stats[b] and min(stats[a][2], stats[b][2]) >= 3
                 else "—" for a, b in COMPARED]
        lines.append(f"| {r['student']} | " + " | ".join(cells + diffs) + " |")
    lines += ["", f"Mean ± standard deviation over {args.seeds} seeds unless a cell says otherwise, in points "
              "(— : not run); a difference within "
              "the larger of the two standard deviations is marked noise. Rerun: the commands in this script's "
              "docstring (`scripts/bench_init.py`)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--students", nargs="+", default=list(STUDENTS), choices=STUDENTS)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                   help="arms to run (every finished arm is reported)")
    p.add_argument("--layer", default="middle", help="distill.label --contextual-layer (default: middle)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (at least 3 for a comparison)")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per run")
    p.add_argument("--eval-every", type=int, default=100, help="steps between dev evaluations")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each when > 1)")
    p.add_argument("--out", default=str(ROOT / "runs" / "init"), help="the label set and the runs")
    p.add_argument("--report-only", action="store_true", help="run nothing: publish what has finished")
    args = p.parse_args(argv)
    out = Path(args.out)
    labels = out / "labels" / "sst2"
    if not args.report_only:
        if not (SHARED / "teachers" / "minilm-sst2").is_dir():
            sys.exit(f"error: {SHARED / 'teachers' / 'minilm-sst2'} is missing: this benchmark needs ../shared")
        nltk = SHARED / "data" / "nltk_data"
        if "NLTK_DATA" not in os.environ and nltk.is_dir():
            os.environ["NLTK_DATA"] = str(nltk)  # the POS rule, as the shipped label set had it
        run_jobs([(labels, label_argv(labels, args.layer) + (["--threads", "1"] if args.jobs > 1 else []))],
                 1, "distill.label", done="manifest.json")
    if not (labels / "manifest.json").is_file():
        sys.exit(f"error: {labels} has no finished label set yet; run without --report-only")
    manifest = json.loads((labels / "manifest.json").read_text())
    contextual, depth = manifest.get("contextual"), manifest["teacher"]["config"]["num_hidden_layers"]
    if contextual is None:
        sys.exit(f"error: {labels} stores no contextual table; delete it and run again")
    asked = default_layer(depth) if args.layer == "middle" else int(args.layer) if args.layer.isdigit() else None
    if asked != contextual["layer"]:  # the label set is reused by its folder, so check what it holds
        sys.exit(f"error: {labels} stores layer {contextual['layer']}, not --layer {args.layer}; "
                 "give another --out, or delete it")

    # every student and arm is collected; only --students x --arms are run, interleaved by seed, so that a
    # partial benchmark has every arm of its first seeds
    ns = argparse.Namespace(steps=args.steps, seeds=args.seeds, arms=["augmented"], eval_every=args.eval_every)
    jobs = {(s, a): runs_of("sst2", labels, out / a, argparse.Namespace(
        **vars(ns), students=[s], train_flags=shlex.join(flags))) for s in STUDENTS for a, flags in ARMS.items()}
    if not args.report_only:
        order = sorted((args.students.index(s), seed, list(ARMS).index(a), d, argv)
                       for (s, a), runs in jobs.items() if s in args.students and a in args.arms
                       for d, argv, (_, _, seed) in runs)
        run_jobs([(d, argv) for *_, d, argv in order], args.jobs)
    rows = []
    for s in STUDENTS:
        row = {"student": s}
        for a in ARMS:
            got = collect("sst2", jobs[(s, a)], "dev")
            cells = got["students"].get(s, {}).get("augmented", [])
            if got["teacher"] is not None:
                row["teacher"] = got["teacher"]
            row[f"{a}_runs"] = cells
            row[a] = (*_mean_std([c["metric"] for c in cells]), len(cells)) if cells else None
        if "teacher" in row:
            rows.append(row)
    md = render(rows, contextual, depth, args)
    if args.steps < 200:  # a smoke test: shown, not published
        print(md)
        return
    publish("bench_init", {"rows": rows, "contextual": contextual, "steps": args.steps,
                           "eval_every": args.eval_every, "seeds": args.seeds}, md)


if __name__ == "__main__":
    main()
