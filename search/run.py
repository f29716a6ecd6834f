"""Search student width, depth and more under a size or latency budget, then retrain the best.

    python -m search.run --student cnn --labels runs/sst2-aug --max-size-mb 5 --trials 40
    python -m search.run --student bilstm,cnn,transformer --max-latency-ms 2 --trials 60 --objective pareto
    python -m search.run --student cnn --space recipe --trials 20   # tune the default CNN's training recipe
    python -m search.run ... --storage postgresql://user@host/db --study-name sst2   # more machines
    python -m search.run ... --workers 2                                            # more processes

Flow: flags -> SearchArgs -> label set (the shipped SST-2 one by default) -> the cheapest corner
of the space checked against the budget (an impossible budget stops here) -> storage and study
(SQLite in the output folder by default; a study made for other flags is refused) -> trials
(search.objective: sample, measure, reject or train with distill.train.fit) in --workers
processes until the study holds --trials trials -> leaderboard.md/.csv, plot.png, summary.json ->
the best student(s) retrained on every training row with distill.train.run, each with its report.

A killed search resumes with the same command: finished trials stay in the study, and a trial
that was running when the process died is queued to run again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from distill.cli import run_command
from distill.errors import DistillError
from distill.io import atomic_write_json
from distill.train import TrainArgs
from search.args import SearchArgs, parse_args
from search.budget import Budget, Timing
from search.latency import require_onnx
from search.objective import Objective, TrialSettings
from search.probe import median_dev_length, probe_space
from search.retrain import choose_best, retrain
from search.space import default_recipe
from search.storage import (
    WorkerJob,
    counted,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
    optimize,
    quiet_optuna,
    redact,
    requeue_dead_local_trials,
    run_workers,
)


def run_search(args: SearchArgs) -> dict:
    """The whole search; returns the summary also saved as summary.json."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise DistillError("optuna is not installed; pip install -e '.[search]'") from None
    from distill.outputs import begin_output, check_output
    from search import report as rep

    quiet_optuna()
    t_start = time.perf_counter()
    threads = args.threads or (max(1, torch.get_num_threads() // args.workers) if args.workers > 1 else None)
    if threads:
        torch.set_num_threads(threads)
    base = TrainArgs(student=args.students[0], labels=args.labels, tokenizer=args.tokenizer,
                     epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, no_progress=True,
                     latency_repeats=args.latency_repeats, prune_vocab=args.prune_vocab,
                     prune_min_count=args.prune_min_count,
                     # a 4-bit table only keeps the student's labels if it was trained through that rounding
                     table_bits=4 if args.precision == "int8-table4" else 8)
    if args.latency_runtime == "onnx":
        require_onnx()
    timing = Timing(batch=args.latency_batch, length=args.latency_length or 1,
                    threads=args.latency_threads, repeats=args.latency_repeats, runtime=args.latency_runtime)
    budget = Budget(max_params=args.max_params, max_size_mb=args.max_size_mb,
                    max_latency_ms=args.max_latency_ms, precision=args.precision, timing=timing)
    settings = TrialSettings(base=base, students=args.students, budget=budget, limits=args.limits,
                             objective=args.objective, cost=args.cost, train_rows=args.train_rows,
                             retrain={"epochs": args.retrain_epochs, "no_progress": args.no_progress})
    objective = Objective(settings)
    ls = objective.ls
    if args.latency_length is None:
        timing = dataclasses.replace(timing, length=median_dev_length(objective, base))
        budget = dataclasses.replace(budget, timing=timing)
    task = ls.task.name
    kind = "-recipe" if args.space == "recipe" else ""
    out = Path(args.output_dir or f"runs/search-{task}-{'+'.join(args.students)}{kind}")
    study_name = args.study_name or f"{task}-{'+'.join(args.students)}-{args.objective}{kind}"
    settings = dataclasses.replace(settings, budget=budget, output_dir=str(out))
    objective.s = settings
    record = out / "search.json"
    if check_output(out, "search") == "ours" and record.is_file():
        prev = json.loads(record.read_text())
        if prev.get("study_name") != study_name:
            raise DistillError(f"--output-dir {out} holds the search '{prev.get('study_name')}', not "
                               f"'{study_name}'; use another --output-dir")
    print(f"search {', '.join(args.students)} on {task} ({ls.path}; {len(objective.train_split):,} of "
          f"{len(ls.splits['train']):,} training rows per trial, {len(ls.splits['dev']):,} dev rows); "
          f"budget: {budget.describe()}; objective: {args.objective}"
          + (f" (dev {ls.task.metric} vs {args.cost})" if args.objective == "pareto" else f" (dev {ls.task.metric})"))

    # ---- before any trial: does anything in the space fit?
    if budget.active:
        probe = probe_space(objective, args, budget)
        print(f"budget check: {probe['sampled_fit']} of {probe['sampled']} random configurations fit; "
              "the smallest of each student: " + ", ".join(
                  f"{n} {c['latency_ms']:.3f} ms / {c['size_mb']:.2f} MB" for n, c in probe["smallest"].items()))
    else:
        print("no budget given: every trial trains")

    # ---- storage and study
    identity = {"task": task, "label_set": ls.key, "students": list(args.students),
                "objective": args.objective, "cost": args.cost if args.objective == "pareto" else None,
                "budget": budget.limits(), "precision": args.precision,
                "timing": [timing.batch, timing.length, timing.threads],
                "latency_runtime": timing.runtime, "tokenizer": args.tokenizer,
                "train_rows": args.train_rows, "epochs": args.epochs, "batch_size": args.batch_size,
                "space": [args.max_width, args.max_depth, args.max_embed_dim],
                "prune_vocab": args.prune_min_count if args.prune_vocab else None, "space_kind": args.space}
    begin_output(out, "search")
    storage_spec = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    storage = open_storage(storage_spec)
    where = redact(storage_spec)
    directions = ["maximize"] if args.objective == "metric" else ["maximize", "minimize"]
    study = open_study(storage, study_name, where, identity, directions, make_sampler(args, args.seed),
                       make_pruner(args))
    atomic_write_json(record, {"study_name": study_name, "storage": where, "identity": identity})
    if args.space == "recipe" and not study.trials:  # a new recipe study: today's default goes first
        for name in args.students:
            params = default_recipe(name, args.tokenizer) | ({"student": name} if len(args.students) > 1 else {})
            study.enqueue_trial(params, user_attrs={"default_recipe": True})
    requeued = requeue_dead_local_trials(study)
    if requeued:
        print(f"trial(s) {', '.join(map(str, requeued))} were running in a process that died: marked failed "
              "and queued again")
    before = counted(study)
    print(f"study '{study_name}' in {where}: {before} of {args.trials} trials done"
          + (f"; {args.workers} workers" if args.workers > 1 else ""), flush=True)

    # ---- trials: here, or in --workers processes (each loads the data and samples on its own)
    if args.workers == 1:
        optimize(study, objective, args.trials)
    elif before < args.trials:
        run_workers(WorkerJob(args, settings, storage_spec, study_name, args.trials, threads))
    search_seconds = time.perf_counter() - t_start

    # ---- reports
    rows = rep.trial_rows(study.get_trials(deepcopy=False))
    summary = rep.summarize(rows)
    front = None
    if args.objective == "pareto":
        front = {t.number for t in study.best_trials if "rejected" not in t.user_attrs}
    metric = ls.task.metric
    md_path, csv_path = rep.write_leaderboard(rows, summary, out, metric, budget.describe(), front,
                                              latency_text=timing.describe(args.precision))
    x_key = {"latency": "latency_ms", "size": "size_mb"}[args.cost]
    if args.objective == "metric" and budget.active:
        x_key = "latency_ms" if budget.max_latency_ms else ("size_mb" if budget.max_size_mb else "params")
    limit = {"latency_ms": budget.max_latency_ms, "size_mb": budget.max_size_mb, "params": budget.max_params}[x_key]
    png = rep.plot(rows, out / "plot.png", x_key, metric, limit, front,
                   title=f"{task}: {', '.join(args.students)}, {budget.describe()}")
    best = choose_best(study, args)
    print()
    print(rep.leaderboard_markdown(rows, metric, front, out, limit=10), end="")
    for line in rep.summary_lines(summary, budget.describe()):
        print(line)
    if front is not None and best:
        unit = {"latency_ms": "ms", "size_mb": "MB"}[x_key] if x_key in ("latency_ms", "size_mb") else ""
        print(f"Pareto front ({len(best)} trials, dev {metric} / {args.cost}): " + "; ".join(
            f"trial {t.number} {t.user_attrs['student']} {100 * t.values[0]:.2f} / {t.values[1]:.3g} {unit}"
            for t in best))
    if best:
        b = best[0]
        c = b.user_attrs["cost"]
        print(f"best feasible: trial {b.number} {b.user_attrs['config']}: dev {metric} {100 * b.values[0]:.2f}, "
              f"{c['latency_ms']:.3f} ms, {c['size_mb']:.2f} MB, {c['params']:,} parameters")
        print(f"retrain it yourself with: {b.user_attrs['command']}")
    else:
        print("no feasible trial has finished yet")
    print(f"leaderboard (with each trial's distill.train command): {md_path}, {csv_path}; plot: {png}; "
          f"TensorBoard: tensorboard --logdir {out / 'trials'}")

    retrained = []
    if args.retrain and best:
        retrained = retrain(args, settings, objective, best[: args.retrain])
        for r in retrained:
            print(f"retrained trial {r['trial']}: dev {metric} {100 * r['dev_metric']:.2f} on every training "
                  f"row (search: {100 * r['search_dev_metric']:.2f}), {r['latency_ms']:.3f} ms timed again "
                  f"(search: {r['search_latency_ms']:.3f} ms), {r['size_mb']:.2f} MB, "
                  f"{'within' if r['within_budget'] else 'OVER'} budget -> "
                  f"{r['run_dir']}/report.md")
    result = {
        "study_name": study_name, "storage": where, "task": task, "metric": metric,
        "students": list(args.students), "objective": args.objective, "budget": budget.limits(),
        "budget_text": budget.describe(), "timing": dataclasses.asdict(timing),
        "latency_text": timing.describe(args.precision), **summary,
        "this_run_seconds": round(search_seconds, 1),
        "best": [{"trial": t.number, "student": t.user_attrs["student"], "config": t.user_attrs["config"],
                  "command": t.user_attrs.get("command"), "dev_metric": t.values[0], **t.user_attrs["cost"],
                  "train_seconds": t.user_attrs.get("train_seconds")} for t in best[:10]],
        "pareto_front": sorted(front) if front is not None else None,
        "retrained": retrained,
    }
    atomic_write_json(out / "summary.json", result)
    return result


def main(argv: list[str] | None = None) -> dict | None:
    """`python -m search.run`; bad input exits with one line."""
    return run_command(lambda: run_search(parse_args(argv)),
                       "finished trials are kept in the study: rerun the same command to continue")


if __name__ == "__main__":
    main()
