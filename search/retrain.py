"""After the trials: the best students, retrained on every training row with `python -m distill.train`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from search.args import SearchArgs
from search.budget import measure
from search.objective import Objective, TrialSettings, retrain_args
from search.space import replay


def retrain(args: SearchArgs, settings: TrialSettings, objective: Objective, trials) -> list[dict]:
    """Retrain the chosen trials on every training row with distill.train.run (the command the
    leaderboard prints for each, resumed if it was killed); each gets its report."""
    from distill.train import run
    from distill.training.runfolder import load_run

    done = []
    for t in trials:
        cand = replay(t.params, args.students, settings.base.tokenizer, args.limits)
        targs = dataclasses.replace(retrain_args(settings, cand, t.number), resume=True)
        run_dir = Path(targs.output_dir)
        if (run_dir / "report.json").is_file():
            print(f"trial {t.number}: already retrained in {run_dir}/")
            report = json.loads((run_dir / "report.json").read_text())
        else:
            print(f"\n== retraining trial {t.number} on every training row: {targs.command()}", flush=True)
            report = run(targs)
        model, tok, _ = load_run(run_dir)
        b = settings.budget
        cost = measure(model, tok.vocab_size, objective.ls.task.pair, b.timing, b.precision)  # timed anew
        done.append({"trial": t.number, "run_dir": str(run_dir), "config": cand.describe(),
                     "search_latency_ms": t.user_attrs["cost"]["latency_ms"],
                     "search_dev_metric": t.values[0], "dev_metric": report["student"]["dev_metric"],
                     "teacher_dev_metric": report["teacher"]["dev_metric"], **cost.to_dict(),
                     "within_budget": b.fits(cost)})
    return done


def choose_best(study, args: SearchArgs):
    """The trials to retrain: the best feasible ones (metric), or the front, best metric first (pareto)."""
    from optuna.trial import TrialState

    if args.objective == "pareto":
        front = [t for t in study.best_trials if "rejected" not in t.user_attrs]
        return sorted(front, key=lambda t: -t.values[0])
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
          if "rejected" not in t.user_attrs]
    return sorted(ok, key=lambda t: -t.values[0])
