"""Where a search's trials live (an Optuna storage and study), and the processes that run them.

    storage = open_storage("sqlite:///runs/search/study.db")      # or postgresql://..., journal:PATH
    study = open_study(storage, name, where, identity, ["maximize"], sampler, pruner)
    optimize(study, objective, target=30)

A study remembers the flags it was made for (its identity); a study made for other flags is refused.
A trial left running by a process that died is marked failed and queued again.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from distill.errors import DistillError
from search.args import SearchArgs
from search.objective import Objective, TrialSettings


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials log their own one-line outcome
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def redact(url: str) -> str:
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
            raise DistillError(f"--storage {redact(spec)}: no driver for '{dialect}' ({e}); {hint}") from None
        except Exception as e:  # unreachable host, bad credentials, no database, or a race (below)
            if attempt < 2:  # workers starting together on a new database race to create its tables
                time.sleep(0.5 * (attempt + 1))
                continue
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise DistillError(f"--storage {redact(spec)}: cannot open it ({first}); check the host, port, "
                               "user and database, or drop --storage to use SQLite in the output folder") from None


FLAGS_OF = {"task": "--labels", "label_set": "--labels", "students": "--student",
            "objective": "--objective", "cost": "--cost",
            "budget": "--max-params/--max-size-mb/--max-latency-ms", "precision": "--precision",
            "timing": "--latency-batch/--latency-length/--latency-threads",
            "latency_runtime": "--latency-runtime", "tokenizer": "--tokenizer",
            "train_rows": "--train-rows", "epochs": "--epochs", "batch_size": "--batch-size",
            "space": "--max-width/--max-depth/--max-embed-dim", "prune_vocab": "--prune-vocab/--prune-min-count",
            "space_kind": "--space"}


# what a study made before a key was recorded had: studies timed PyTorch before --latency-runtime,
# and searched the architecture before --space
BEFORE_RECORDED = {"latency_runtime": "torch", "space_kind": "arch"}


def _check_identity(name: str, where: str, old: dict | None, new: dict) -> None:
    if old is None:
        raise DistillError(f"--study-name {name} in {where} was not made by search.run; choose "
                           "another --study-name")
    for k, v in new.items():
        was = old.get(k, BEFORE_RECORDED.get(k))
        if was != v:
            raise DistillError(f"--study-name {name} in {where} belongs to a different search "
                               f"({FLAGS_OF.get(k, k)}: {k} was {was!r}, now {v!r}); use another "
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
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        if t.params:  # killed before it sampled anything: nothing to repeat
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        requeued.append(t.number)
    return requeued


def counted(study) -> int:
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
    while counted(study) < target:
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
    quiet_optuna()
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


def run_workers(job: WorkerJob) -> None:
    """Run job.args.workers worker processes on the study until it holds job.target trials."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(job, i)) for i in range(job.args.workers)]
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
        raise DistillError(f"{len(bad)} of {job.args.workers} worker processes stopped with an error "
                           "(see above); rerun the same command to continue the study")
