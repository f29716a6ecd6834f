"""Before any trial: the timing length, and whether anything in the search space fits the budget."""

from __future__ import annotations

import dataclasses

import numpy as np

from distill.errors import DistillError
from distill.train import TrainArgs
from distill.training.student import build_student_model
from search.args import SearchArgs
from search.budget import Budget, measure
from search.objective import Objective, trial_args
from search.space import smallest


def median_dev_length(objective: Objective, base: TrainArgs) -> int:
    """The median dev example's length in student tokens (its longer side, for pairs), as the report times."""
    tok = objective.tokenizer(base)
    dev = objective.ls.splits["dev"]
    sides = [[len(ids) for ids in tok.encode(dev.column(i))] for i in range(len(dev.texts[0]))]
    return max(1, int(np.median(np.max(np.asarray(sides), axis=0))))


def probe_space(objective: Objective, args: SearchArgs, budget: Budget, samples: int = 8) -> dict:
    """Check the budget against the space before any trial: its smallest corner, then a few samples.

    If even the smallest configuration of every student is over budget, no configuration fits:
    that is an error, naming the flag and the least it would need."""
    import optuna

    base = objective.s.base
    corners = {}
    for name in args.students:
        cand = smallest(name, base.tokenizer, args.limits)
        _, cost = objective.cost_of(cand, trial_args(base, cand))
        corners[name] = (cand, cost)
    fits = [n for n, (_, c) in corners.items() if budget.fits(c)]
    if not fits:
        msgs = []
        for key, limit in budget.limits().items():
            name, (cand, cost) = min(corners.items(), key=lambda kv: getattr(kv[1][1], key))
            least = getattr(cost, key)
            if least <= limit:
                continue
            flag = {"params": "--max-params", "size_mb": "--max-size-mb", "latency_ms": "--max-latency-ms"}[key]
            unit = {"params": " parameters", "size_mb": f" MB at {budget.precision}", "latency_ms": " ms"}[key]
            shown = f"{least:,.0f}" if key == "params" else f"{least:.3g}"
            hint = ""
            if key in ("params", "size_mb") and base.tokenizer == "teacher":
                hint = "; the teacher's vocabulary makes the embedding table the bulk: try --tokenizer word"
                if key == "size_mb" and not budget.precision.startswith("int8"):
                    hint += " or --precision int8"
            msgs.append(f"{flag} {limit:g}: no configuration in the search space fits; the smallest "
                        f"({cand.describe().split(' drop=')[0]}) is {shown}{unit}; raise {flag} to at "
                        f"least {shown}{hint}")
        raise DistillError("; ".join(msgs) or "no configuration in the search space fits the budget")
    for name, (_, cost) in corners.items():
        if name not in fits:
            print(f"warning: {name}: even its smallest configuration is over budget "
                  f"({budget.over(cost)}); all its trials will be rejected: drop it from --student")
    # a few random points, timed with fewer repeats: how much of the space fits
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    quick = dataclasses.replace(budget, timing=dataclasses.replace(budget.timing, repeats=3))
    n_fit = 0
    for _ in range(samples):
        trial = study.ask()
        cand, targs = objective.candidate(trial)
        tok = objective.tokenizer(targs)
        model = build_student_model(targs, objective.ls, tok)
        n_fit += quick.fits(measure(model, tok.vocab_size, objective.ls.task.pair, quick.timing, quick.precision,
                                    objective.latency_cache))
        study.tell(trial, 0.0)
    return {"smallest": {n: c.to_dict() for n, (_, c) in corners.items()}, "sampled": samples, "sampled_fit": n_fit}
