"""A label set on disk: texts, gold labels and the teacher's logits, plus a manifest.

Layout of a label set folder (written by `distill.teacher.label`, read by `LabelSet.load`):

    manifest.json                   task, teacher (id, config, fingerprint, dev and test metric), data
                                    hash, settings, augmentation rules used, row counts, cache key
    train.parquet, dev.parquet      text_a [, text_b], label (int64, -1 = none), logits (float32 x C);
    [test.parquet]                  train also origin (train/augmented/transfer) and source (the index
                                    of the original training row a copy was made from; -1 for transfer)
    tokenizer.json                  the teacher's tokenizer (students use it by default)
    teacher_embeddings.safetensors  the teacher's word-embedding table (all rows, or the rows of
                                    tokens the texts use), int8 per row + scale, to initialise
                                    student embeddings without loading the teacher
    [teacher_contextual.safetensors] the same rows, in the same format, of the teacher's hidden
                                    states pooled per token over the original training rows
                                    (distill.teacher.contextual); its metadata names the layer
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from distill.data.tasks import Split, Task
from distill.errors import DistillError
from distill.io import atomic_path, atomic_write_json, atomic_write_text, save_tensors

FORMAT_VERSION = 1
SPLITS = ("train", "dev")  # in every label set
OPTIONAL_SPLITS = ("test",)  # when the data has a labelled test split
CONTEXTUAL_FILE = "teacher_contextual.safetensors"
# the label set shipped in the package: `distill.train` trains on it when given no teacher or labels
DEFAULT_LABELS = Path(__file__).resolve().parents[1] / "assets" / "sst2-minilm"


ORIGINS = ("train", "augmented", "transfer")  # where a training row came from


@dataclass
class LabelSet:
    """A loaded label set: per split the gold labels, teacher logits and row origins as arrays.

    Texts stay in their Arrow tables until asked for: `iter_texts` streams them in chunks (what
    training does, so 1.5M augmented rows never become 1.5M Python tuples at once), and `splits`
    materialises a whole split when that is simpler (dev sets, tests)."""

    path: Path
    manifest: dict
    task: Task
    tables: dict  # split -> pyarrow.Table
    labels: dict[str, np.ndarray]  # split -> (N,) int64, -1 = no gold label
    logits: dict[str, np.ndarray]  # split -> (N, C) float32
    origin: dict[str, np.ndarray]  # split -> (N,) int8 index into ORIGINS
    source: dict[str, np.ndarray]  # split -> (N,) int64 original row each row was made from (-1: transfer text)

    @property
    def teacher(self) -> dict:
        return self.manifest["teacher"]

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def split_names(self) -> tuple[str, ...]:
        """The splits this label set holds: train, dev and, when the data had a labelled one, test."""
        return tuple(self.labels)

    def num_rows(self, split: str) -> int:
        return len(self.labels[split])

    def iter_texts(self, split: str, chunk: int = 65_536):
        """Yield the split's texts as lists of tuples, `chunk` rows at a time."""
        table = self.tables[split]
        cols = [f"text_{'ab'[i]}" for i in range(len(self.task.text_columns))]
        for start in range(0, table.num_rows, chunk):
            part = table.slice(start, chunk)
            yield list(zip(*(part.column(c).to_pylist() for c in cols)))

    @cached_property
    def splits(self) -> dict[str, Split]:
        return {name: Split([t for part in self.iter_texts(name) for t in part], self.labels[name],
                            str(self.path / f"{name}.parquet")) for name in self.split_names}

    def encode(self, split: str, tok):
        """The split tokenized by a student tokenizer (an Encoded, teacher logits included), streamed from disk."""
        from distill.data.tokenizer import encode_chunks

        return encode_chunks(self.iter_texts(split), tok, self.labels[split], self.logits[split], self.task.pair)

    def tokenizer_json(self) -> str | None:
        p = self.path / "tokenizer.json"
        return p.read_text(encoding="utf-8") if p.is_file() else None

    def teacher_embeddings(self):
        """(table (V, D) float32, present (V,) bool): the teacher's word embeddings, or None.

        A label set may store only the rows of tokens its texts use (`embedding_rows="used"`);
        the other rows are zero and `present` is False there."""
        p = self.path / "teacher_embeddings.safetensors"
        return _read_table(p)[:2] if p.is_file() else None

    @property
    def has_contextual(self) -> bool:
        return (self.path / CONTEXTUAL_FILE).is_file()

    def teacher_contextual(self):
        """(table (V, D) float32, present (V,) bool, layer) of pooled hidden states, or None."""
        p = self.path / CONTEXTUAL_FILE
        if not p.is_file():
            return None
        table, present, meta = _read_table(p)
        return table, present, int(meta.get("layer", -1))

    @classmethod
    def load(cls, path: str | Path) -> LabelSet:
        """Read a label set folder; a one-line error if it is not one."""
        path = Path(path)
        mpath = path / "manifest.json"
        if not mpath.is_file():
            raise DistillError(f"{path}: not a label set (no manifest.json); make one with "
                               "`python -m distill.label --teacher T --task TASK --output-dir DIR`")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
            task = Task.from_dict(manifest["task"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DistillError(f"{mpath} is damaged ({type(e).__name__}: {e}); relabel with "
                               "`python -m distill.label`") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DistillError(f"{path}: label set format {manifest.get('format_version')} is not "
                               f"{FORMAT_VERSION}; relabel it with `python -m distill.label`")
        parts = {}
        for name in SPLITS + OPTIONAL_SPLITS:
            if name in SPLITS or (path / f"{name}.parquet").is_file():
                parts[name] = _read_split(path / f"{name}.parquet", task)
        tables, labels, logits, origin, source = ({k: v[i] for k, v in parts.items()} for i in range(5))
        return cls(path, manifest, task, tables, labels, logits, origin, source)


def _read_split(path: Path, task: Task):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DistillError(f"{path}: missing from the label set; relabel with `python -m distill.label`")
    try:
        table = pq.read_table(path)
        labels = table.column("label").to_numpy().astype(np.int64)
        flat = table.column("logits").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        logits = flat.astype(np.float32).reshape(len(labels), task.num_labels)
    except Exception as e:  # truncated or foreign parquet: pyarrow raises many kinds  # noqa: BLE001
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise DistillError(f"{path} cannot be read ({type(e).__name__}: {first}); the label set is damaged: "
                           "relabel with `python -m distill.label`") from None
    if "origin" in table.column_names:
        names = table.column("origin").to_pylist()
        origin = np.asarray([ORIGINS.index(n) for n in names], dtype=np.int8)
    else:
        origin = np.zeros(len(labels), dtype=np.int8)
    if "source" in table.column_names:
        source = table.column("source").to_numpy().astype(np.int64)
    else:  # label sets written before sources were kept: originals are their own source, others unknown
        source = np.where(origin == 0, np.arange(len(labels)), -1)
    text_cols = [c for c in table.column_names if c.startswith("text_")]
    return table.select(text_cols), labels, logits, origin, source


def write_split(path: Path, split: Split, logits: np.ndarray, origin: list[str] | None = None,
                source: np.ndarray | None = None) -> None:
    """One split as zstd-compressed Parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, c = logits.shape
    columns = {f"text_{'ab'[i]}": pa.array(split.column(i), pa.string())
               for i in range(len(split.texts[0]))}
    columns["label"] = pa.array(split.labels, pa.int64())
    if origin is not None:
        columns["origin"] = pa.array(origin, pa.string()).dictionary_encode()
    if source is not None:
        columns["source"] = pa.array(np.asarray(source, dtype=np.int64), pa.int64())
    columns["logits"] = pa.FixedSizeListArray.from_arrays(
        pa.array(logits.astype(np.float32).reshape(-1), pa.float32()), c)
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(columns), tmp, compression="zstd", compression_level=9)


def _write_table(path: Path, table, rows=None, metadata: dict | None = None) -> None:
    """A (V, D) table as int8 per row with an absmax scale, only `rows` of it (None: all).

    4x smaller than float32, and the error (<0.4% of each row's largest entry) is far below what a
    PCA down to the student's width discards."""
    import torch

    w = table.detach().float().cpu()
    vocab = w.shape[0]
    idx = torch.arange(vocab) if rows is None else torch.as_tensor(rows)
    w = w[idx]
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
    tensors = {"weight_int8": q, "scale": scale}
    if rows is not None:
        tensors["rows"] = idx.long()
    save_tensors(path, tensors, metadata={"vocab_size": str(vocab), **(metadata or {})})


def _read_table(path: Path):
    """(table (V, D) float32, present (V,) bool, metadata) of a file `_write_table` wrote."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    t = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    vocab = int(meta.get("vocab_size", t["weight_int8"].shape[0]))
    rows = t.get("rows", torch.arange(t["weight_int8"].shape[0]))
    table = torch.zeros(vocab, t["weight_int8"].shape[1])
    table[rows] = t["weight_int8"].float() * t["scale"][:, None]
    present = torch.zeros(vocab, dtype=torch.bool)
    present[rows] = True
    return table, present, meta


def write_label_set(
    directory: Path, manifest: dict, splits: dict[str, Split], logits: dict[str, np.ndarray],
    tokenizer_json: str | None, embeddings=None, origin: dict[str, list[str]] | None = None,
    embedding_rows=None, source: dict[str, np.ndarray] | None = None, contextual=None,
) -> None:
    """Write every file of a label set into `directory` (a fresh temporary folder).

    `embedding_rows`: store only these rows of the teacher's embedding table (None: all).
    `contextual`: (table (V, D), layer) of pooled hidden states, stored with the same rows."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in splits:
        write_split(directory / f"{name}.parquet", splits[name], logits[name], (origin or {}).get(name),
                    (source or {}).get(name))
    if tokenizer_json is not None:
        atomic_write_text(directory / "tokenizer.json", tokenizer_json)
    if embeddings is not None:
        _write_table(directory / "teacher_embeddings.safetensors", embeddings, embedding_rows)
    if contextual is not None:
        table, layer = contextual
        _write_table(directory / CONTEXTUAL_FILE, table, embedding_rows, {"layer": str(layer)})
    atomic_write_json(directory / "manifest.json", manifest)  # last: its presence marks "complete"
