"""One trial of the search: sample a student, check its budget, train it with `fit()`, score it.

    objective = Objective(settings)          # loads the label set once per process
    study.optimize(objective, n_trials=10)

A trial (1) samples a configuration from search.space and turns it into the TrainArgs of the
`python -m distill.train` command that stands for it (the architecture fields as --student-config),
(2) builds the student exactly as distill.train does (distill.training.student) and measures it
(search.budget: parameters, megabytes, and CPU latency in --latency-runtime: by default the ONNX
bundle it would export to, each architecture exported and timed once per process), (3) records
each budget as an Optuna constraint with `trial.set_constraint`, and stops there if any is
violated: the trial is finished as infeasible without a single training step, (4) otherwise
initialises the embeddings the way distill.train does and trains on a fixed subset of the training
rows with distill.training.fit, reporting the dev metric after each epoch to the pruner, and (5)
returns the best dev metric, or (metric, cost) for a Pareto search. TensorBoard logs go to <output>/trials/<number>/tb.

An infeasible trial still returns values, because Optuna's samplers (NSGA-II in particular) only
learn from finished trials: the metric's floor, and for a Pareto search its measured cost. They are
never compared with feasible values: samplers rank infeasible trials by their constraint violation
first, and study.best_trial / best_trials leave them out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from distill.data.tasks import Split
from distill.data.tokenizer import encode
from distill.teacher.labelset import LabelSet
from distill.teacher.sets import label_set_for
from distill.train import TrainArgs
from distill.training import table4
from distill.training.fit import fit
from distill.training.student import build_student_model, init_embeddings, make_tokenizer
from search.budget import Budget, Cost, measure
from search.space import Candidate, SpaceLimits, suggest

METRIC_FLOOR = {"accuracy": 0.0, "f1": 0.0, "mcc": -1.0}
COST_KEYS = {"latency": "latency_ms", "size": "size_mb"}


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one search shares (picklable: it goes to each worker process)."""

    base: TrainArgs  # labels, tokenizer, epochs, batch size, seed ...; each trial replaces its knobs
    students: tuple[str, ...]
    budget: Budget
    limits: SpaceLimits = field(default_factory=SpaceLimits)
    objective: str = "metric"  # "metric" | "pareto"
    cost: str = "latency"  # second objective of a Pareto search: "latency" | "size"
    train_rows: int = 0  # 0 = every training row
    output_dir: str = "runs/search"
    log_prefix: str = ""
    retrain: dict = field(default_factory=dict)  # TrainArgs fields of the full retrain (epochs, no_progress, ...)

    @property
    def cost_key(self) -> str:
        return COST_KEYS[self.cost]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def training_subset(ls: LabelSet, rows: int, seed: int) -> tuple[Split, np.ndarray]:
    """(split, teacher logits) of `rows` training rows drawn at random: the same rows every trial."""
    train, logits = ls.splits["train"], ls.logits["train"]
    if not rows or rows >= len(train):
        return train, logits
    idx = np.sort(np.random.default_rng(seed).choice(len(train), rows, replace=False))
    sub = Split([train.texts[i] for i in idx], train.labels[idx], f"{train.source} ({rows} rows)")
    return sub, logits[idx]


def trial_args(base: TrainArgs, cand: Candidate) -> TrainArgs:
    """The TrainArgs of one candidate: the base flags with the candidate's knobs, its other
    architecture fields as --student-config (validated as distill.train validates them)."""
    arch = {k: list(v) if isinstance(v, tuple) else v for k, v in cand.arch.items()}
    return dataclasses.replace(base, student=cand.student, **cand.train,
                               student_config=json.dumps(arch) if arch else None)


def retrain_args(settings: TrialSettings, cand: Candidate, trial_number: int) -> TrainArgs:
    """The TrainArgs that retrain a trial's candidate on every training row: `.command()` is the
    `python -m distill.train` command the leaderboard prints for it, and runs to the same weights."""
    run_dir = Path(settings.output_dir) / "best" / f"trial-{trial_number:04d}"
    return dataclasses.replace(trial_args(settings.base, cand), output_dir=str(run_dir), **settings.retrain)


class Objective:
    """The callable given to study.optimize; holds the label set and encoded data of one process."""

    def __init__(self, settings: TrialSettings, device: str | None = None):
        self.s = settings
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.ls = label_set_for(settings.base, torch.device(self.device))
        self.train_split, self.train_logits = training_subset(self.ls, settings.train_rows, settings.base.seed)
        self._toks: dict[tuple, object] = {}
        self._pruned: dict[tuple, object] = {}  # tokenizer key -> distill.data.vocab.Pruned (--prune-vocab)
        self._data: dict[int, tuple] = {}
        self.latency_cache: dict[str, float] = {}  # search.latency.arch_key -> ms: one timing per architecture

    def tokenizer(self, args: TrainArgs):
        """The student tokenizer for the args, cached per vocabulary size.

        A word vocabulary is built from every training row, as the full retrain builds it, and with
        --prune-vocab the tokenizer is pruned on every training row's token counts, as distill.train
        prunes it, so a trial's size is the size of the student it stands for."""
        key = self._tok_key(args)
        if key not in self._toks:
            tok = make_tokenizer(args, self.ls)
            if args.prune_vocab:
                from distill.data.vocab import prune_tokenizer, token_counts
                from distill.train import training_rows

                train, _ = training_rows(args, self.ls, tok)
                pruned = prune_tokenizer(tok, token_counts(train.tokens, tok.vocab_size), args.prune_min_count)
                self._pruned[key], tok = pruned, pruned.tokenizer
            self._toks[key] = tok
        return self._toks[key]

    @staticmethod
    def _tok_key(args: TrainArgs) -> tuple:
        return (args.tokenizer, args.vocab_max_size if args.tokenizer == "word" else None, args.prune_vocab,
                args.prune_min_count)

    def data(self, args: TrainArgs):
        """(tokenizer, train, dev): the training subset and the dev split, encoded (cached)."""
        tok = self.tokenizer(args)
        if id(tok) not in self._data:
            self._data[id(tok)] = (encode(self.train_split, self.train_logits, tok),
                                   encode(self.ls.splits["dev"], self.ls.logits["dev"], tok))
        return (tok, *self._data[id(tok)])

    def candidate(self, trial) -> tuple[Candidate, TrainArgs]:
        cand = suggest(trial, self.s.students, self.s.base.tokenizer, self.s.limits)
        return cand, trial_args(self.s.base, cand)

    def cost_of(self, cand: Candidate, args: TrainArgs) -> tuple[torch.nn.Module, Cost]:
        """Build the candidate with random weights and measure it (no training)."""
        tok = self.tokenizer(args)
        model = build_student_model(args, self.ls, tok)
        b = self.s.budget
        return model, measure(model, tok.vocab_size, self.ls.task.pair, b.timing, b.precision, self.latency_cache)

    def _log(self, msg: str) -> None:
        print(f"{self.s.log_prefix}{msg}", flush=True)

    def __call__(self, trial):
        import optuna

        # first, so that a rerun can tell a trial whose process was killed from a live one
        trial.set_user_attr("worker", worker_id())
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:  # Optuna marks it failed; queue it to run again on the rerun
            if trial.params:
                trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            raise
        except Exception as e:  # one line here; Optuna records the trial as failed
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            trial.set_user_attr("error", msg)
            trial.set_user_attr("error_kind", type(e).__name__)
            self._log(f"trial {trial.number} failed: {type(e).__name__}: {msg}")
            raise

    def _run(self, trial):
        import optuna

        s, metric = self.s, self.ls.task.metric
        cand, args = self.candidate(trial)
        trial.set_user_attr("student", cand.student)
        trial.set_user_attr("config", cand.describe() + (" (the default)" if trial.user_attrs.get("default_recipe")
                                                         else ""))
        trial.set_user_attr("arch", {k: list(v) if isinstance(v, tuple) else v for k, v in cand.arch.items()})
        trial.set_user_attr("command", retrain_args(s, cand, trial.number).command())
        model, cost = self.cost_of(cand, args)
        trial.set_user_attr("cost", cost.to_dict())
        trial.set_user_attr("check_seconds", round(cost.seconds, 3))
        head = (f"trial {trial.number} {cand.describe()}: {cost.latency_ms:.3f} ms, "
                f"{cost.size_mb:.2f} MB, {cost.params:,} params")
        violations = s.budget.violations(cost)
        for name, v in violations.items():
            trial.set_constraint(name, v)
        if any(v > 0 for v in violations.values()):
            trial.set_user_attr("rejected", s.budget.over(cost))
            self._log(f"{head}; over budget ({s.budget.over(cost)}): not trained")
            floor = METRIC_FLOOR.get(metric, 0.0)
            return floor if s.objective == "metric" else (floor, getattr(cost, s.cost_key))

        tok, train, dev = self.data(args)
        init_embeddings(model, args, self.ls, tok, self._pruned.get(self._tok_key(args)))
        if args.table_bits == 4:  # --precision int8-table4: train as distill.train --table-bits 4 would
            table4.attach(model)
        run_dir = Path(s.output_dir) / "trials" / f"{trial.number:04d}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a new trial number: anything there is stale
        trial.set_user_attr("tb", str(run_dir / "tb"))

        scores: list[float] = []

        def on_epoch(epoch: int, score: float) -> None:
            scores.append(score)
            if s.objective != "metric":
                return  # Optuna's pruners are single-objective
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"dev {metric} {score:.4f} after epoch {epoch}")

        cfg = dataclasses.replace(args.fit_config(self.device, args.epochs), progress=False,
                                  checkpoint_every_s=1e9)  # a trial is never resumed mid-way
        t0 = time.perf_counter()
        try:
            result = fit(model, train, dev, cfg, metric, run_dir=run_dir, on_epoch=on_epoch)
        except optuna.TrialPruned:
            trial.set_user_attr("train_seconds", round(time.perf_counter() - t0, 2))
            trial.set_user_attr("pruned_metric", max(scores))
            self._log(f"{head}; pruned after epoch {len(scores)} (dev {metric} {100 * max(scores):.2f})")
            raise
        finally:
            shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
        trial.set_user_attr("train_seconds", round(result.seconds, 2))
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("steps", result.steps)
        self._log(f"{head}; dev {metric} {100 * result.best_metric:.2f} "
                  f"(epoch {result.best_epoch}, {result.seconds:.0f} s)")
        if s.objective == "metric":
            return result.best_metric
        return result.best_metric, getattr(cost, s.cost_key)
