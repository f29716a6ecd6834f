"""Benchmark: the search on real SST-2 (the shipped label set) under a latency budget.

    .venv/bin/python scripts/bench_search.py                  # three 30-trial searches (~40 min on 2 cores)
    .venv/bin/python scripts/bench_search.py --trials 10      # a quick look

1. BiLSTMs with no budget: the best unconstrained BiLSTM, timed again the way the search times
   (batch 1, the median dev length, one thread, median of repeated passes). The budget is a fifth
   of its latency.
2. All three students (bilstm, cnn, transformer) with no budget: with 1., the best student found
   with no budget.
3. All three students under the budget.
Every trial trains on the same fixed subset of training rows (--train-rows) and is scored on the
whole dev set. Reported: trials run and trials rejected before training, the wall time, the best
feasible student's dev metric, latency and size, and its gap to the best student found with no
budget. Target: the best feasible student within 30 trials is within 1 point of it.

A killed benchmark continues where it stopped (each search resumes its study). Results go to
scripts/results/bench_search.{json,md} and into README.md between the bench_search markers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import optuna
from benchlib import update_readme

from distill.io import atomic_write_json, atomic_write_text
from distill.train import TrainArgs
from distill.training.student import build_student_model
from search.budget import Budget, Timing, measure
from search.objective import Objective, TrialSettings, trial_args
from search.run import main as search_main
from search.space import replay

STUDENTS = "bilstm,cnn,transformer"
TARGET_GAP_POINTS = 1.0
BUDGET_FRACTION = 5


def search(out: Path, args, students: str, *extra) -> dict:
    argv = ["--student", students, "--output-dir", str(out), "--trials", str(args.trials),
            "--train-rows", str(args.train_rows), "--epochs", str(args.epochs), "--seed", str(args.seed),
            "--latency-repeats", str(args.repeats), "--retrain", str(args.retrain), "--no-progress",
            "--max-width", str(args.max_width),
            *(["--labels", args.labels] if args.labels else []), *map(str, extra)]
    print(f"\n== python -m search.run {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    summary = search_main(argv)
    summary["bench_wall_seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def best_bilstm(out: Path, study_name: str):
    """The BiLSTM trial of a study with the best dev metric (trained, within any budget)."""
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{(out / 'study.db').resolve()}")
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("student") == "bilstm" and "rejected" not in t.user_attrs]
    return max(done, key=lambda t: t.values[0]) if done else None


def retime(trial, summary: dict, args) -> tuple[dict, str]:
    """Time a trial's student again, in this process, the way the search times."""
    timing = Timing(**(summary["timing"] | {"repeats": args.repeats * 2}))
    base = TrainArgs(student="bilstm", labels=args.labels, seed=args.seed, no_progress=True, epochs=args.epochs)
    objective = Objective(TrialSettings(base=base, students=tuple(STUDENTS.split(",")),
                                        budget=Budget(timing=timing)), device="cpu")
    if trial is None:  # no BiLSTM trained in the first search: distill.train's default BiLSTM
        tok = objective.tokenizer(base)
        model = build_student_model(base, objective.ls, tok)
        cost = measure(model, tok.vocab_size, False, timing)
        return cost.to_dict(), "the default BiLSTM (no BiLSTM trial trained)"
    cand = replay(trial.params, ("bilstm",))  # from the BiLSTM-only study
    _, cost = objective.cost_of(cand, trial_args(base, cand))
    return cost.to_dict(), f"trial {trial.number}: {trial.user_attrs['config']}"


def row(label: str, s: dict) -> str:
    b = s["best"][0] if s["best"] else None
    cells = [label, str(s["trials"]), str(s["trained"]), str(s["pruned"]), str(s["rejected"]),
             f"{s['study_wall_seconds'] / 60:.1f} min"]
    if b:
        cells += [f"{b['student']}", f"{100 * b['dev_metric']:.2f}", f"{b['latency_ms']:.3f}",
                  f"{b['size_mb']:.2f}", f"{b['params'] / 1e6:.2f}M"]
    else:
        cells += ["—"] * 5
    return "| " + " | ".join(cells) + " |"


def render(runs: dict, bilstm: dict, budget_ms: float, args) -> tuple[dict, str]:
    free = max((runs["bilstm"], runs["all"]), key=lambda s: s["best"][0]["dev_metric"])
    bf, bounded = free["best"][0], runs["budget"]
    bb = bounded["best"][0] if bounded["best"] else None
    gap = None if bb is None else round(100 * (bf["dev_metric"] - bb["dev_metric"]), 2)
    met = gap is not None and gap <= TARGET_GAP_POINTS
    saved = bounded.get("saved_seconds_estimate")
    t = runs["bilstm"]["timing"]
    data = {"task": "sst2", "label_set": "shipped (distill/assets/sst2-minilm)", "students": STUDENTS,
            "trials": args.trials, "train_rows": args.train_rows, "epochs": args.epochs, "seed": args.seed,
            "max_width": args.max_width, "timing": t, "best_unconstrained_bilstm": bilstm,
            "budget_ms": budget_ms, "searches": runs, "best_without_budget": bf, "best_within_budget": bb,
            "gap_points": gap, "target_gap_points": TARGET_GAP_POINTS, "target_met": met}
    lines = [
        f"SST-2 dev accuracy (shipped label set, MiniLM teacher); every trial trains on the same "
        f"{args.train_rows:,} training rows for up to {args.epochs} epochs (so accuracies sit below a full "
        f"run's); {args.trials} trials per search, widths up to {args.max_width}, TPE with the median "
        f"pruner, seed {args.seed}. Latency: median of {t['repeats']} passes at batch {t['batch']}, "
        f"{t['length']} tokens, {t['threads']} thread.",
        "",
        f"Budget: a fifth of the best unconstrained BiLSTM's latency ({bilstm['latency_ms']:.3f} ms, "
        f"{bilstm['source']}) = **{budget_ms:.3f} ms**.",
        "",
        "| search | trials | trained | pruned | rejected before training | wall time | best student | "
        "dev acc | latency ms | size MB (fp32) | params |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        row("bilstm, no budget", runs["bilstm"]),
        row("all three, no budget", runs["all"]),
        row(f"all three, <= {budget_ms:.3f} ms", bounded),
        "",
    ]
    if bb is None:
        lines.append("No feasible student was found under the budget.")
    else:
        lines.append(f"Gap of the best feasible student to the best found with no budget "
                     f"({bf['student']}, {100 * bf['dev_metric']:.2f}): **{gap:+.2f} points** (target <= "
                     f"{TARGET_GAP_POINTS:g}: {'met' if met else 'NOT met'}); it is "
                     f"{bf['latency_ms'] / bb['latency_ms']:.1f}x faster. Against the best of the "
                     f"three-student search with no budget ({runs['all']['best'][0]['student']}, "
                     f"{100 * runs['all']['best'][0]['dev_metric']:.2f}): "
                     f"{100 * (runs['all']['best'][0]['dev_metric'] - bb['dev_metric']):+.2f} points.")
    if bounded["rejected"]:
        lines.append(f"The budget rejected {bounded['rejected']} of {bounded['trials']} trials before training, "
                     f"in {bounded['rejected_check_seconds']:.1f} s of building and timing"
                     + ("" if saved is None else f", saving about {saved / 60:.1f} min of training") + ".")
    lines.append("Wall time: first trial start to last trial end of each study, on a 2-core machine that "
                 "other jobs may share.")
    return data, "\n".join(lines) + "\n"


def main_bench(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-search"), help="where the three searches go")
    p.add_argument("--trials", type=int, default=30, help="trials per search")
    p.add_argument("--train-rows", type=int, default=5000, help="training rows per trial (a fixed subset)")
    p.add_argument("--max-width", type=int, default=256, help="largest width searched (a 2-layer BiLSTM of "
                   "width 512 trains for minutes per trial on 2 cores)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    p.add_argument("--repeats", type=int, default=20, help="timed passes per student")
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed")
    p.add_argument("--labels", default=None, help="a label set (default: the shipped SST-2 one; "
                   "another one is for trying the script, not for the README's numbers)")
    p.add_argument("--retrain", type=int, default=0, help="also retrain the best N of each search in full")
    args = p.parse_args(argv)
    out = Path(args.out)
    runs = {"bilstm": search(out / "bilstm-no-budget", args, "bilstm")}
    saved = out / "budget.json"  # timed once: a rerun continues the same budgeted study
    if saved.is_file():
        bilstm = json.loads(saved.read_text())
    else:
        trial = best_bilstm(out / "bilstm-no-budget", runs["bilstm"]["study_name"])
        cost, source = retime(trial, runs["bilstm"], args)
        bilstm = cost | {"source": source}
        atomic_write_json(saved, bilstm)
    budget_ms = round(bilstm["latency_ms"] / BUDGET_FRACTION, 4)
    print(f"\nbest unconstrained BiLSTM ({bilstm['source']}): {bilstm['latency_ms']:.3f} ms "
          f"-> budget {budget_ms:.3f} ms")
    runs["all"] = search(out / "all-no-budget", args, STUDENTS)
    runs["budget"] = search(out / f"all-budget-{budget_ms:g}ms", args, STUDENTS, "--max-latency-ms", budget_ms)
    data, md = render(runs, bilstm, budget_ms, args)
    results = ROOT / "scripts" / "results"
    results.mkdir(exist_ok=True)
    atomic_write_json(results / "bench_search.json", data)
    atomic_write_text(results / "bench_search.md", md)
    if args.labels is None:
        update_readme(md, "bench_search")
    print("\n" + md)


if __name__ == "__main__":
    main_bench()
