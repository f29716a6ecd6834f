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
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from distill.data.tasks import Split, Task
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
