"""Optuna search of distilled students under a size or latency budget.

    python -m search.run --student cnn --max-size-mb 5 --trials 40
    python -m search.run --student bilstm,cnn,transformer --max-latency-ms 2 --objective pareto

The public pieces, for use from Python (the command line is search.run):

    from search import Budget, Timing, measure, suggest, Objective, TrialSettings

search.space (what is searched), search.budget (what a student costs, measured before training),
search.objective (one trial: sample, measure, reject or train with distill.train.fit),
search.report (leaderboard and plot), search.run (the command). Needs the `search` extra.
"""

from search.budget import Budget, Cost, Timing, measure
from search.objective import Objective, TrialSettings
from search.space import Candidate, SpaceLimits, smallest, suggest, suggest_student

__all__ = [
    "Budget",
    "Candidate",
    "Cost",
    "Objective",
    "SpaceLimits",
    "Timing",
    "TrialSettings",
    "measure",
    "smallest",
    "suggest",
    "suggest_student",
]
