"""The flags of `python -m search.run`, as one dataclass (each field one dashed flag), validated."""

from __future__ import annotations

from dataclasses import dataclass, field

from distill.cli import _help, build_parser
from distill.errors import DistillError
from search.budget import BYTES_PER_PARAM
from search.latency import RUNTIMES
from search.space import SPACES, SpaceLimits

OBJECTIVES = ("metric", "pareto")
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "nsga2", "random")
SPACE_KINDS = ("arch", "recipe")


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
        "default runs/search-<task>-<students> (with --space recipe: ...-recipe)"))
    space: str = field(default="arch", metadata=_help(
        "what the trials vary. arch (default): each student's width, depth, embedding size and more, with "
        "dropout, lr and alpha; recipe: the student's default architecture stays, and its training recipe is "
        "searched: lr, dropout, loss (mse or kl, and its temperature), alpha, batch size, warm-up, weight "
        "decay, the frozen or tuned table, and the transformer's heads (search/space.py). "
        "--max-width, --max-depth, --max-embed-dim and --tokenizer word's vocabulary size are arch knobs"))
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
        "size budget: parameters of the student, embeddings included (not the tokenizer or other bundle files)"))
    max_size_mb: float | None = field(default=None, metadata=_help(
        "size budget: megabytes (10^6 bytes) of the student's weights alone, every parameter (embeddings "
        "included) at --precision bytes each. The bundle folder a phone downloads is larger: it also holds "
        "tokenizer.json (a WordPiece vocabulary of 30k tokens is ~0.7 MB; --prune-vocab or a word tokenizer "
        "shrink it), metadata.json and the README; distill.export prints the whole folder's size"))
    precision: str = field(default="fp32", metadata=_help(
        f"the export precision ({', '.join(BYTES_PER_PARAM)}): bytes per parameter for --max-size-mb, counted "
        "as the export stores them (int8: the op types of distill/bundle/policy.py INT8_OPS at one byte; "
        "int8-table4: the same with the embedding tables at 4 bits, as `distill.export --quantize int8 "
        "--table-bits 4` ships them, and every trial and the retrain train for it, as `distill.train --table-bits 4` "
        "does); with --latency-runtime onnx, int8 and int8-table4 also time that model "
        "(fp16 times the fp32 graph)"))
    max_latency_ms: float | None = field(default=None, metadata=_help(
        "latency budget: median milliseconds of one call on this CPU at --latency-batch and "
        "--latency-length with --latency-threads, in --latency-runtime (by default the ONNX bundle)"))
    latency_runtime: str = field(default="onnx", metadata=_help(
        "what --max-latency-ms and the latency column time. onnx (default): the bundle that ships: each "
        "architecture is exported once, as distill.export exports it (int8 with --precision int8), and "
        "run by ONNX Runtime (intra-op threads --latency-threads, one inter-op thread, sequential); "
        "needs the onnx extra. torch: the PyTorch eager student, typically 2-3x slower than its bundle"))
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
    prune_vocab: bool = field(default=False, metadata=_help(
        "trials and the retrain drop the vocabulary tokens the training rows never use (distill.train's "
        "--prune-vocab, counted over every training row), so size budgets see the pruned embedding table"))
    prune_min_count: int = field(default=1, metadata=_help(
        "with --prune-vocab: keep tokens used at least this many times"))
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
        "epochs of the full retrain; default: distill.train's (3, or with augmented rows epochs "
        "until the dev metric stops improving, within a step cap)"))
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
            (self.space in SPACE_KINDS, f"--space {self.space}: choose {' or '.join(SPACE_KINDS)}"),
            (self.precision in BYTES_PER_PARAM, f"--precision must be one of: {', '.join(BYTES_PER_PARAM)}"),
            (self.trials >= 1, f"--trials {self.trials} must be >= 1"),
            (self.workers >= 1, f"--workers {self.workers} must be >= 1"),
            (self.max_params is None or self.max_params > 0, "--max-params must be > 0"),
            (self.max_size_mb is None or self.max_size_mb > 0, "--max-size-mb must be > 0"),
            (self.max_latency_ms is None or self.max_latency_ms > 0, "--max-latency-ms must be > 0"),
            (self.latency_runtime in RUNTIMES, f"--latency-runtime {self.latency_runtime}: choose "
             f"{' or '.join(RUNTIMES)}"),
            (self.latency_batch >= 1, "--latency-batch must be >= 1"),
            (self.latency_length is None or self.latency_length >= 1, "--latency-length must be >= 1"),
            (self.latency_threads >= 1, "--latency-threads must be >= 1"),
            (self.latency_repeats >= 1, "--latency-repeats must be >= 1"),
            (self.tokenizer in ("teacher", "word"), "--tokenizer must be 'teacher' or 'word'"),
            (self.train_rows >= 0, "--train-rows must be >= 0 (0 = all)"),
            (self.prune_min_count >= 1, f"--prune-min-count {self.prune_min_count} must be >= 1"),
            (self.prune_min_count == 1 or self.prune_vocab, "--prune-min-count needs --prune-vocab"),
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
        return SpaceLimits(max_width=self.max_width, max_depth=self.max_depth, max_embed_dim=self.max_embed_dim,
                           recipe=self.space == "recipe")


def parse_args(argv: list[str] | None = None) -> SearchArgs:
    """argv -> SearchArgs, validated."""
    from search import run

    doc = (run.__doc__ or "").split("\n\n")[0]
    ns = build_parser(SearchArgs, prog="python -m search.run", description=doc).parse_args(argv)
    return SearchArgs(**vars(ns))
