"""A task's splits, wherever they come from: a local folder (through distill.data.readers), GLUE or any
dataset from the hub (`datasets.load_dataset`, `load_from_disk`), a labelled test file, a dev split held out of
train; the checks on the splits; the content hash; unlabeled transfer text.

    from distill.data import resolve_task, load_splits
    task, splits = load_splits(resolve_task("rte"), data_dir="../shared/data/glue/rte")
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from distill.data.readers import (
    _EXTENSIONS,
    _HEADERLESS,
    _pick_column,
    _read_rows,
    find_split_file,
    infer_label_names,
    read_split,
    split_from_rows,
)
from distill.data.tasks import GLUE_TASKS, Split, Task
from distill.errors import DistillError

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
