"""Benchmark: each student's training recipe, chosen by this project's own search on SST-2 dev, then checked.

    .venv/bin/python scripts/bench_recipe.py --jobs 2          # all three students: about 1.5 hours on 2 cores
    .venv/bin/python scripts/bench_recipe.py --report-only                         # publish what has finished
    .venv/bin/python scripts/bench_recipe.py --students cnn --trials 2 --trial-rows 300 --steps 20 --seeds 1 \
        --out runs/recipe-quick                                                    # a smoke test (not published)

For each student:
  1. `python -m search.run --student S --space recipe`: the student's default architecture, its training
     recipe searched (learning rate, dropout, loss and temperature, alpha, batch size, warm-up, weight decay,
     the frozen or tuned table, the transformer's heads) by TPE with the median pruner; every trial trains on
     the same random --trial-rows rows of the shipped label set (the default run's rows: SST-2 and its
     augmented copies, MiniLM teacher) for 3 epochs and is scored on dev. Resumable (the study is SQLite).
  2. The best trial's recipe and today's default recipe, each trained as bench_quality's augmented arm (the
     default run's rows; --steps optimiser steps, dev every --eval-every, --seeds seeds), so both get the same
     steps and the same evaluation schedule.
  3. One table: mean ± std over seeds, the difference (noise when within the larger std), the recipe.
Dev chooses both the search's winner and the comparison; SST-2 has no labelled test split here. Results go to
scripts/results/bench_recipe.{json,md} and into README.md between the bench_recipe markers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_quality import _diff, _mean_std, collect, runs_of
from benchlib import publish, run_jobs

from distill.teacher.labelset import DEFAULT_LABELS
from distill.train import TrainArgs

STUDENTS = ("bilstm", "cnn", "transformer")
# rows per trial, 3 epochs over them. Measured at 1 thread on 2 busy cores: a CNN trial of 40,000 rows about
# 100 s, a transformer trial of 20,000 about 105 s (it is twice as slow per row), a BiLSTM trial of 20,000
# about 50 s (guessed slower than it is; it could afford 40,000): 30 trials in 20-50 minutes each
TRIAL_ROWS = {"bilstm": 20_000, "cnn": 40_000, "transformer": 20_000}


def study_of(search_dir: Path):
    """The study of a finished search.run, by the name and storage its search.json records."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record = json.loads((search_dir / "search.json").read_text())
    return optuna.load_study(study_name=record["study_name"], storage=record["storage"])


def recipe_flags(student: str, params: dict) -> list[str]:
    """The distill.train flags of a recipe trial (those that differ from distill.train's defaults)."""
    from search.objective import trial_args
    from search.space import SpaceLimits, replay

    cand = replay(params, (student,), limits=SpaceLimits(recipe=True))
    argv = shlex.split(trial_args(TrainArgs(student=student), cand).command())[3:]
    if "--student" in argv:  # absent for the default student
        i = argv.index("--student")
        argv = argv[:i] + argv[i + 2:]
    return argv


def _short(token: str) -> str:
    """A flag's value at 3 significant digits for the table (the JSON keeps the exact flags)."""
    try:
        return token if token.startswith("-") or "." not in token else f"{float(token):.3g}"
    except ValueError:
        return token


def _cell(m: tuple | None) -> str:
    return f"{m[0]:.2f} ± {m[1]:.2f} ({m[2]} seed{'s' * (m[2] != 1)})" if m else "—"


def render(rows: list[dict], args) -> str:
    lines = [f"SST-2 dev (shipped label set, MiniLM teacher {rows[0]['teacher']:.2f}). The recipe search: "
             f"`search.run --space recipe`, the default architecture, TPE with the median pruner, each trial "
             f"3 epochs over the same random rows of the default run's rows (SST-2 and its augmented copies). "
             f"The check: the searched and the default recipe trained as bench_quality's augmented arm, "
             f"{args.steps} steps each, dev every {args.eval_every}, {args.seeds} seeds."
             if rows else "No student has finished.", "",
             "| student | trials (trained / pruned) | search budget: best trial / the default | default recipe | "
             "searched recipe | searched - default | the searched recipe |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        d, s = r.get("default"), r.get("searched")
        diff = "—"
        default_dev = "—"  # a pruned trial's value is its last reported epoch's
        if r.get("default_search_dev") is not None:
            default_dev = f"{100 * r['default_search_dev']:.2f}" + (" (pruned)" if r["default_search_pruned"] else "")
        if d and s:
            diff = _diff(s[:2], d[:2])
        lines.append(f"| {r['student']} | {r['trials']} ({r['trained']} / {r['pruned']}) | "
                     f"{100 * r['best_search_dev']:.2f} (trial {r['best_trial']}) / {default_dev} | "
                     f"{_cell(d)} | {_cell(s)} | {diff} "
                     f"| `{' '.join(shlex.quote(_short(t)) for t in r['flags'])}` |")
    lines += ["", "Mean ± standard deviation over seeds, in points. A difference within the larger of the two "
              "standard deviations is marked noise. Both recipes take the same number of optimiser steps; a recipe "
              "with another batch size sees more or fewer rows in them. Rerun: "
              "`.venv/bin/python scripts/bench_recipe.py --jobs 2`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--students", nargs="+", default=list(STUDENTS), choices=STUDENTS)
    p.add_argument("--trials", type=int, default=30, help="trials per recipe search")
    p.add_argument("--trial-rows", type=int, default=None,
                   help="training rows per trial (default: per student, see TRIAL_ROWS)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per recipe in the check (at least 3)")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per run in the check")
    p.add_argument("--eval-every", type=int, default=100, help="steps between dev evaluations in the check")
    p.add_argument("--jobs", type=int, default=1, help="searches or runs at once (one thread each when > 1)")
    p.add_argument("--out", default=str(ROOT / "runs" / "recipe"), help="the searches and the runs")
    p.add_argument("--searches", default=None, help="where the searches are (default: --out/search-STUDENT)")
    p.add_argument("--report-only", action="store_true", help="run nothing: publish what has finished")
    args = p.parse_args(argv)
    out = Path(args.out)

    def search_dir(student: str) -> Path:
        return Path(args.searches) / f"recipe-{student}" if args.searches else out / f"search-{student}"

    searches = [(search_dir(s), ["--student", s, "--space", "recipe", "--trials", str(args.trials),
                                 "--train-rows", str(args.trial_rows or TRIAL_ROWS[s]), "--epochs", "3",
                                 "--retrain", "0", "--output-dir", str(search_dir(s))]) for s in args.students]
    if not args.report_only:
        # always started: search.run itself runs only the trials the study lacks (none: it just reports)
        run_jobs(searches, args.jobs, module="search.run", done=None)

    checks, rows = [], []
    for s in args.students:
        sdir = search_dir(s)
        if not (sdir / "search.json").is_file():
            continue
        study = study_of(sdir)
        states = [t.state.name for t in study.trials]
        best = study.best_trial
        default_trial = [t for t in study.trials if t.user_attrs.get("default_recipe")
                         and t.state.name in ("COMPLETE", "PRUNED")]
        flags = recipe_flags(s, best.params)
        ns = argparse.Namespace(steps=args.steps, seeds=args.seeds, students=[s], arms=["augmented"],
                                eval_every=args.eval_every)
        default = runs_of("sst2", DEFAULT_LABELS, out / "default", argparse.Namespace(**vars(ns), train_flags=""))
        searched = runs_of("sst2", DEFAULT_LABELS, out / "searched",
                           argparse.Namespace(**vars(ns), train_flags=shlex.join(flags)))
        checks += default + searched
        rows.append({"student": s, "trials": len(states), "trained": states.count("COMPLETE"),
                     "pruned": states.count("PRUNED"), "best_trial": best.number, "best_search_dev": best.value,
                     "default_search_dev": default_trial[0].value if default_trial else None,
                     "default_search_pruned": bool(default_trial) and default_trial[0].state.name == "PRUNED",
                     "config": best.user_attrs.get("config"), "flags": flags, "jobs": (default, searched)})
    if not args.report_only:
        run_jobs([(d, a) for d, a, _ in checks], args.jobs)
    for r in rows:
        default, searched = r.pop("jobs")
        for key, jobs in (("default", default), ("searched", searched)):
            got = collect("sst2", jobs, "dev")
            cells = got["students"].get(r["student"], {}).get("augmented", [])
            r["teacher"] = got["teacher"] if got["teacher"] is not None else r.get("teacher")
            r[f"{key}_runs"] = cells
            r[key] = (*_mean_std([c["metric"] for c in cells]), len(cells)) if cells else None
    rows = [r for r in rows if r.get("teacher") is not None]
    md = render(rows, args)
    if args.steps < 200:  # a smoke test: shown, not published
        print(md)
        return
    publish("bench_recipe", {"rows": rows, "steps": args.steps, "eval_every": args.eval_every,
                             "seeds": args.seeds, "trials": args.trials}, md)


if __name__ == "__main__":
    main()
