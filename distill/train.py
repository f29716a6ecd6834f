"""Train a student on a teacher's logits and compare it with the teacher.

    python -m distill.train --student bilstm                 # offline default: shipped SST-2 label set
    python -m distill.train --student cnn --task sst2 --teacher textattack/bert-base-uncased-SST-2
    python -m distill.train --student transformer --task rte --teacher ./my-teacher --data ./glue/RTE
    python -m distill.train --student bilstm --labels runs/sst2-labels

Flow: argv -> TrainArgs -> label set (given, cached, or labelled now; distill.teacher.labelling) ->
student tokenizer (optionally pruned to the tokens the training rows use) -> student
(distill.training.student: embeddings from the teacher's by PCA or an autoencoder) -> fit()
(distill.training.fit, on the one loop of distill.training.engine) -> the run folder
(distill.training.runfolder) with the comparison report (distill.training.report).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

import students
from distill.bundle.policy import TABLE_BITS
from distill.cli import (
    AugmentFlags,
    DataFlags,
    _help,
    build_parser,
    command_line,
    run_command,
    setup_torch,
)
from distill.data.metrics import compute_metric
from distill.data.tasks import safe_name
from distill.data.vocab import prune_tokenizer, token_counts
from distill.errors import DistillError
from distill.outputs import (
    begin_output,
    check_output,
    clear_output,
    discard_fresh,
    flag_defaults,
    hold_lock,
    resumable_output,
)
from distill.teacher.labelset import ORIGINS, LabelSet
from distill.teacher.sets import label_set_for, teacher_summary
from distill.training.embeddings import INITS
from distill.training.fit import FitConfig, fit, predict
from distill.training.losses import LOSSES
from distill.training.report import build_report, render_markdown
from distill.training.runfolder import KIND, finish_run, run_config, write_run_files
from distill.training.student import ENCODER_INITS, build_model, encoder_teacher, make_tokenizer, teacher_length
from distill.training.teacher_init import TEACHER_LAYERS

# The default schedule on augmented or transfer rows: epochs over all of them until dev stops improving,
# within a step cap, both per student (Tang et al. train to convergence on the transfer set). The BiLSTM's
# cap bounds the quick start: 5,000 steps of it at batch 50 took 821-1,180 s of training on one thread of a
# busy 2-core machine (3 seeds). The CNN (with its context layers) gains 2.2 points on SST-2 dev from
# 2,000 to 10,000 steps (README), and with a patience of 4 one seed in 3 stopped at 3,888 steps 1.2 points
# under the others, so its patience lets it run to the cap (20 evaluations, 10,000 steps), keeping the best.
TRANSFER_EPOCHS = 100
TRANSFER_EVAL_EVERY = 500
LR = 1e-3  # AdamW, for students that start from random (or teacher-initialised table) weights
TEACHER_LAYERS_LR = 1e-4  # a transformer started from the teacher's layers is fine-tuned, not trained
TRANSFER_SCHEDULE = {  # student: (step cap, patience in dev evaluations)
    "bilstm": (5000, 4),
    "cnn": (10_000, 20),
    "transformer": (5000, 4),
}


def _per_student(i: int) -> str:
    """Field i of TRANSFER_SCHEDULE for --help: 'bilstm 5,000, cnn 10,000, transformer 5,000'."""
    return ", ".join(f"{name} {v[i]:,}" for name, v in TRANSFER_SCHEDULE.items())


# fields of a student's config that other flags or the data set, never --student-config
_SET_ELSEWHERE = ("vocab_size", "num_labels", "pair", "pad_id", "embed_dim", "dropout")


def check_student_config(student: str, text: str | None, args) -> str | None:
    """--student-config as canonical JSON (sorted keys), checked against the student's config fields."""
    if not text:
        return None
    try:
        cfg = json.loads(text)
    except ValueError as e:
        raise DistillError(f"--student-config {text!r} is not JSON ({e}); give an object such as "
                           "'{\"filter_widths\": [2, 3]}'") from None
    if not isinstance(cfg, dict):
        raise DistillError(f"--student-config {text!r} is not a JSON object; give one such as "
                           "'{\"filter_widths\": [2, 3]}'")
    cls = students.STUDENTS[student].config_class
    valid = [f.name for f in fields(cls) if f.name not in _SET_ELSEWHERE]
    for k in cfg:
        if k in _SET_ELSEWHERE:
            flag = {"embed_dim": "--embed-dim", "dropout": "--dropout"}.get(k)
            raise DistillError(f"--student-config: '{k}' is set " + (f"by {flag}; use that flag" if flag else
                                                                      "by the data; leave it out"))
        if k not in valid:
            raise DistillError(f"--student-config: {student} has no field '{k}'; its fields: {', '.join(valid)}")
    knobs = cls.knobs(args.width, args.depth)
    clash = [k for k in cfg if k in knobs]
    if clash:
        raise DistillError(f"--student-config: '{clash[0]}' is also set by --width/--depth; give it once")
    try:  # the values, on a placeholder vocabulary: a bad one fails now, not after labelling
        cls(vocab_size=8, num_labels=2, **{**cfg, **knobs})
    except (TypeError, ValueError) as e:
        raise DistillError(f"--student-config: {e}") from None
    return json.dumps(cfg, sort_keys=True, separators=(", ", ": "))


@dataclass
class TrainArgs(AugmentFlags, DataFlags):
    """Everything `python -m distill.train` takes; each field is one dashed flag."""

    student: str = field(default="bilstm", metadata=_help(
        f"student architecture: {', '.join(students.STUDENTS)}"))
    task: str | None = field(default=None, metadata=_help(
        "GLUE task (sst2, cola, mrpc, qqp, mnli, qnli, rte) or a custom name with --data and "
        "--text-column; default: the label set's task, or sst2"))
    teacher: str | None = field(default=None, metadata=_help(
        "teacher: hub id or local folder of an AutoModelForSequenceClassification; it labels "
        "the data once and the labels are cached"))
    labels: str | None = field(default=None, metadata=_help(
        "a label set made by `python -m distill.label` (trains without the teacher in memory); "
        "with neither --teacher nor --labels, the shipped SST-2 label set of a MiniLM teacher"))
    rows: str = field(default="all", metadata=_help(
        "training rows of the label set: 'all', or 'original' (leave out augmented and transfer "
        "rows, to measure what augmentation adds)"))
    original_repeats: int = field(default=1, metadata=_help(
        "with augmented or transfer rows: each original row appears this many times per pass over the "
        "training rows (1: once, as in Tang et al.; with 20 copies per text the real texts are then 1 row "
        "in 21)"))
    output_dir: str | None = field(default=None, metadata=_help(
        "where the run goes; default runs/<task>-<student>"))
    tokenizer: str = field(default="teacher", metadata=_help(
        "student tokenizer: 'teacher' (the teacher's) or 'word' (word-level vocabulary from the "
        "training text, as in Tang et al.)"))
    vocab_min_freq: int = field(default=1, metadata=_help("word vocabulary: minimum count"))
    vocab_max_size: int = field(default=50_000, metadata=_help("word vocabulary: maximum size"))
    max_length: int = field(default=128, metadata=_help("student tokens per text (truncation)"))
    embedding_init: str = field(default="auto", metadata=_help(
        "student embeddings: 'teacher-svd' (PCA of the teacher's word embeddings), 'teacher-contextual' "
        "(PCA of the teacher's hidden states pooled per token over the training rows, stored by distill.label), "
        "'teacher-autoencoder' (the code of a direction-loss autoencoder of them, Bałazy et al. "
        "2021; trained once, cached), 'random', or 'auto' (with the teacher's tokenizer: teacher-contextual for "
        "the BiLSTM when the label set has it, else teacher-svd; random with a word vocabulary)"))
    encoder_init: str = field(default="auto", metadata=_help(
        "transformer encoder: 'teacher' (start from the teacher's embeddings and bottom --depth layers, "
        f"default {TEACHER_LAYERS}, with "
        "its width, heads and feed-forward size and BERT's post-norm layout; needs the teacher's weights: "
        "--teacher, also beside --labels; BERT-layout teachers), 'random', or 'auto' (teacher when "
        "--teacher is given and can start it, --embedding-init is auto and the student reads the teacher's "
        "tokens; else random)"))
    freeze_embeddings: bool = field(default=False, metadata=_help(
        "keep the student's token table as --embedding-init made it (Kim 2014's CNN-static); "
        "default: train it with the rest of the student (non-static)"))
    prune_vocab: bool = field(default=False, metadata=_help(
        "keep only the special tokens and the tokens the training rows use (augmented and transfer "
        "rows included); other words are split into kept pieces or become unknown. Shrinks the "
        "embedding table (SST-2: 30,522 -> ~12k tokens)"))
    prune_min_count: int = field(default=1, metadata=_help(
        "with --prune-vocab: keep tokens used at least this many times"))
    table_bits: int = field(default=8, metadata=_help(
        "4: train the embedding table through the 4-bit rounding that `distill.export --quantize int8 "
        "--table-bits 4` applies (straight-through), and save it rounded, so that export loses nothing; "
        "8 (default): train in float"))
    width: int | None = field(default=None, metadata=_help(
        "student width: LSTM hidden size, CNN feature maps per filter, transformer d_model"))
    depth: int | None = field(default=None, metadata=_help(
        "student depth: LSTM layers, CNN filter widths, transformer layers"))
    embed_dim: int | None = field(default=None, metadata=_help("student embedding size"))
    dropout: float | None = field(default=None, metadata=_help("student dropout"))
    student_config: str | None = field(default=None, metadata=_help(
        "other fields of the student's config as JSON, e.g. '{\"filter_widths\": [2, 3]}' or "
        "'{\"context_layers\": 0}' (cnn: Kim's CNN, without the default 3 dilated convolutions: faster, less "
        "accurate) or "
        "'{\"heads\": 2, \"ff_dim\": 256}' (transformer); the search prints this for its trials"))
    loss: str = field(default="mse", metadata=_help("distillation loss: mse (on logits) or kl"))
    alpha: float = field(default=0.0, metadata=_help(
        "weight of the gold-label cross-entropy; 1 = no distillation (the baseline)"))
    temperature: float = field(default=2.0, metadata=_help("temperature of the kl loss"))
    epochs: int | None = field(default=None, metadata=_help(
        "training epochs; default 3 on the original rows alone. With augmented or transfer rows: "
        "epochs over all of them until the dev metric stops improving (--patience), within a step cap "
        f"(--max-steps; {_per_student(0)}) and with dev every {TRANSFER_EVAL_EVERY} steps "
        "(--eval-every)"))
    batch_size: int = field(default=50, metadata=_help("training batch size"))
    lr: float | None = field(default=None, metadata=_help(
        f"AdamW learning rate; default {LR}, or {TEACHER_LAYERS_LR} for a transformer started from the "
        "teacher's layers (--encoder-init)"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    warmup_ratio: float = field(default=0.05, metadata=_help("share of steps warming up the lr"))
    grad_clip: float = field(default=1.0, metadata=_help("gradient norm clip (0 = off)"))
    patience: int | None = field(default=None, metadata=_help(
        "stop after this many dev evaluations without a better dev metric; default 2, or on augmented "
        f"or transfer rows (evaluated more often) {_per_student(1)}"))
    eval_every: int | None = field(default=None, metadata=_help(
        "optimiser steps between dev evaluations (and one at each epoch's end); default: once an epoch. "
        "Give comparisons the same schedule"))
    max_steps: int | None = field(default=None, metadata=_help("stop after this many steps"))
    seed: int = field(default=0, metadata=_help("random seed"))
    teacher_max_length: int = field(default=128, metadata=_help("teacher tokens per text when labelling"))
    label_batch_size: int = field(default=64, metadata=_help("teacher batch size when labelling"))
    threads: int | None = field(default=None, metadata=_help("CPU threads (default: torch's)"))
    device: str | None = field(default=None, metadata=_help("cpu or cuda (default: cuda if present)"))
    resume: bool = field(default=False, metadata=_help("continue a killed run in --output-dir"))
    overwrite: bool = field(default=False, metadata=_help("replace the run in --output-dir"))
    trust_remote_code: bool = field(default=False, metadata=_help(
        "allow a hub teacher to run its own code (off: only trust code you have read)"))
    no_progress: bool = field(default=False, metadata=_help("no progress bars"))
    checkpoint_every_s: float = field(default=60.0, metadata=_help("seconds between checkpoints"))
    latency_repeats: int = field(default=20, metadata=_help(
        "timed forward passes per model at batch 1 for the report (a quarter as many at batch 32)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.student not in students.STUDENTS:
            raise DistillError(f"--student {self.student}: unknown student; choose one of: "
                               f"{', '.join(students.STUDENTS)}")
        checks = [
            (self.tokenizer in ("teacher", "word"), "--tokenizer must be 'teacher' or 'word'"),
            (self.rows in ("all", "original"), "--rows must be 'all' or 'original'"),
            (self.original_repeats >= 1, f"--original-repeats {self.original_repeats} must be 1 or more"),
            (self.embedding_init in INITS, f"--embedding-init must be one of: {', '.join(INITS)}"),
            (self.loss in LOSSES, f"--loss must be one of: {', '.join(LOSSES)}"),
            (0.0 <= self.alpha <= 1.0, f"--alpha {self.alpha} is outside [0, 1]"),
            (self.temperature > 0, f"--temperature {self.temperature} must be > 0"),
            (self.dropout is None or 0 <= self.dropout < 1, f"--dropout {self.dropout} is outside [0, 1)"),
            (self.weight_decay >= 0, f"--weight-decay {self.weight_decay} must be >= 0"),
            (0 <= self.warmup_ratio < 1, f"--warmup-ratio {self.warmup_ratio} is outside [0, 1)"),
            (self.grad_clip >= 0, f"--grad-clip {self.grad_clip} must be >= 0 (0 = off)"),
            (self.patience is None or self.patience >= 1, f"--patience {self.patience} must be >= 1"),
            (self.checkpoint_every_s >= 0, f"--checkpoint-every-s {self.checkpoint_every_s} must be >= 0"),
            (self.latency_repeats >= 1, f"--latency-repeats {self.latency_repeats} must be >= 1"),
            (self.threads is None or self.threads >= 1, f"--threads {self.threads} must be >= 1"),
            (self.teacher_max_length >= 8, f"--teacher-max-length {self.teacher_max_length} is too short; "
             "use at least 8"),
            (self.label_batch_size >= 1, f"--label-batch-size {self.label_batch_size} must be >= 1"),
            (self.vocab_min_freq >= 1, f"--vocab-min-freq {self.vocab_min_freq} must be >= 1"),
            (self.vocab_max_size >= 8, f"--vocab-max-size {self.vocab_max_size} must be >= 8"),
            (self.epochs is None or self.epochs >= 1, f"--epochs {self.epochs} must be >= 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be >= 1"),
            (self.lr is None or self.lr > 0, f"--lr {self.lr} must be > 0"),
            (self.max_length >= 1, f"--max-length {self.max_length} must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be >= 1"),
            (self.eval_every is None or self.eval_every >= 1, f"--eval-every {self.eval_every} must be >= 1"),
            (not (self.resume and self.overwrite), "--resume and --overwrite exclude each other"),
            (not (self.teacher and self.labels) or (self.student == "transformer" and self.encoder_init != "random"),
             "give --teacher or --labels, not both (both only for --student transformer, whose encoder then "
             "starts from the teacher's layers)"),
            (not (self.teacher and self.labels and (self.data_source or self.augment not in (None, "none")
                                                     or self.transfer_file)),
             "--labels already holds the training rows: drop --data, --augment and --transfer-file, or --labels"),
            (self.encoder_init in ENCODER_INITS, f"--encoder-init must be one of: {', '.join(ENCODER_INITS)}"),
            (self.encoder_init != "teacher" or self.student == "transformer",
             f"--encoder-init teacher: only the transformer has the teacher's layout (not --student {self.student})"),
            (self.encoder_init != "teacher" or (self.tokenizer == "teacher" and self.embedding_init == "auto"),
             "--encoder-init teacher copies the teacher's token table: use --tokenizer teacher and leave "
             "--embedding-init at auto"),
            (not (self.data_source and not self.teacher and not self.gold_only), "--data needs --teacher: the teacher "
             "labels it (or label it first with `python -m distill.label`, then pass --labels; or train a "
             "gold-only baseline with --alpha 1)"),
            (not ((self.augment not in (None, "none") or self.transfer_file) and not self.teacher),
             "--augment and --transfer-file need --teacher: the teacher labels the new texts "
             "(or label with `python -m distill.label --augment tang`, then pass --labels)"),
            (self.device in (None, "cpu", "cuda"), "--device must be cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise DistillError(message)
        if self.gold_only and self.tokenizer == "teacher":
            self.tokenizer = "word"  # no teacher, no teacher tokenizer (run() says so)
        if self.tokenizer == "word" and self.embedding_init.startswith("teacher-"):
            raise DistillError(f"--embedding-init {self.embedding_init} needs the teacher's tokenizer: "
                               "its rows are the teacher's tokens, and a word-level vocabulary has no "
                               "teacher rows. Drop --tokenizer word, or use --embedding-init random")
        self.student_config = check_student_config(self.student, self.student_config, self)
        limit = getattr(students.STUDENTS[self.student].config_class, "max_len", None)
        if limit is not None:  # the transformer's position table: --max-length must fit it
            limit = json.loads(self.student_config or "{}").get("max_len", limit)
            if self.max_length > limit:
                raise DistillError(f"--max-length {self.max_length}: the {self.student} student has {limit} "
                                   f"positions; use --max-length {limit} or less")
        if self.prune_min_count < 1:
            raise DistillError(f"--prune-min-count {self.prune_min_count} must be >= 1")
        if self.table_bits not in TABLE_BITS:
            raise DistillError(f"--table-bits {self.table_bits}: choose {' or '.join(map(str, TABLE_BITS))}")
        if self.prune_min_count > 1 and not self.prune_vocab:
            raise DistillError("--prune-min-count needs --prune-vocab")

    @property
    def gold_only(self) -> bool:
        """A baseline on the gold labels alone: --data and --alpha 1, with neither --teacher nor --labels."""
        return bool(self.data_source) and self.alpha == 1.0 and not self.teacher and not self.labels

    def fit_config(self, device: str, epochs: int | None = None, transfer: bool = False,
                   pretrained: bool = False) -> FitConfig:
        """The training schedule. `transfer`: the rows include augmented or transfer copies, so the
        defaults are epochs until the dev metric stops improving within a step cap (Tang et al. train
        to convergence on the transfer set), instead of 3 epochs. `pretrained`: the encoder starts
        from the teacher's layers, so the default learning rate is a fine-tuning one."""
        steps, patience = TRANSFER_SCHEDULE[self.student]
        defaults = (TRANSFER_EPOCHS, steps, TRANSFER_EVAL_EVERY, patience) if transfer else (3, None, None, 2)
        chosen = [v if v is not None else d
                  for v, d in zip((epochs or self.epochs, self.max_steps, self.eval_every, self.patience), defaults)]
        return FitConfig(
            epochs=chosen[0], batch_size=self.batch_size,
            lr=self.lr if self.lr is not None else TEACHER_LAYERS_LR if pretrained else LR,
            weight_decay=self.weight_decay, warmup_ratio=self.warmup_ratio,
            grad_clip=self.grad_clip, loss=self.loss, alpha=self.alpha,
            temperature=self.temperature, patience=chosen[3], seed=self.seed,
            max_steps=chosen[1], eval_every=chosen[2], checkpoint_every_s=self.checkpoint_every_s,
            device=device, progress=not self.no_progress,
        )

    def command(self) -> str:
        """The `python -m distill.train ...` command line that runs exactly these arguments."""
        return command_line("python -m distill.train", self, skip=("resume", "overwrite"))

    def identity(self) -> dict:
        """What makes two runs the same run (flags that only steer execution are left out)."""
        skip = {"resume", "overwrite", "threads", "no_progress", "device", "checkpoint_every_s",
                "label_batch_size", "latency_repeats"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    """argv -> TrainArgs, validated."""
    ns = build_parser(TrainArgs, "python -m distill.train", (__doc__ or "").split("\n\n")[0]).parse_args(argv)
    return TrainArgs(**vars(ns))


def training_rows(args: TrainArgs, ls: LabelSet, tok) -> tuple:
    """The rows to train on, tokenized, and how many came from each origin (train, augmented, transfer)."""
    train = ls.encode("train", tok)
    counts = np.bincount(ls.origin["train"], minlength=3)
    original = np.flatnonzero(ls.origin["train"] == 0)
    if args.rows == "original":
        train = train.select(original)
        counts[1:] = 0
    elif args.original_repeats > 1 and counts[1:].sum() > 0:
        extra = np.tile(original, args.original_repeats - 1)
        train = train.select(np.concatenate([np.arange(len(train)), extra]))
    return train, counts


def test_scores(model: torch.nn.Module, ls: LabelSet, tok) -> dict:
    """The kept student's and the teacher's metric on the label set's test split (its gold-labelled rows)."""
    test = ls.encode("test", tok)
    has = test.labels >= 0
    student = compute_metric(ls.task.metric, predict(model, test)[has].argmax(1), test.labels[has])
    teacher = compute_metric(ls.task.metric, test.teacher_logits[has].argmax(1), test.labels[has])
    return {"rows": int(has.sum()), "student_metric": student, "teacher_metric": teacher,
            "student_minus_teacher": student - teacher}


def test_line(test: dict, metric: str) -> str:
    return (f"\n**Test** ({test['rows']:,} labelled rows, scored once with the weights chosen on dev): student "
            f"{metric} {100 * test['student_metric']:.2f}, teacher {100 * test['teacher_metric']:.2f} "
            f"(student - teacher {100 * test['student_minus_teacher']:+.2f} points).\n")


def run(args: TrainArgs) -> dict:
    """The whole pipeline; returns the report."""
    device = setup_torch(args.no_progress, args.threads, args.device)
    task_name = None if args.labels and not args.task else args.task_name(args.task)
    if args.output_dir is None and task_name is None:
        task_name = LabelSet.load(args.labels).task.name
    out = Path(args.output_dir or f"runs/{safe_name(task_name)}-{args.student}")
    state = check_output(out, KIND)  # before any work: a file or a foreign folder in the way is one line
    with hold_lock(out):  # a second run on the same folder is refused at once
        return _run(args, device, out, state)


def student_length(args: TrainArgs, teacher) -> int:
    """Student tokens per text: --max-length, or the teacher's positions when the student starts from its
    layers and the default --max-length is longer (an explicit longer one is refused when the model is built)."""
    if teacher is None or args.max_length != flag_defaults(TrainArgs)["max_length"]:
        return args.max_length
    positions = teacher.config.max_position_embeddings
    if positions < args.max_length:
        print(f"student tokens per text: {positions} (the teacher's positions), not the default {args.max_length}")
    return min(args.max_length, positions)


def _run(args: TrainArgs, device: torch.device, out: Path, state: str) -> dict:
    """The pipeline once `out` is checked and locked."""
    resume = resumable_output(out, KIND, "config.json", args.identity(), args.resume, args.overwrite,
                              defaults=flag_defaults(TrainArgs)) is not None

    if args.gold_only:
        print("no teacher: the student reads words (--tokenizer word) and its embeddings start random "
              "(--embedding-init random)")
    ls = label_set_for(args, device)
    teacher = encoder_teacher(args, ls)
    tok = make_tokenizer(args, ls, max_length=student_length(args, teacher))
    train, counts = training_rows(args, ls, tok)
    pruned = None
    if args.prune_vocab:
        pruned = prune_tokenizer(tok, token_counts(train.tokens, tok.vocab_size), args.prune_min_count)
        tok = pruned.tokenizer
        train, _ = training_rows(args, ls, tok)  # re-tokenized: the ids are new
        print(f"vocabulary pruned to the tokens the training rows use (at least {args.prune_min_count}x): "
              f"{pruned.old_size:,} -> {pruned.new_size:,} tokens")
    dev = ls.encode("dev", tok)
    model, init = build_model(args, ls, tok, pruned, teacher)
    del teacher
    if args.table_bits == 4:
        from distill.training import table4

        print(f"training {table4.attach(model)} embedding table(s) through their 4-bit rounding "
              f"(distill.export --table-bits 4)")
    vocabulary = pruned.summary() if pruned else {"pruned": False, "size": tok.vocab_size}
    print(f"student {args.student}: {model.num_parameters():,} parameters "
          f"({model.num_parameters(exclude_embeddings=True):,} without embeddings), "
          f"{tok.kind} tokenizer ({tok.vocab_size:,} tokens), embeddings {init}"
          + (" (frozen)" if args.freeze_embeddings else "") + "; "
          f"{len(train):,} training rows ({counts[0]:,} original, {counts[1]:,} augmented, "
          f"{counts[2]:,} transfer"
          + (f"; the original rows {args.original_repeats}x" if len(train) > counts.sum() else "")
          + f") from {ls.path} "
          + ("(gold labels only)" if ls.teacher.get("gold_only") else f"(teacher {ls.teacher.get('name')})"))

    summary = teacher_summary(ls)
    if summary:
        print(summary)
    if args.overwrite:
        clear_output(out, KIND)
    begin_output(out, KIND)
    config = run_config(args, model, ls, tok, init, vocabulary)
    write_run_files(out, config=config, tok=tok)

    cfg = args.fit_config(device.type, transfer=len(train) > int(counts[0]), pretrained=init == "teacher-layers")
    epochs = cfg.epochs
    print(f"schedule: up to {cfg.epochs} epochs" + (f" within {cfg.max_steps:,} steps" if cfg.max_steps else "")
          + f", dev every {cfg.eval_every or 'epoch'}" + (" steps" if cfg.eval_every else "")
          + f", stopping after {cfg.patience} evaluations without a better dev metric")
    try:
        result = fit(model, train, dev, cfg, ls.task.metric, out)
    except DistillError:
        if not resume:  # a fresh run that failed (a non-finite loss) leaves nothing behind
            discard_fresh(out, KIND, state)
        raise
    if args.table_bits == 4:
        table4.snap(model)  # the saved tables are on the export's grid
    write_run_files(out, config=config, model=model)

    model.to("cpu")
    logits = predict(model, dev, device="cpu")
    has = dev.labels >= 0
    metric = compute_metric(ls.task.metric, logits[has].argmax(1), dev.labels[has])
    agreement = (None if ls.teacher.get("gold_only") else
                 float((logits.argmax(1) == dev.teacher_logits.argmax(1)).mean()))
    print("measuring sizes and speeds of " + ("student and BERT-base ..." if ls.teacher.get("gold_only") else
                                              "teacher, student and reference ..."))
    report = build_report(
        task=ls.task, teacher=ls.teacher, student_name=args.student, student=model,
        student_vocab=tok.vocab_size, teacher_length=teacher_length(ls),
        student_length=max(1, int(np.median(dev.lengths))), student_metric=metric,
        agreement=agreement, repeats=args.latency_repeats,
        extra={"training": {"rows": len(train), "rows_by_origin": dict(zip(ORIGINS, counts.tolist())),
                            "original_repeats": args.original_repeats,
                            "epochs": epochs, "steps": result.steps, "best_epoch": result.best_epoch,
                            "history": result.history, "seconds": round(result.seconds, 1),
                            "loss": args.loss, "alpha": args.alpha, "embedding_init": init,
                            "embeddings_frozen": args.freeze_embeddings,
                            "tokenizer": tok.kind, "vocabulary": vocabulary},
               "label_set": {"path": str(ls.path), "teacher": ls.teacher.get("id"),
                             "rows": ls.manifest.get("data", {}).get("rows")},
               "resumed": resume},
    )
    md = render_markdown(report)
    if "test" in ls.split_names:  # scored once, with the weights chosen on dev
        report["test"] = test_scores(model, ls, tok)
        md += test_line(report["test"], ls.task.metric)
    write_run_files(out, report=report, markdown=md)
    finish_run(out)
    print()
    print(md)
    print(f"saved student, tokenizer and report to {out}/")
    return report


def main(argv: list[str] | None = None) -> dict | None:
    """`python -m distill.train`: parse argv and run; bad input exits with one line."""
    return run_command(lambda: run(parse_args(argv)), "rerun the same command with --resume to continue")


if __name__ == "__main__":
    main()
