"""Command-line plumbing shared by the entry points: dataclass fields become dashed flags.

Each command declares its arguments as a dataclass whose fields carry `help` metadata and whose
`__post_init__` validates them (raising DistillError, which `main()` prints as one line).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields

from distill.errors import DistillError


def _help(text: str, default=None) -> dict:
    return {"help": text, "default": default}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (not usage + error)."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see --help\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks (its examples); shows a flag's default unless it is
    None/False (0 is shown) or the help already says it."""

    def _get_help_string(self, action):
        # `is`, not `in`: 0 == False, and a default of 0 is worth showing
        if any(action.default is x for x in (None, False, argparse.SUPPRESS)) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser(spec, prog: str, description: str = "", positional: tuple[str, ...] = (),
                 epilog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one dashed flag per field of the dataclass `spec`.

    Fields named in `positional` are positional arguments instead. The class's own fields come
    first in --help, inherited ones (shared flag groups) after. Help texts are plain text: a '%'
    in them is printed as is."""
    parser = Parser(prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter)
    own = set(spec.__dict__.get("__annotations__", {}))
    ordered = [f for f in fields(spec) if f.name in own] + [f for f in fields(spec) if f.name not in own]
    for f in ordered:
        text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if f.name in positional:
            parser.add_argument(f.name, help=text)
            continue
        flag = "--" + f.name.replace("_", "-")
        if "nargs" in f.metadata:  # a list flag: --merge A B C (None when absent, [] when bare)
            parser.add_argument(flag, nargs=f.metadata["nargs"], default=f.default, help=text)
            continue
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=text)
            continue
        base = f.type if isinstance(f.type, str) else f.type.__name__
        typ = {"int": int, "float": float}.get(base.split(" |")[0], str)
        parser.add_argument(flag, type=typ, default=f.default, help=text)
    return parser


def command_line(prog: str, args, skip: tuple[str, ...] = (), positional: tuple[str, ...] = ()) -> str:
    """The shell command that runs `args` (a flags dataclass made by build_parser's spec): the program,
    then every field that differs from its default, quoted for a POSIX shell, so it runs as printed."""
    parts = prog.split()
    for f in fields(args):
        value = getattr(args, f.name)
        if f.name in positional:
            parts.append(shlex.quote(str(value)))
            continue
        if f.name in skip or (f.default is not MISSING and value == f.default) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


class _LineStream:
    """A stream for tqdm where stderr is not a terminal (a log file, CI): each redraw becomes one whole
    line, with no carriage returns to pile up, and blank clears are dropped."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "").strip("\n")
        if text.strip():
            self.stream.write(text.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


LOG_INTERVAL_S = 30.0  # seconds between progress lines where stderr is not a terminal


def progress_bar(*args, **kwargs):
    """A tqdm bar: redrawn in place on a terminal; elsewhere one line at most every 30 s (plus the first
    and the last), so logs stay readable. Takes tqdm's arguments."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(*args, **kwargs)
    from tqdm import tqdm

    kwargs["mininterval"] = max(kwargs.get("mininterval") or 0.0, LOG_INTERVAL_S)
    kwargs["maxinterval"] = max(kwargs.get("maxinterval") or 0.0, kwargs["mininterval"])
    kwargs.setdefault("file", _LineStream(sys.stderr))
    kwargs.setdefault("ncols", 100)
    kwargs["dynamic_ncols"] = False
    return tqdm(*args, **kwargs)


def quiet_progress(no_progress: bool) -> None:
    """With --no-progress (or where stderr is not a terminal), no progress bars from transformers either
    (its `Loading weights` and `Writing model shards` bars)."""
    if no_progress or not sys.stderr.isatty():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def setup_torch(no_progress: bool, threads: int | None, device: str | None):
    """What every training command does first: quiet progress bars if asked, CPU threads, and the device
    (cuda if present unless --device says otherwise; --device cuda without a GPU is one line)."""
    import torch

    quiet_progress(no_progress)
    if threads:
        torch.set_num_threads(threads)
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise DistillError("--device cuda, but torch sees no GPU; drop --device or use cpu")
    return chosen


def run_command(fn: Callable[[], object], on_interrupt: str | None = "rerun the same command to resume"):
    """Run a command's body: a DistillError becomes `error: ...` on one line and exit code 2; Ctrl-C exits
    130 (saying `on_interrupt`, if given); a closed output pipe (`... | head`) ends quietly."""
    try:
        return fn()
    except DistillError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        if on_interrupt:
            print(f"\ninterrupted; {on_interrupt}", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(0) from None


def check_finite(args) -> None:
    """Every float flag of a flags dataclass is a finite number (argparse takes 'inf' and 'nan')."""
    for f in fields(args):
        value = getattr(args, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise DistillError(f"--{f.name.replace('_', '-')} {value}: must be a finite number")


@dataclass
class DataFlags:
    """Flags naming the data: GLUE through `datasets`, or a local folder with named columns."""

    data: str | None = field(default=None, metadata=_help(
        "local data folder with train and dev files (.tsv/.csv/.jsonl/.parquet); default: "
        "datasets.load_dataset('glue', task)"))
    text_column: str | None = field(default=None, metadata=_help("text column of custom data"))
    text_pair_column: str | None = field(default=None, metadata=_help(
        "second text column, for sentence-pair data"))
    label_column: str | None = field(default=None, metadata=_help(
        "label column of custom data; its distinct values (sorted) become the label names"))
    test: str | None = field(default=None, metadata=_help(
        "a labelled test file, scored once with the kept weights (teacher and student); default: the --data "
        "folder's test.* when it has labels. Epochs and checkpoints are chosen on dev only"))
    validation_fraction: float | None = field(default=None, metadata=_help(
        "when the data has no dev split: hold out this fraction of the training rows (seeded) as dev, "
        "before any augmentation, so no copy of a dev row is trained on"))

    format: str = field(default="auto", metadata=_help(
        "file format of --data: 'auto' (by suffix; a .txt/.ft file of `<label> <text>` lines is fastText's) or "
        "'fasttext' (train.txt, dev.txt: `__label__x some text` or `x some text` lines; columns text and label)"))
    dataset: str | None = field(default=None, metadata=_help(
        "instead of --data: anything datasets.load_dataset takes (a hub id, a folder of parquet/csv/json "
        "files, a builder such as 'csv') or a folder saved with save_to_disk; its train, validation (or dev) "
        "and test splits, with the columns named by --text-column and --label-column"))
    dataset_config: str | None = field(default=None, metadata=_help(
        "the configuration (second argument) of --dataset, e.g. a GLUE task name"))

    @property
    def data_source(self) -> str | None:
        """Where custom data comes from (--data or --dataset), or None for GLUE from the hub."""
        if self.dataset:
            return self.dataset + (f" ({self.dataset_config})" if self.dataset_config else "")
        return self.data

    def columns(self) -> tuple[tuple[str, ...] | None, str | None]:
        """(text columns, label column) these flags name; fastText files have `text` and `label`."""
        cols = tuple(c for c in (self.text_column, self.text_pair_column) if c) or None
        if cols is None and self.data and not self.dataset:
            from pathlib import Path

            from distill.data.readers import FASTTEXT_COLUMNS, find_split_file, is_fasttext

            train = find_split_file(Path(self.data), "train", required=False) if Path(self.data).is_dir() else None
            if self.format == "fasttext" or (train is not None and is_fasttext(train)):
                return (FASTTEXT_COLUMNS[0],), self.label_column or FASTTEXT_COLUMNS[1]
        return cols, self.label_column

    def data_task(self, task: str | None):
        """The Task of --task (default: the --data folder's (or --dataset's) name for custom data, else sst2)
        and these flags."""
        from distill.data.tasks import resolve_task

        if self.format not in ("auto", "fasttext"):
            raise DistillError(f"--format {self.format}: choose 'auto' or 'fasttext'")
        if self.data and self.dataset:
            raise DistillError("give --data or --dataset, not both")
        cols, label_column = self.columns()
        return resolve_task(self.task_name(task), cols, label_column)

    def task_name(self, task: str | None) -> str:
        """--task, or for custom data the --data folder's (or --dataset's) name, said once; else sst2."""
        from distill.data.tasks import default_task_name

        where = self.data or (self.dataset.rstrip("/") if self.dataset else None)
        return default_task_name(task, where, self.columns()[0])

    def load_data(self, task: str | None):
        """(task, splits) these flags name: train, dev (or held out from train) and a labelled test if any."""
        from distill.data.sources import load_splits

        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise DistillError(f"--validation-fraction {self.validation_fraction} must be between 0 and 1")
        return load_splits(self.data_task(task), self.data, self.test, self.validation_fraction,
                           dataset=self.dataset, dataset_config=self.dataset_config)


DEFAULT_MAX_TRANSFER_ROWS = 250_000


@dataclass
class AugmentFlags:
    """Flags for the transfer set: Tang et al.'s augmentation and unlabeled in-domain text."""

    augment: str | None = field(default=None, metadata=_help(
        "augment the training texts before the teacher labels them: 'tang' (masking, POS-guided "
        "replacement, n-gram sampling; Tang et al. 2019) or 'none'; default: tang whenever a teacher "
        "labels (without NLTK's tagger data, masking and n-grams only, with a warning)"))
    augment_copies: int | None = field(default=None, metadata=_help(
        "distinct augmented copies per training example (duplicates dropped); default 20 for single texts, "
        "10 for pairs (Tang et al.), fewer when --max-transfer-rows caps them"))
    max_transfer_rows: int = field(default=DEFAULT_MAX_TRANSFER_ROWS, metadata=_help(
        "cap on the rows the teacher labels for training (original + augmented + transfer): the copies per "
        "example are lowered to fit. The default keeps labelling to about 20 minutes on 2 CPU cores"))
    p_mask: float = field(default=0.1, metadata=_help("augmentation: probability of masking a word"))
    p_pos: float = field(default=0.1, metadata=_help(
        "augmentation: probability of replacing a word by one with the same POS tag"))
    p_ng: float = field(default=0.25, metadata=_help(
        "augmentation: probability of cutting the text to a random n-gram, n in 1..5"))
    augment_seed: int = field(default=0, metadata=_help("augmentation seed"))
    transfer_file: str | None = field(default=None, metadata=_help(
        "unlabeled in-domain text for the teacher to label: one text per line, or a "
        ".tsv/.csv/.jsonl/.parquet with the task's text columns"))

    def __post_init__(self) -> None:
        from distill.data.augment import AugmentConfig

        check_finite(self)  # every float flag of the command, these and its own
        if self.augment not in (None, "none", "tang"):
            raise DistillError(f"--augment {self.augment}: choose 'tang' or 'none'")
        if self.max_transfer_rows < 1:
            raise DistillError(f"--max-transfer-rows {self.max_transfer_rows} must be >= 1")
        AugmentConfig(copies=self.augment_copies or 0, p_mask=self.p_mask, p_pos=self.p_pos, p_ng=self.p_ng,
                      seed=self.augment_seed)  # validates the probabilities and copies

    def augment_config(self, train_rows: int, pair: bool, transfer_rows: int = 0):
        """The AugmentConfig these flags ask for, for a training split of `train_rows` rows, or None.

        Copies default to Tang et al.'s 20 (10 for pairs), lowered to fit --max-transfer-rows. The POS
        rule needs NLTK's tagger: by default it is dropped with a warning where that is missing; asked
        for with --augment tang, its absence is an error (raised when augmenting)."""
        from distill.data.augment import AugmentConfig, tagger_problem

        if self.augment == "none":
            return None
        copies = self.augment_copies if self.augment_copies is not None else (10 if pair else 20)
        fit = max(0, (self.max_transfer_rows - train_rows - transfer_rows) // max(1, train_rows))
        if copies > fit:
            print(f"augmentation: {copies} copies of each of {train_rows:,} training rows would pass "
                  f"--max-transfer-rows {self.max_transfer_rows:,}; making {fit} per row (raise "
                  "--max-transfer-rows for more)")
            copies = fit
        if copies == 0:
            return None
        p_pos = self.p_pos
        if p_pos > 0 and self.augment is None:
            problem = tagger_problem()
            if problem:
                print(f"warning: augmenting with masking and n-gram sampling only: {problem}")
                p_pos = 0.0
        return AugmentConfig(copies=copies, p_mask=self.p_mask, p_pos=p_pos, p_ng=self.p_ng, seed=self.augment_seed)
