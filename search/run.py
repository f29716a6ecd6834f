"""Search student width, depth and more under a size or latency budget, then retrain the best.

    python -m search.run --student cnn --labels runs/sst2-aug --max-size-mb 5 --trials 40
    python -m search.run --student bilstm,cnn,transformer --max-latency-ms 2 --trials 60 --objective pareto
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
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from distill.cli import _help, build_parser
from distill.errors import DistillError
from distill.io import atomic_write_json
from distill.train import TrainArgs
from search.budget import BYTES_PER_PARAM, Budget, Timing, measure
from search.objective import Objective, TrialSettings, build_candidate, build_with_arch, trial_args
from search.space import SPACES, SpaceLimits, smallest, suggest

OBJECTIVES = ("metric", "pareto")
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "nsga2", "random")


@dataclass
class SearchArgs:
    """Everything `python -m search.run` takes; each field is one dashed flag."""

    student: str = field(default="bilstm", metadata=_help(
        f"student(s) to search, comma-separated ({', '.join(SPACES)}); several share one study, "
        "with the student type as a categorical parameter"))
    labels: str | None = field(default=None, metadata=_help(
        "label set from `python -m distill.label` (with --augment tang for a bigger transfer set); "
        "default: the shipped SST-2 label set of a MiniLM teacher"))
    output_dir: str | None = field(default=None, metadata=_help(
        "where the study (SQLite), trial logs, leaderboard, plot and retrained students go; "
        "default runs/search-<task>-<students>"))
    trials: int = field(default=30, metadata=_help(
        "trials the study should hold, over all workers and reruns (rejected ones included); "
        "rerun with a higher number to search longer"))
    objective: str = field(default="metric", metadata=_help(
        "'metric': maximise the dev metric under the budget; 'pareto': maximise the metric and "
        "minimise --cost, and report the Pareto front"))
    cost: str | None = field(default=None, metadata=_help(
        "second objective of --objective pareto: 'latency' or 'size'; default: the kind of budget "
        "given, else latency"))
    max_params: int | None = field(default=None, metadata=_help(
        "size budget: parameters, embeddings included"))
    max_size_mb: float | None = field(default=None, metadata=_help(
        "size budget: megabytes (10^6 bytes) of weights at --precision"))
    precision: str = field(default="fp32", metadata=_help(
        f"bytes per parameter for --max-size-mb: {', '.join(BYTES_PER_PARAM)} (the export precision)"))
    max_latency_ms: float | None = field(default=None, metadata=_help(
        "latency budget: median milliseconds of one forward pass on this CPU at --latency-batch "
        "and --latency-length with --latency-threads"))
    latency_batch: int = field(default=1, metadata=_help("batch size of the latency budget"))
    latency_length: int | None = field(default=None, metadata=_help(
        "tokens per example for timing; default: the median dev length in student tokens"))
    latency_threads: int = field(default=1, metadata=_help("CPU threads while timing"))
    latency_repeats: int = field(default=20, metadata=_help(
        "timed forward passes per student (their median is the latency)"))
    pruner: str | None = field(default=None, metadata=_help(
        "stop poor trials early on the per-epoch dev metric: median (from epoch 2 on), hyperband or "
        "none; default: median for --objective metric (pruners are single-objective: none for pareto)"))
    sampler: str | None = field(default=None, metadata=_help(
        "tpe, nsga2 or random; default: tpe for metric, nsga2 (the multi-objective GA) for pareto"))
    seed: int = field(default=0, metadata=_help(
        "sampler and training seed; the same seed gives the same trial sequence (one worker)"))
    storage: str | None = field(default=None, metadata=_help(
        "an Optuna storage: a SQLAlchemy URL (sqlite:///x.db, postgresql://user@host/db, ...) or "
        "journal:PATH for a journal file; default: SQLite in the output folder"))
    study_name: str | None = field(default=None, metadata=_help(
        "name of the study in --storage; workers on other machines use the same name; default "
        "<task>-<students>-<objective>"))
    workers: int = field(default=1, metadata=_help("processes on this machine working on the study"))
    threads: int | None = field(default=None, metadata=_help(
        "CPU threads per worker for training; default: torch's, divided among --workers"))
    tokenizer: str = field(default="teacher", metadata=_help(
        "student tokenizer: 'teacher' (fixed vocabulary) or 'word' (the vocabulary size is searched)"))
    train_rows: int = field(default=10_000, metadata=_help(
        "training rows each trial trains on (a fixed random subset; 0 = all); the retrain uses all"))
    epochs: int = field(default=3, metadata=_help("training epochs per trial"))
    batch_size: int = field(default=50, metadata=_help("training batch size"))
    max_width: int = field(default=512, metadata=_help("search space: largest width"))
    max_depth: int = field(default=4, metadata=_help("search space: largest depth"))
    max_embed_dim: int = field(default=300, metadata=_help("search space: largest embedding size"))
    retrain: int = field(default=1, metadata=_help(
        "how many of the best feasible students to retrain on every training row (for pareto: "
        "front members, best metric first); 0 = none"))
    retrain_epochs: int | None = field(default=None, metadata=_help(
        "epochs of the full retrain; default: distill.train's (3, or with augmented rows the steps "
        "of 3 epochs over the original rows)"))
    no_progress: bool = field(default=False, metadata=_help("no progress bars in the retrain"))

    def __post_init__(self) -> None:
        self.students = tuple(s.strip() for s in self.student.split(",") if s.strip())
        unknown = [s for s in self.students if s not in SPACES]
        if unknown or not self.students:
            raise DistillError(f"--student {self.student}: unknown student{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(unknown)}; choose from: {', '.join(SPACES)} (comma-separated)")
        if len(set(self.students)) != len(self.students):
            raise DistillError(f"--student {self.student}: a student is named twice")
        if self.cost is None:
            self.cost = "size" if (self.max_size_mb or self.max_params) and not self.max_latency_ms else "latency"
        if self.pruner is None:
            self.pruner = "median" if self.objective == "metric" else "none"
        if self.sampler is None:
            self.sampler = "tpe" if self.objective == "metric" else "nsga2"
        checks = [
            (self.objective in OBJECTIVES, f"--objective must be one of: {', '.join(OBJECTIVES)}"),
            (self.cost in ("latency", "size"), "--cost must be 'latency' or 'size'"),
            (self.pruner in PRUNERS, f"--pruner must be one of: {', '.join(PRUNERS)}"),
            (self.sampler in SAMPLERS, f"--sampler must be one of: {', '.join(SAMPLERS)}"),
            (not (self.objective == "pareto" and self.pruner != "none"),
             f"--pruner {self.pruner} works with --objective metric only (Optuna's pruners are "
             "single-objective); drop --pruner"),
            (not (self.objective == "metric" and self.sampler == "nsga2"),
             "--sampler nsga2 is for --objective pareto; use tpe or random"),
            (self.precision in BYTES_PER_PARAM, f"--precision must be one of: {', '.join(BYTES_PER_PARAM)}"),
            (self.trials >= 1, f"--trials {self.trials} must be >= 1"),
            (self.workers >= 1, f"--workers {self.workers} must be >= 1"),
            (self.max_params is None or self.max_params > 0, "--max-params must be > 0"),
            (self.max_size_mb is None or self.max_size_mb > 0, "--max-size-mb must be > 0"),
            (self.max_latency_ms is None or self.max_latency_ms > 0, "--max-latency-ms must be > 0"),
            (self.latency_batch >= 1, "--latency-batch must be >= 1"),
            (self.latency_length is None or self.latency_length >= 1, "--latency-length must be >= 1"),
            (self.latency_threads >= 1, "--latency-threads must be >= 1"),
            (self.latency_repeats >= 1, "--latency-repeats must be >= 1"),
            (self.tokenizer in ("teacher", "word"), "--tokenizer must be 'teacher' or 'word'"),
            (self.train_rows >= 0, "--train-rows must be >= 0 (0 = all)"),
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.retrain >= 0, "--retrain must be >= 0"),
            (self.retrain_epochs is None or self.retrain_epochs >= 1, "--retrain-epochs must be >= 1"),
            (self.max_width >= 16, "--max-width must be >= 16 (the smallest width searched)"),
            (self.max_depth >= 1, "--max-depth must be >= 1"),
            (self.max_embed_dim >= 16, "--max-embed-dim must be >= 16 (the smallest searched)"),
        ]
        for ok, message in checks:
            if not ok:
                raise DistillError(message)

    @property
    def limits(self) -> SpaceLimits:
        return SpaceLimits(max_width=self.max_width, max_depth=self.max_depth, max_embed_dim=self.max_embed_dim)


def parse_args(argv: list[str] | None = None) -> SearchArgs:
    """argv -> SearchArgs, validated."""
    doc = (__doc__ or "").split("\n\n")[0]
    ns = build_parser(SearchArgs, prog="python -m search.run", description=doc).parse_args(argv)
    return SearchArgs(**vars(ns))


# ============================================================================ storage and study


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials log their own one-line outcome
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can parse; nothing to hide
        return url


def open_storage(spec: str):
    """An Optuna storage from --storage: a SQLAlchemy URL or journal:PATH; one-line error if unusable."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if spec.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(spec[len("journal:"):])
        if not path.parent.is_dir():
            raise DistillError(f"--storage {spec}: the folder {path.parent} does not exist; create it "
                               "or give another path")
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in spec:
        raise DistillError(f"--storage {spec}: not a storage URL; give sqlite:///PATH, "
                           "postgresql://USER@HOST/DB, mysql://... or journal:PATH")
    dialect = spec.split(":", 1)[0].split("+", 1)[0]
    connect_args = {"sqlite": {"timeout": 60}, "postgresql": {"connect_timeout": 10},
                    "mysql": {"connect_timeout": 10}}.get(dialect, {})

    def connect():
        # heartbeats let a worker on any machine notice a trial whose worker died, and requeue it
        return RDBStorage(spec, engine_kwargs={"connect_args": connect_args} if connect_args else None,
                          heartbeat_interval=30, grace_period=120,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))

    for attempt in range(3):
        try:
            return connect()
        except ImportError as e:
            hint = "pip install 'psycopg[binary]'" if dialect == "postgresql" else "install its database driver"
            raise DistillError(f"--storage {_redact(spec)}: no driver for '{dialect}' ({e}); {hint}") from None
        except Exception as e:  # unreachable host, bad credentials, no database, or a race (below)
            if attempt < 2:  # workers starting together on a new database race to create its tables
                time.sleep(0.5 * (attempt + 1))
                continue
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise DistillError(f"--storage {_redact(spec)}: cannot open it ({first}); check the host, port, "
                               "user and database, or drop --storage to use SQLite in the output folder") from None


FLAGS_OF = {"task": "--labels", "label_set": "--labels", "students": "--student",
            "objective": "--objective", "cost": "--cost",
            "budget": "--max-params/--max-size-mb/--max-latency-ms", "precision": "--precision",
            "timing": "--latency-batch/--latency-length/--latency-threads", "tokenizer": "--tokenizer",
            "train_rows": "--train-rows", "epochs": "--epochs", "batch_size": "--batch-size",
            "space": "--max-width/--max-depth/--max-embed-dim"}


def _check_identity(name: str, where: str, old: dict | None, new: dict) -> None:
    if old is None:
        raise DistillError(f"--study-name {name} in {where} was not made by search.run; choose "
                           "another --study-name")
    for k, v in new.items():
        if old.get(k) != v:
            raise DistillError(f"--study-name {name} in {where} belongs to a different search "
                               f"({FLAGS_OF.get(k, k)}: {k} was {old.get(k)!r}, now {v!r}); use another "
                               "--study-name (or --output-dir), or repeat the flags it was made with")


def open_study(storage, name: str, where: str, identity: dict, directions: list[str], sampler, pruner):
    """Load the study `name`, or create it; refuse one made for another task, students or budget."""
    import optuna

    try:
        sid = storage.get_study_id_from_name(name)
    except KeyError:
        sid = None
    if sid is not None:
        _check_identity(name, where, storage.get_study_user_attrs(sid).get("search"), identity)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    if sid is None:
        if "search" not in study.user_attrs:  # another machine may have created it meanwhile
            study.set_user_attr("search", identity)
        _check_identity(name, where, study.user_attrs.get("search"), identity)
    return study


def make_sampler(args: SearchArgs, seed: int):
    import optuna

    if args.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if args.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, args.trials // 4)))
    with warnings.catch_warnings():  # multivariate/group are "experimental" since v2.8; they model
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # each student apart
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=min(10, max(2, args.trials // 3)))


def make_pruner(args: SearchArgs):
    import optuna

    if args.pruner == "median":
        # n_warmup_steps=2 (steps are epochs, from 1): never on epoch 1, where a BiLSTM may still
        # trail a CNN it will overtake;
        # n_min_trials: rejected trials report no epochs, so compare with at least 3 that did
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2, n_min_trials=3)
    if args.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def requeue_dead_local_trials(study) -> list[int]:
    """Trials left RUNNING by a killed process of this machine: mark them failed, queue them again.

    A trial names its worker (host:pid) first thing; one that still names none a moment later was
    created by a process that died before it could (a live one names itself within milliseconds)."""
    import socket

    from optuna.trial import TrialState

    def running():
        return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    host, dead = socket.gethostname(), []
    unnamed = {t.number for t in running() if "worker" not in t.user_attrs}
    if unnamed:
        time.sleep(2.0)
    for t in running():
        w = t.user_attrs.get("worker")
        if w is None:
            if t.number in unnamed:
                dead.append(t)
            continue
        h, _, pid = w.rpartition(":")
        if h == host and pid.isdigit() and not _pid_alive(int(pid)):
            dead.append(t)
    requeued = []
    for t in dead:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:  # killed before it sampled anything: nothing to repeat
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        requeued.append(t.number)
    return requeued


def _counted(study) -> int:
    """Trials that count towards --trials: finished (trained, pruned, rejected) or running."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                          TrialState.RUNNING)))


def optimize(study, objective, target: int, prefix: str = "") -> int:
    """Run one trial at a time until the study holds `target` trials; returns how many ran here.

    A trial that fails is recorded as failed and the search goes on, unless the failure is the
    user's to fix (a DistillError) or three trials in a row fail."""
    from optuna.trial import TrialState

    ran, failures, mine = 0, 0, []
    while _counted(study) < target:
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False,
                       callbacks=[lambda _study, t: mine.append(t)])
        ran += 1
        last = mine[-1]
        if last.state != TrialState.FAIL:
            failures = 0
            continue
        failures += 1
        if last.user_attrs.get("error_kind") == "DistillError":
            raise DistillError(last.user_attrs["error"])
        if failures >= 3:
            raise DistillError(f"{prefix}three trials in a row failed (last: trial {last.number}, "
                               f"{last.user_attrs.get('error', 'no message')}); fix that and rerun the same "
                               "command to continue")
    return ran


# ============================================================================ workers


@dataclass(frozen=True)
class WorkerJob:
    args: SearchArgs
    settings: TrialSettings
    storage: str
    study_name: str
    target: int
    threads: int | None


def _worker(job: WorkerJob, index: int) -> None:
    """A worker process: its own objective (label set, data) and sampler, the same study."""
    _quiet_optuna()
    if job.threads:
        torch.set_num_threads(job.threads)
    prefix = f"[worker {index}] "
    try:
        settings = dataclasses.replace(job.settings, log_prefix=prefix)
        objective = Objective(settings)
        storage = open_storage(job.storage)
        import optuna

        study = optuna.load_study(study_name=job.study_name, storage=storage,
                                  sampler=make_sampler(job.args, job.args.seed + index),
                                  pruner=make_pruner(job.args))
        optimize(study, objective, job.target, prefix)
    except DistillError as e:
        print(f"{prefix}error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


# ============================================================================ the search


def _median_dev_length(objective: Objective, base: TrainArgs) -> int:
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
                if key == "size_mb" and budget.precision != "int8":
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
        model = build_candidate(targs, objective.ls, tok, cand.arch)
        n_fit += quick.fits(measure(model, tok.vocab_size, objective.ls.task.pair, quick.timing, quick.precision))
        study.tell(trial, 0.0)
    return {"smallest": {n: c.to_dict() for n, (_, c) in corners.items()}, "sampled": samples, "sampled_fit": n_fit}


@contextmanager
def student_overrides(arch: dict):
    """distill.train.run() builds its student with build_model(), which takes only width, depth,
    embed_dim and dropout; for the fields the search adds (filter widths, heads, ff_dim, mlp_hidden)
    it builds with search.objective.build_with_arch instead, for the length of the block."""
    import distill.train as train_mod

    original = train_mod.build_model
    train_mod.build_model = build_with_arch(arch)
    try:
        yield
    finally:
        train_mod.build_model = original


def retrain(args: SearchArgs, settings: TrialSettings, objective: Objective, trials, out: Path) -> list[dict]:
    """Retrain the chosen trials on every training row with distill.train.run; each gets its report."""
    import optuna

    from distill.train import load_run, run

    done = []
    for t in trials:
        cand = suggest(optuna.trial.FixedTrial(t.params), args.students, settings.base.tokenizer, args.limits)
        run_dir = out / "best" / f"trial-{t.number:04d}"
        targs = dataclasses.replace(trial_args(settings.base, cand), output_dir=str(run_dir),
                                    epochs=args.retrain_epochs, no_progress=args.no_progress,
                                    latency_repeats=args.latency_repeats, resume=True, overwrite=False)
        if (run_dir / "report.json").is_file():
            print(f"trial {t.number}: already retrained in {run_dir}/")
            report = json.loads((run_dir / "report.json").read_text())
        else:
            print(f"\n== retraining trial {t.number} on every training row: {cand.describe()}", flush=True)
            with student_overrides(cand.arch):
                report = run(targs)
        model, tok, _ = load_run(run_dir)
        b = settings.budget
        cost = measure(model, tok.vocab_size, objective.ls.task.pair, b.timing, b.precision)
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


def run_search(args: SearchArgs) -> dict:
    """The whole search; returns the summary also saved as summary.json."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise DistillError("optuna is not installed; pip install -e '.[search]'") from None
    from search import report as rep

    _quiet_optuna()
    t_start = time.perf_counter()
    threads = args.threads or (max(1, torch.get_num_threads() // args.workers) if args.workers > 1 else None)
    if threads:
        torch.set_num_threads(threads)
    base = TrainArgs(student=args.students[0], labels=args.labels, tokenizer=args.tokenizer,
                     epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, no_progress=True,
                     latency_repeats=args.latency_repeats)
    timing = Timing(batch=args.latency_batch, length=args.latency_length or 1,
                    threads=args.latency_threads, repeats=args.latency_repeats)
    budget = Budget(max_params=args.max_params, max_size_mb=args.max_size_mb,
                    max_latency_ms=args.max_latency_ms, precision=args.precision, timing=timing)
    settings = TrialSettings(base=base, students=args.students, budget=budget, limits=args.limits,
                             objective=args.objective, cost=args.cost, train_rows=args.train_rows)
    objective = Objective(settings)
    ls = objective.ls
    if args.latency_length is None:
        timing = dataclasses.replace(timing, length=_median_dev_length(objective, base))
        budget = dataclasses.replace(budget, timing=timing)
    task = ls.task.name
    out = Path(args.output_dir or f"runs/search-{task}-{'+'.join(args.students)}")
    study_name = args.study_name or f"{task}-{'+'.join(args.students)}-{args.objective}"
    settings = dataclasses.replace(settings, budget=budget, output_dir=str(out))
    objective.s = settings
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
                "timing": [timing.batch, timing.length, timing.threads], "tokenizer": args.tokenizer,
                "train_rows": args.train_rows, "epochs": args.epochs, "batch_size": args.batch_size,
                "space": [args.max_width, args.max_depth, args.max_embed_dim]}
    marker = out / "search.json"
    if marker.is_file():
        prev = json.loads(marker.read_text())
        if prev.get("study_name") != study_name:
            raise DistillError(f"--output-dir {out} holds the search '{prev.get('study_name')}', not "
                               f"'{study_name}'; use another --output-dir")
    elif out.is_dir() and any(out.iterdir()):
        raise DistillError(f"--output-dir {out} is not empty and holds no search; choose another folder")
    storage_spec = args.storage
    if storage_spec is None:
        out.mkdir(parents=True, exist_ok=True)
        storage_spec = f"sqlite:///{(out / 'study.db').resolve()}"
    storage = open_storage(storage_spec)
    where = _redact(storage_spec)
    directions = ["maximize"] if args.objective == "metric" else ["maximize", "minimize"]
    study = open_study(storage, study_name, where, identity, directions, make_sampler(args, args.seed),
                       make_pruner(args))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, {"study_name": study_name, "storage": where, "identity": identity})
    requeued = requeue_dead_local_trials(study)
    if requeued:
        print(f"trial(s) {', '.join(map(str, requeued))} were running in a process that died: marked failed "
              "and queued again")
    before = _counted(study)
    print(f"study '{study_name}' in {where}: {before} of {args.trials} trials done"
          + (f"; {args.workers} workers" if args.workers > 1 else ""), flush=True)

    # ---- trials: here, or in --workers processes (each loads the data and samples on its own)
    if args.workers == 1:
        optimize(study, objective, args.trials)
    elif before < args.trials:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        job = WorkerJob(args, settings, storage_spec, study_name, args.trials, threads)
        procs = [ctx.Process(target=_worker, args=(job, i)) for i in range(args.workers)]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.join(timeout=30)  # they got the same Ctrl-C; let them record their trials
            raise
        bad = [p.exitcode for p in procs if p.exitcode != 0]
        if bad:
            raise DistillError(f"{len(bad)} of {args.workers} worker processes stopped with an error "
                               "(see above); rerun the same command to continue the study")
    search_seconds = time.perf_counter() - t_start

    # ---- reports
    trials = study.get_trials(deepcopy=False)
    rows = rep.trial_rows(trials)
    summary = rep.summarize(rows)
    front = None
    if args.objective == "pareto":
        front = {t.number for t in study.best_trials if "rejected" not in t.user_attrs}
    metric = ls.task.metric
    md_path, csv_path = rep.write_leaderboard(rows, summary, out, metric, budget.describe(), front)
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
    else:
        print("no feasible trial has finished yet")
    print(f"leaderboard: {md_path}, {csv_path}; plot: {png}; TensorBoard: tensorboard --logdir {out / 'trials'}")

    retrained = []
    if args.retrain and best:
        retrained = retrain(args, settings, objective, best[: args.retrain], out)
        for r in retrained:
            print(f"retrained trial {r['trial']}: dev {metric} {100 * r['dev_metric']:.2f} on every training "
                  f"row (search: {100 * r['search_dev_metric']:.2f}), {r['latency_ms']:.3f} ms timed again "
                  f"(search: {r['search_latency_ms']:.3f} ms), {r['size_mb']:.2f} MB, "
                  f"{'within' if r['within_budget'] else 'OVER'} budget -> "
                  f"{r['run_dir']}/report.md")
    result = {
        "study_name": study_name, "storage": where, "task": task, "metric": metric,
        "students": list(args.students), "objective": args.objective, "budget": budget.limits(),
        "budget_text": budget.describe(), "timing": dataclasses.asdict(timing), **summary,
        "this_run_seconds": round(search_seconds, 1),
        "best": [{"trial": t.number, "student": t.user_attrs["student"], "config": t.user_attrs["config"],
                  "dev_metric": t.values[0], **t.user_attrs["cost"],
                  "train_seconds": t.user_attrs.get("train_seconds")} for t in best[:10]],
        "pareto_front": sorted(front) if front is not None else None,
        "retrained": retrained,
    }
    atomic_write_json(out / "summary.json", result)
    return result


def main(argv: list[str] | None = None) -> dict | None:
    try:
        return run_search(parse_args(argv))
    except DistillError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted; finished trials are kept in the study: rerun the same command to continue",
              file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
