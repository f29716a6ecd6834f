"""Reading a task's data: local files (GLUE TSV, CSV, JSONL, Parquet), or GLUE from the hub.

GLUE tasks load by name through `datasets.load_dataset("glue", task)`. `--data DIR` reads local
files instead: GLUE TSV (fully quoted fields unquoted, as in RTE), CSV, JSONL or Parquet, one file
per split (`train.*` and `dev.*` / `validation.*`). Custom data names its own columns.

    from distill.data import resolve_task, load_splits
    task = resolve_task("rte")
    task, splits = load_splits(task, data_dir="../shared/data/glue/rte")
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from distill.data.tasks import GLUE_TASKS, Split, Task
from distill.errors import DistillError

# Raw CoLA TSVs have no header row: source, label, original label, sentence.
_HEADERLESS = {"cola": ("source", "label", "original_label", "sentence")}

_EXTENSIONS = (".tsv", ".csv", ".jsonl", ".json", ".parquet")
_FASTTEXT_EXTENSIONS = (".txt", ".ft", ".fasttext")  # `<label> <text>` lines (fastText's format)
FORMATS = ("auto", "fasttext")
FASTTEXT_COLUMNS = ("text", "label")  # the column names a fastText file's fields get
LABEL_PREFIX = "__label__"
_SPLIT_STEMS = {
    "train": ("train",),
    "dev": ("dev", "validation", "dev_matched", "validation_matched", "val"),
    "test": ("test", "test_matched"),
}


def _closest_layout(files: list[Path], split: str) -> str:
    """What the files in a folder come closest to, as a hint for a 'no train file' error."""
    import difflib

    if not files:
        return "the folder is empty"
    stems = [s for s in _SPLIT_STEMS[split]]
    for f in files:
        if f.suffix.lower() in _EXTENSIONS + _FASTTEXT_EXTENSIONS:
            near = difflib.get_close_matches(f.stem.lower(), stems, n=1, cutoff=0.5)
            if near:
                return f"closest supported layout: rename {f.name} to {near[0]}{f.suffix.lower()}"
    suffixes = sorted({f.suffix.lower() for f in files})
    if any(x in (".gz", ".zip", ".bz2", ".xz") for x in suffixes):
        return "closest supported layout: unpack the archive into the folder (train.* and dev.*)"
    if any(x in ("", ".arrow") for x in suffixes) or any(f.name in ("dataset_info.json", "state.json",
                                                                    "dataset_dict.json") for f in files):
        return "this looks like a `datasets` folder: pass it with --dataset instead of --data"
    return (f"closest supported layout: {split}.tsv (columns with a header row), {split}.csv, {split}.jsonl, "
            f"{split}.parquet, or {split}.txt in fastText's `__label__x text` format")


def find_split_file(data_dir: Path, split: str, required: bool = True) -> Path | None:
    """The file holding `split` ("train", "dev" or "test") in a local data folder; None if absent and
    not required. When several candidates exist, the first in _SPLIT_STEMS order is used, and said."""
    if not data_dir.is_dir():
        raise DistillError(f"--data {data_dir}: no such folder; point it at a folder holding "
                           "train and dev files (.tsv, .csv, .jsonl, .parquet or fastText .txt)")
    found = [data_dir / f"{stem}{ext}" for stem in _SPLIT_STEMS[split] for ext in _EXTENSIONS + _FASTTEXT_EXTENSIONS
             if (data_dir / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        print(f"{data_dir}: {split} split from {found[0].name} (also there: {', '.join(p.name for p in found[1:])})")
    if found:
        return found[0]
    if not required:
        return None
    names = ", ".join(f"{s}.tsv|.csv|.jsonl|.parquet|.txt" for s in _SPLIT_STEMS[split][:2])
    files = sorted(p for p in data_dir.iterdir() if not p.name.startswith("."))
    listing = ", ".join(p.name + ("/" if p.is_dir() else "") for p in files[:12]) + (" ..." if len(files) > 12 else "")
    hint = "; or hold out part of train as dev with --validation-fraction 0.1" if split == "dev" else ""
    raise DistillError(f"--data {data_dir}: no {split} file; expected one of {names}; found: "
                       f"{listing or 'nothing'}; {_closest_layout(files, split)}{hint}")


def is_fasttext(path: Path, lines: int = 50) -> bool:
    """Whether a .txt/.ft file holds fastText lines: `__label__x text`, or a leading bare label (few distinct
    first words, each line with text after it)."""
    if path.suffix.lower() not in _FASTTEXT_EXTENSIONS:
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        head = [line.split(maxsplit=1) for _, line in zip(range(lines), f) if line.strip()]
    if not head or any(len(parts) < 2 for parts in head):
        return False
    if all(parts[0].startswith(LABEL_PREFIX) for parts in head):
        return True
    return len({parts[0] for parts in head}) <= max(2, len(head) // 4)


def _read_fasttext(path: Path) -> tuple[list[str], list[dict]]:
    """fastText lines `__label__x some text` (or `x some text`): columns `label` and `text`."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                raise DistillError(f"{path}: line {i} has a label and no text; fastText lines are "
                                   "`__label__x some text`")
            label, text = parts
            label = label.removeprefix(LABEL_PREFIX)
            if text.startswith(LABEL_PREFIX):
                raise DistillError(f"{path}: line {i} has more than one label; one label per line is supported")
            out.append({"text": text.strip(), "label": label})
    return list(FASTTEXT_COLUMNS), out


def _unquote(field: str) -> str:
    """A TSV field as its text: CSV-quoted fields (GLUE's RTE quotes those holding '"', doubling them) are
    unquoted; any other '"' is text. A CSV reader would read an opening '"' of plain text (SUBJ's
    `" auto focus " works ...`) as quoting and run rows together."""
    if len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in field[1:-1].replace('""', ""):
        return field[1:-1].replace('""', '"')
    return field


def _read_rows(path: Path, headerless: tuple[str, ...] | None,
               lines: list[int] | None = None) -> tuple[list[str], list[dict]]:
    """Read a table file into (column names, rows as dicts of strings or values).

    Text files are read as UTF-8 with or without a byte-order mark. `lines`, if given, receives each
    row's line number in the file (its row number for Parquet), for errors that name the row."""
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise DistillError(f"{path}: the file is empty; it needs a header row and data rows")
    numbers: list[int] = []
    try:
        if suffix in _FASTTEXT_EXTENSIONS:
            header_out, out = _read_fasttext(path)
            numbers = list(range(1, len(out) + 1))
        elif suffix in (".tsv", ".csv"):
            csv.field_size_limit(sys.maxsize)
            rows, where = [], []
            with open(path, encoding="utf-8-sig", newline="") as f:
                if suffix == ".tsv":
                    for n, line in enumerate(f, start=1):
                        if line.strip():
                            rows.append([_unquote(x) for x in line.rstrip("\r\n").split("\t")])
                            where.append(n)
                else:
                    reader = csv.reader(f)
                    start = 1
                    for r in reader:
                        if r and any(x.strip() for x in r):
                            rows.append(r)
                            where.append(start)
                        start = reader.line_num + 1
            if not rows:
                raise DistillError(f"{path}: the file holds no rows; it needs a header row and data rows")
            header = rows[0]
            if headerless and len(header) == len(headerless) and not (set(header) & set(headerless)):
                header, body, where = list(headerless), rows, where
            else:
                body, where = rows[1:], where[1:]
                _check_header(path, header)
            out = []
            for n, r in zip(where, body):
                if len(r) != len(header):
                    raise DistillError(
                        f"{path}: row {n} has {len(r)} fields but the header has {len(header)}; "
                        "fix the row's quoting or delimiters"
                    )
                out.append(dict(zip(header, r)))
            numbers = where
            header_out = header
        elif suffix in (".jsonl", ".json"):
            out, header_out = [], []
            with open(path, encoding="utf-8-sig") as f:
                for i, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except (json.JSONDecodeError, RecursionError) as e:
                            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                            raise DistillError(f"{path}: line {i} is not valid JSON ({msg}); "
                                               "write one JSON object per line") from None
                        if not isinstance(row, dict):
                            raise DistillError(f"{path}: line {i} is a JSON {_json_kind(row)}, not an object; "
                                               'write one object per line, such as {"sentence": "...", "label": 1}')
                        out.append(row)
                        numbers.append(i)
                        header_out += [k for k in row if k not in header_out]
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(path)
                rows_out = table.to_pylist()
            except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                raise DistillError(f"{path}: not a readable Parquet file ({first}); the file is damaged or "
                                   "truncated: write it again") from None
            _check_header(path, table.column_names)
            out, header_out = rows_out, table.column_names
            numbers = list(range(1, len(out) + 1))
        else:
            raise DistillError(f"{path}: unsupported file type '{suffix}'; use .tsv, .csv, .jsonl, .parquet or "
                               "fastText .txt")
    except UnicodeDecodeError as e:
        raise DistillError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                           "re-save the file as UTF-8") from None
    if lines is not None:
        lines[:] = numbers
    return header_out, out


def _json_kind(value) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _check_header(path: Path, header: list) -> None:
    names = [str(h).strip() for h in header]
    if any(not n for n in names):
        raise DistillError(f"{path}: the header has an empty column name (column {names.index('') + 1}); "
                           "name every column")
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise DistillError(f"{path}: the header names column '{dup}' twice; give each column its own name")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def normalise_label(value) -> str:
    """A label cell as the text that names its class: numbers by value, so 0, 0.0 and '0' are one class."""
    text = str(value).strip()
    x = _number(text)
    if x is not None and math.isfinite(x):
        return str(int(x)) if x == int(x) else repr(x)
    return text


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
    x = _number(text)
    if x is not None and not math.isfinite(x):
        raise DistillError(f"{path}: row {row} has label '{text}', which is not a class; give the row a class "
                           f"label ({', '.join(names)}), or leave the cell empty for no label")
    if isinstance(value, (list, dict)):
        raise DistillError(f"{path}: row {row} has a {_json_kind(value)} as its label; give one class label "
                           f"({', '.join(names)}) per row")
    norm = normalise_label(text)
    if norm in names:
        return names.index(norm)
    index = int(x) if x is not None and x == int(x) else None
    if index is not None and 0 <= index < len(names):
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
    lines: list[int] = []
    header, rows = _read_rows(path, _HEADERLESS.get(task.name), lines)
    return split_from_rows(task, header, rows, path, lines, require_labels, labels_from)


def split_from_rows(task: Task, header: list[str], rows: list[dict], path, lines: list[int] | None = None,
                    require_labels: bool = True, labels_from=None) -> Split:
    """A Split from rows as dicts (a file's, or a `datasets` split's); `path` names them in errors and
    `lines` gives each row's number there (default: 1, 2, ...)."""
    lines = lines or list(range(1, len(rows) + 1))
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
    texts, labels = [], []
    for n, r in zip(lines, rows):
        parts = []
        for c in text_cols:
            value = r.get(c)
            if isinstance(value, (list, dict, bool)):
                raise DistillError(f"{path}: row {n} has a {_json_kind(value)} in '{c}', not text; "
                                   "give the text as a string")
            if value is None or not str(value).strip():
                raise DistillError(f"{path}: row {n} has an empty '{c}'; "
                                   "remove the row or fill in its text")
            parts.append(" ".join(str(value).split()))
        texts.append(tuple(parts))
        labels.append(_parse_label(r.get(label_col), task, path, n, labels_from) if label_col else -1)
    return Split(texts=texts, labels=np.asarray(labels, dtype=np.int64), source=str(path))


_DATASET_SPLITS = {"train": ("train",), "dev": ("validation", "dev", "valid", "val"), "test": ("test",)}


def load_hf_dataset(task: Task, name: str, config: str | None = None) -> tuple[Task, dict[str, Split]]:
    """train, dev (validation) and a labelled test from anything `datasets.load_dataset` takes (a hub id, a
    local folder of parquet/csv/json files, a builder name with data_files) or a `save_to_disk` folder.

    Columns are the task's (--text-column, --label-column); label names come from a ClassLabel feature,
    else from the training split's distinct values (sorted)."""
    import datasets

    where = f"--dataset {name}" + (f" --dataset-config {config}" if config else "")
    try:
        path = Path(name)
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json",
                                                               "dataset_info.json")) and not config:
            ds = datasets.load_from_disk(str(path))
        else:
            ds = datasets.load_dataset(name, config)
    except Exception as e:  # noqa: BLE001 - any failure here means "could not get the data"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DistillError(f"{where}: could not load it ({type(e).__name__}: {first})") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    chosen = {}
    for split, names in _DATASET_SPLITS.items():
        hit = next((n for n in names if n in ds), None)
        if hit is not None:
            chosen[split] = hit
    if "train" not in chosen:
        raise DistillError(f"{where}: no train split (its splits: {', '.join(ds)})")
    train = ds[chosen["train"]]
    header = list(train.column_names)
    if not task.label_names:
        col = _pick_column(task, task.label_column, header, where, "--label-column")
        feature = train.features[col]
        if isinstance(feature, datasets.ClassLabel):
            task = replace(task, label_names=tuple(feature.names))
        else:
            values = sorted({str(v).strip() for v in train[col] if v is not None and str(v).strip() not in ("", "-1")})
            if len(values) < 2:
                raise DistillError(f"{where}: column '{col}' holds {len(values)} distinct label(s); a classifier "
                                   "needs at least two")
            task = replace(task, label_names=tuple(values))
    splits = {}
    for split, hit in chosen.items():
        d = ds[hit]
        source = f"{where} ({hit})"
        part = split_from_rows(task, list(d.column_names), d.to_list(), source, None, split != "test",
                               f"{where} ({chosen['train']})" if split != "train" else None)
        if split == "test" and (part.labels < 0).all():
            continue  # a test split without labels: nothing to score
        splits[split] = part
    print(f"{where}: " + ", ".join(f"{k} {len(v):,} rows ({chosen[k]})" for k, v in splits.items()))
    return task, splits


def infer_label_names(task: Task, path: Path) -> Task:
    """For a custom task without label names: take them from the training file's label column."""
    lines: list[int] = []
    header, rows = _read_rows(path, None, lines)
    col = _pick_column(task, task.label_column, header, path, "--label-column")
    found = set()
    for n, r in zip(lines, rows):
        value = r.get(col)
        if value is None or str(value).strip() in ("", "-1"):
            continue  # no label
        if isinstance(value, (list, dict)):
            raise DistillError(f"{path}: row {n} has a {_json_kind(value)} as its label; give one class label "
                               "per row")
        x = _number(str(value).strip())
        if x is not None and not math.isfinite(x):
            raise DistillError(f"{path}: row {n} has label '{str(value).strip()}', which is not a class; give "
                               "the row a class label, or leave the cell empty for no label")
        found.add(normalise_label(value))
    numeric = all(_number(v) is not None for v in found)
    values = sorted(found, key=float) if numeric else sorted(found)
    if len(values) < 2:
        raise DistillError(f"{path}: column '{col}' holds {len(values)} distinct label(s); "
                           "a classifier needs at least two: add rows of another class, or name the "
                           "right column with --label-column")
    return replace(task, label_names=tuple(values))


def load_splits(task: Task, data_dir: str | Path | None = None, test_file: str | Path | None = None,
                validation_fraction: float | None = None, seed: int = 0, dataset: str | None = None,
                dataset_config: str | None = None) -> tuple[Task, dict[str, Split]]:
    """Load train, dev and (when there is a labelled one) test: from local files when `data_dir` is
    given, else from the hub.

    Test is `test_file`, or the folder's test.* when it has labels (GLUE's test files have none). With
    no dev split, `validation_fraction` of train is held out as dev (seeded); without it that is an error."""
    if dataset is not None:
        task, splits = load_hf_dataset(task, dataset, dataset_config)
        if test_file:
            splits["test"] = _read_test(task, Path(test_file), None, required=True)
    elif data_dir is not None:
        data_dir = Path(data_dir)
        train_path = find_split_file(data_dir, "train")
        dev_path = find_split_file(data_dir, "dev", required=validation_fraction is None)
        inferred = not task.label_names
        if inferred:
            task = infer_label_names(task, train_path)
        labels_from = train_path if inferred else None
        splits = {"train": read_split(task, train_path)}
        if dev_path is not None:
            splits["dev"] = read_split(task, dev_path, labels_from=labels_from)
        test_path = Path(test_file) if test_file else find_split_file(data_dir, "test", required=False)
        if test_path is not None:
            test = _read_test(task, test_path, labels_from, required=bool(test_file))
            if test is not None:
                splits["test"] = test
    else:
        if task.name not in GLUE_TASKS:
            raise DistillError(f"task '{task.name}' is not a GLUE task; pass --data DIR with its files")
        splits = _load_glue_from_hub(task)
        if test_file:
            splits["test"] = _read_test(task, Path(test_file), None, required=True)
    if "dev" not in splits:
        splits["train"], splits["dev"] = hold_out(splits["train"], validation_fraction, seed)
    for name in ("train", "dev"):
        if (splits[name].labels < 0).all():
            raise DistillError(f"{splits[name].source}: no row has a label; the {name} split needs them")
    warn_unlabelled(splits)
    return task, splits


def warn_unlabelled(splits: dict[str, Split]) -> None:
    """One line on stderr per split with rows that have no label, saying what that means."""
    for name, split in splits.items():
        n, missing = len(split), int((split.labels < 0).sum())
        if not missing or split.source.startswith("glue/"):
            continue
        where = Path(split.source).name if Path(split.source).exists() else split.source
        if name == "train":
            what = ("the teacher still labels them for distillation; fine-tuning a teacher leaves them out")
        else:
            what = f"the {name} metric covers the other {n - missing}"
        print(f"warning: {where}: {missing} of {n} rows have no label; {what}", file=sys.stderr)


def _read_test(task: Task, path: Path, labels_from: Path | None, required: bool) -> Split | None:
    """A labelled test split, or None for a test file without labels (unless --test named it)."""
    if not path.is_file():
        raise DistillError(f"--test {path}: no such file")
    header, _ = _read_rows(path, _HEADERLESS.get(task.name))
    has_label = task.label_column in header or any(a in header for a in task.local_aliases.get(task.label_column, ()))
    if not has_label and not required:
        return None  # e.g. GLUE's test.tsv: texts only, nothing to score
    split = read_split(task, path, labels_from=labels_from)
    if (split.labels < 0).all():
        if required:
            raise DistillError(f"--test {path}: no row has a label; a test split is scored against its labels")
        return None
    return split


def hold_out(train: Split, fraction: float | None, seed: int) -> tuple[Split, Split]:
    """(train, dev): a seeded random `fraction` of the training rows held out as dev."""
    if fraction is None:
        raise DistillError(f"{train.source}: there is no dev split; add a dev file, or hold out part of train "
                           "with --validation-fraction 0.1")
    n = len(train)
    k = round(fraction * n)
    if not 1 <= k < n - 1:
        raise DistillError(f"--validation-fraction {fraction} of {n} training rows leaves {k} dev rows; "
                           "choose a fraction that keeps at least one row in each")
    idx = np.random.default_rng([seed, 11]).permutation(n)
    dev_idx, train_idx = np.sort(idx[:k]), np.sort(idx[k:])
    print(f"no dev split: holding out {k:,} of {n:,} training rows as dev (--validation-fraction {fraction:g}, "
          f"seed {seed})")

    def take(rows: np.ndarray, what: str) -> Split:
        return Split([train.texts[i] for i in rows], train.labels[rows], f"{train.source} ({what})")
    return take(train_idx, "train part"), take(dev_idx, f"held-out {fraction:g}")


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


def check_classes(task: Task, splits: dict[str, Split]) -> None:
    """A classifier needs two classes in train, and dev may only hold labels that train has."""
    train, dev = splits["train"], splits["dev"]
    seen = sorted(set(train.labels[train.labels >= 0].tolist()))
    if len(seen) < 2:
        which = f"label '{task.label_names[seen[0]]}'" if seen else "no label"
        raise DistillError(f"{train.source}: every labelled row has {which}; a classifier needs at least two "
                           "classes: add rows of another class (or name the right column with --label-column)")
    unseen = ~np.isin(dev.labels, seen) & (dev.labels >= 0)
    if unseen.any():
        i = int(np.flatnonzero(unseen)[0])
        row = i + (1 if dev.source.endswith((".jsonl", ".json")) else 2)
        name = task.label_names[int(dev.labels[i])]
        raise DistillError(f"{dev.source}: row {row} has label '{name}', which no row of {train.source} has; a "
                           "teacher cannot learn a label it never sees: add training rows with it, or drop it from dev")


def content_hash(splits: dict[str, Split]) -> str:
    """A hash of the data's content (texts and labels), independent of where it came from."""
    h = hashlib.sha256()
    for name in sorted(splits):
        split = splits[name]
        h.update(name.encode())
        for t, y in zip(split.texts, split.labels.tolist()):
            h.update(json.dumps([t, y], ensure_ascii=False).encode())
    return h.hexdigest()


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
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as e:
            raise DistillError(f"--transfer-file {path}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                               "re-save it as UTF-8") from None
        texts = [(" ".join(line.split()),) for line in lines]
    kept = [t for t in texts if all(t)]
    if not kept:
        raise DistillError(f"--transfer-file {path}: every text is empty after removing whitespace")
    return kept
