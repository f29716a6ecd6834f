"""Tasks and data: which columns, labels and metric a task has, and loading its train/dev splits.

GLUE tasks load by name through `datasets.load_dataset("glue", task)`. `--data DIR` reads local
files instead: GLUE TSV (CSV-quoted fields, as in RTE), CSV, JSONL or Parquet, one file per split
(`train.*` and `dev.*` / `validation.*`). Custom data names its own columns.

    from distill.data import resolve_task, load_splits
    task = resolve_task("rte")
    splits = load_splits(task, data_dir="../shared/data/glue/rte")
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from distill.errors import DistillError

METRICS = ("accuracy", "f1", "mcc")


@dataclass(frozen=True)
class Task:
    """A classification task: its text column(s), label names and dev metric."""

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    metric: str = "accuracy"
    label_column: str = "label"
    hub_dev_split: str = "validation"
    # Column names that raw GLUE files use for the same fields (e.g. MRPC's "#1 String").
    local_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "text_columns": list(self.text_columns),
            "label_names": list(self.label_names),
            "metric": self.metric,
            "label_column": self.label_column,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        return cls(
            name=d["name"],
            text_columns=tuple(d["text_columns"]),
            label_names=tuple(d["label_names"]),
            metric=d["metric"],
            label_column=d.get("label_column", "label"),
        )


GLUE_TASKS: dict[str, Task] = {
    "sst2": Task("sst2", ("sentence",), ("negative", "positive")),
    "cola": Task("cola", ("sentence",), ("unacceptable", "acceptable"), metric="mcc"),
    "mrpc": Task(
        "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), metric="f1",
        local_aliases={"sentence1": ("#1 String",), "sentence2": ("#2 String",),
                       "label": ("Quality",)},
    ),
    "qqp": Task(
        "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), metric="f1",
        local_aliases={"label": ("is_duplicate",)},
    ),
    "mnli": Task(
        "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
        hub_dev_split="validation_matched",
        local_aliases={"premise": ("sentence1",), "hypothesis": ("sentence2",),
                       "label": ("gold_label",)},
    ),
    "qnli": Task("qnli", ("question", "sentence"), ("entailment", "not_entailment")),
    "rte": Task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment")),
}

# Raw CoLA TSVs have no header row: source, label, original label, sentence.
_HEADERLESS = {"cola": ("source", "label", "original_label", "sentence")}

_EXTENSIONS = (".tsv", ".csv", ".jsonl", ".json", ".parquet")
_SPLIT_STEMS = {
    "train": ("train",),
    "dev": ("dev", "validation", "dev_matched", "validation_matched", "val"),
}


@dataclass
class Split:
    """One split in memory: the text column(s) and integer labels (-1 where there is none)."""

    texts: list[tuple[str, ...]]
    labels: np.ndarray  # (N,) int64
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def column(self, i: int) -> list[str]:
        return [t[i] for t in self.texts]


def default_task_name(task: str | None, data: str | None, text_columns) -> str:
    """--task if given; for custom data (--data with --text-column) the data folder's name; else sst2."""
    if task:
        return task
    return Path(data).resolve().name if data and text_columns else "sst2"


def resolve_task(
    name: str,
    text_columns: tuple[str, ...] | None = None,
    label_column: str | None = None,
    label_names: tuple[str, ...] | None = None,
    metric: str | None = None,
) -> Task:
    """The task for a GLUE name, or a custom task whose columns the user names."""
    name = name.lower().replace("-", "")
    if name in GLUE_TASKS:
        task = GLUE_TASKS[name]
        if text_columns:
            if len(text_columns) != len(task.text_columns):
                raise DistillError(
                    f"task {name} has {len(task.text_columns)} text column(s), "
                    f"but {len(text_columns)} were named; drop --text-pair-column or add it"
                )
            task = replace(task, text_columns=tuple(text_columns), local_aliases={})
        if label_column:
            task = replace(task, label_column=label_column)
        if metric:
            task = replace(task, metric=metric)
        return task
    if not text_columns:
        raise DistillError(
            f"unknown task '{name}'; choose one of: {', '.join(GLUE_TASKS)}, or name a custom "
            "task's columns with --text-column (and --text-pair-column, --label-column) and --data"
        )
    if metric and metric not in METRICS:
        raise DistillError(f"unknown metric '{metric}'; choose one of: {', '.join(METRICS)}")
    return Task(
        name=name,
        text_columns=tuple(text_columns),
        label_names=tuple(label_names or ()),  # filled from the training data when empty
        metric=metric or "accuracy",
        label_column=label_column or "label",
    )


def find_split_file(data_dir: Path, split: str) -> Path:
    """The file holding `split` ("train" or "dev") in a local data folder."""
    if not data_dir.is_dir():
        raise DistillError(f"--data {data_dir}: no such folder; point it at a folder holding "
                           "train and dev files (.tsv, .csv, .jsonl or .parquet)")
    for stem in _SPLIT_STEMS[split]:
        for ext in _EXTENSIONS:
            path = data_dir / f"{stem}{ext}"
            if path.is_file():
                return path
    names = ", ".join(f"{s}.tsv|.csv|.jsonl|.parquet" for s in _SPLIT_STEMS[split][:2])
    raise DistillError(f"--data {data_dir}: no {split} file; expected one of {names}")


def _unquote(field: str) -> str:
    """A TSV field as its text: CSV-quoted fields (GLUE's RTE quotes those holding '"', doubling them) are
    unquoted; any other '"' is text. A CSV reader would read an opening '"' of plain text (SUBJ's
    `" auto focus " works ...`) as quoting and run rows together."""
    if len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in field[1:-1].replace('""', ""):
        return field[1:-1].replace('""', '"')
    return field


def _read_rows(path: Path, headerless: tuple[str, ...] | None) -> tuple[list[str], list[dict]]:
    """Read a table file into (column names, rows as dicts of strings or values)."""
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise DistillError(f"{path}: the file is empty; it needs a header row and data rows")
    try:
        if suffix in (".tsv", ".csv"):
            csv.field_size_limit(sys.maxsize)
            with open(path, encoding="utf-8", newline="") as f:
                if suffix == ".tsv":
                    rows = [[_unquote(x) for x in line.rstrip("\r\n").split("\t")] for line in f if line.strip()]
                else:
                    rows = list(csv.reader(f))
            header = rows[0]
            if headerless and len(header) == len(headerless) and not (set(header) & set(headerless)):
                header, body = list(headerless), rows
            else:
                body = rows[1:]
            out = []
            for i, r in enumerate(body, start=2):
                if len(r) != len(header):
                    raise DistillError(
                        f"{path}: row {i} has {len(r)} fields but the header has {len(header)}; "
                        "fix the row's quoting or delimiters"
                    )
                out.append(dict(zip(header, r)))
            return header, out
        if suffix in (".jsonl", ".json"):
            out = []
            with open(path, encoding="utf-8") as f:
                for i, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            out.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise DistillError(f"{path}: line {i} is not valid JSON ({e.msg}); "
                                               "write one JSON object per line") from None
            header = list(out[0]) if out else []
            return header, out
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            return table.column_names, table.to_pylist()
    except UnicodeDecodeError as e:
        raise DistillError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                           "re-save the file as UTF-8") from None
    raise DistillError(f"{path}: unsupported file type '{suffix}'; use .tsv, .csv, .jsonl or .parquet")


def _pick_column(task: Task, logical: str, header: list[str], path: Path, flag: str) -> str:
    for name in (logical, *task.local_aliases.get(logical, ())):
        if name in header:
            return name
    raise DistillError(
        f"{path}: no column '{logical}' (columns: {', '.join(map(str, header))}); "
        f"name the right one with {flag}"
    )


def _parse_label(value, task: Task, path: Path, row: int, labels_from: Path | None = None) -> int:
    """Map a label cell (index or name) onto the task's label index; -1 for 'no label'.

    `labels_from`: the training file the label names were taken from, for a clearer error."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "-1")) or value == -1:
        return -1
    names = task.label_names
    text = str(value).strip()
    if text in names:
        return names.index(text)
    try:
        index = int(float(text))
    except ValueError:
        index = None
    if index is not None and float(text) == index and 0 <= index < len(names):
        return index
    if labels_from is not None:
        raise DistillError(
            f"{path}: row {row} has label '{text}', which no row of {labels_from} has (its labels: "
            f"{', '.join(names)}); a model cannot learn a label it never sees in training: fix the row, "
            "or add training rows with that label"
        )
    raise DistillError(
        f"{path}: row {row} has label '{text}', outside the task's labels "
        f"{list(names)} (or indices 0..{len(names) - 1}); fix the row or pass --label-column"
    )


def read_split(task: Task, path: Path, require_labels: bool = True, labels_from: Path | None = None) -> Split:
    """Read one local split file and check its columns, labels and texts.

    `labels_from`: the training file the task's label names were inferred from, if they were."""
    header, rows = _read_rows(path, _HEADERLESS.get(task.name))
    if not rows:
        raise DistillError(f"{path}: no data rows; the file holds only a header")
    text_cols = [
        _pick_column(task, c, header, path, "--text-pair-column" if i else "--text-column")
        for i, c in enumerate(task.text_columns)
    ]
    has_label = task.label_column in header or any(
        a in header for a in task.local_aliases.get(task.label_column, ())
    )
    if require_labels and not has_label:
        _pick_column(task, task.label_column, header, path, "--label-column")  # raises
    label_col = _pick_column(task, task.label_column, header, path, "--label-column") if has_label else None
    row0 = 1 if path.suffix.lower() in (".jsonl", ".json") else 2  # first data row's line number
    texts, labels = [], []
    for i, r in enumerate(rows):
        parts = []
        for c in text_cols:
            value = r.get(c)
            if value is None or not str(value).strip():
                raise DistillError(f"{path}: row {i + row0} has an empty '{c}'; "
                                   "remove the row or fill in its text")
            parts.append(" ".join(str(value).split()))
        texts.append(tuple(parts))
        labels.append(_parse_label(r.get(label_col), task, path, i + row0, labels_from) if label_col else -1)
    return Split(texts=texts, labels=np.asarray(labels, dtype=np.int64), source=str(path))


def infer_label_names(task: Task, path: Path) -> Task:
    """For a custom task without label names: take them from the training file's label column."""
    header, rows = _read_rows(path, None)
    col = _pick_column(task, task.label_column, header, path, "--label-column")
    values = sorted({str(r[col]).strip() for r in rows if str(r.get(col, "")).strip() not in ("", "-1")})
    if len(values) < 2:
        raise DistillError(f"{path}: column '{col}' holds {len(values)} distinct label(s); "
                           "a classifier needs at least two: add rows of another class, or name the "
                           "right column with --label-column")
    return replace(task, label_names=tuple(values))


def load_splits(task: Task, data_dir: str | Path | None = None) -> tuple[Task, dict[str, Split]]:
    """Load train and dev: from local files when `data_dir` is given, else from the hub."""
    if data_dir is not None:
        data_dir = Path(data_dir)
        train_path = find_split_file(data_dir, "train")
        dev_path = find_split_file(data_dir, "dev")
        inferred = not task.label_names
        if inferred:
            task = infer_label_names(task, train_path)
        splits = {"train": read_split(task, train_path),
                  "dev": read_split(task, dev_path, labels_from=train_path if inferred else None)}
        for name, split in splits.items():
            if (split.labels < 0).all():
                raise DistillError(f"{split.source}: no row has a label; the {name} split needs them")
        return task, splits
    if task.name not in GLUE_TASKS:
        raise DistillError(f"task '{task.name}' is not a GLUE task; pass --data DIR with its files")
    return task, _load_glue_from_hub(task)


def _load_glue_from_hub(task: Task) -> dict[str, Split]:
    try:
        import datasets

        ds = datasets.load_dataset("glue", task.name)
    except Exception as e:  # noqa: BLE001 - any failure here means "could not get the data"
        raise DistillError(
            f"could not load GLUE {task.name} from the Hugging Face hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else 'no message'}); if the hub cannot be "
            f"reached, pass --data DIR with local train and dev files (e.g. GLUE's {task.name} TSVs)"
        ) from None
    out = {}
    for split, hub_split in (("train", "train"), ("dev", task.hub_dev_split)):
        d = ds[hub_split]
        texts = list(zip(*(d[c] for c in task.text_columns)))
        out[split] = Split(texts=[tuple(" ".join(s.split()) for s in t) for t in texts],
                           labels=np.asarray(d["label"], dtype=np.int64),
                           source=f"glue/{task.name}:{hub_split}")
    return out


def content_hash(splits: dict[str, Split]) -> str:
    """A hash of the data's content (texts and labels), independent of where it came from."""
    h = hashlib.sha256()
    for name in sorted(splits):
        split = splits[name]
        h.update(name.encode())
        for t, y in zip(split.texts, split.labels.tolist()):
            h.update(json.dumps([t, y], ensure_ascii=False).encode())
    return h.hexdigest()


# ---------------------------------------------------------------- batching


def pad_batch(seqs: list[list[int]] | list[list[list[int]]], pad_id: int, pair: bool):
    """Right-pad token id lists into (input_ids, attention_mask) tensors.

    Single: seqs[i] is a list of ids -> (B, T). Pair: seqs[i] is [ids_a, ids_b] -> (B, 2, T).
    """
    import torch

    rows = [list(r) for r in seqs] if pair else [[s] for s in seqs]  # (B, S, len) with S in {1, 2}
    T = max(1, max(len(s) for row in rows for s in row))
    ids = torch.full((len(rows), len(rows[0]), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), len(rows[0]), T), dtype=torch.long)
    for i, row in enumerate(rows):
        for j, s in enumerate(row):
            ids[i, j, : len(s)] = torch.as_tensor(s, dtype=torch.long)
            mask[i, j, : len(s)] = 1
    if not pair:
        ids, mask = ids[:, 0], mask[:, 0]
    return ids, mask


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
    bucket_batches: int = 50,
) -> list[np.ndarray]:
    """Index batches of similar length, so little time is spent on padding.

    Without `rng`: all rows sorted by length (inference). With `rng`: shuffle, sort within chunks
    of `bucket_batches` batches, then shuffle the batch order (training).
    """
    n = len(lengths)
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    chunk = batch_size * bucket_batches
    batches = []
    for start in range(0, n, chunk):
        idx = perm[start : start + chunk]
        idx = idx[np.argsort(-lengths[idx], kind="stable")]
        batches.extend(idx[i : i + batch_size] for i in range(0, len(idx), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def read_transfer_file(path: str | Path, task: Task) -> list[tuple[str, ...]]:
    """Unlabeled in-domain text: one text per line (.txt), or a table with the task's text columns."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"--transfer-file {path}: no such file")
    if path.stat().st_size == 0:
        raise DistillError(f"--transfer-file {path}: the file is empty; give one text per line")
    if path.suffix.lower() in _EXTENSIONS:
        header, rows = _read_rows(path, None)
        cols = [_pick_column(task, c, header, path, "--text-column") for c in task.text_columns]
        texts = [tuple(" ".join(str(r.get(c) or "").split()) for c in cols) for r in rows]
    else:
        if task.pair:
            raise DistillError(f"--transfer-file {path}: task {task.name} takes sentence pairs; give a "
                               f".tsv/.jsonl with columns {', '.join(task.text_columns)}")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise DistillError(f"--transfer-file {path}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                               "re-save it as UTF-8") from None
        texts = [(" ".join(line.split()),) for line in lines]
    kept = [t for t in texts if all(t)]
    if not kept:
        raise DistillError(f"--transfer-file {path}: every text is empty after removing whitespace")
    return kept
