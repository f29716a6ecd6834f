"""A label set on disk: texts, gold labels and the teacher's logits, plus a manifest.

Layout of a label set folder (written by `distill.teacher.label`, read by `LabelSet.load`):

    manifest.json                   task, teacher (id, config, fingerprint, dev metric), data hash,
                                    settings, row counts, cache key
    train.parquet, dev.parquet      text_a [, text_b], label (int64, -1 = none), logits (float32 x C)
    tokenizer.json                  the teacher's tokenizer (students use it by default)
    teacher_embeddings.safetensors  the teacher's word-embedding table, int8 per row + scale,
                                    to initialise student embeddings without loading the teacher
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.data import Split, Task
from distill.errors import DistillError
from distill.io import atomic_path, atomic_write_json, atomic_write_text, save_tensors

FORMAT_VERSION = 1
SPLITS = ("train", "dev")


@dataclass
class LabelSet:
    """A loaded label set: splits with teacher logits, the manifest, and the teacher's tokenizer."""

    path: Path
    manifest: dict
    task: Task
    splits: dict[str, Split]
    logits: dict[str, np.ndarray]  # split -> (N, C) float32

    @property
    def teacher(self) -> dict:
        return self.manifest["teacher"]

    @property
    def key(self) -> str:
        return self.manifest["key"]

    def tokenizer_json(self) -> str | None:
        p = self.path / "tokenizer.json"
        return p.read_text(encoding="utf-8") if p.is_file() else None

    def teacher_embeddings(self):
        """The teacher's word-embedding table as a float32 tensor (V, D), or None if not stored."""
        p = self.path / "teacher_embeddings.safetensors"
        if not p.is_file():
            return None
        from safetensors.torch import load_file

        t = load_file(str(p))
        return t["weight_int8"].float() * t["scale"][:, None]

    @classmethod
    def load(cls, path: str | Path) -> LabelSet:
        """Read a label set folder; a one-line error if it is not one."""
        path = Path(path)
        mpath = path / "manifest.json"
        if not mpath.is_file():
            raise DistillError(f"{path}: not a label set (no manifest.json); make one with "
                               "`python -m distill.label --teacher T --task TASK --output-dir DIR`")
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DistillError(f"{path}: label set format {manifest.get('format_version')} is not "
                               f"{FORMAT_VERSION}; relabel it with `python -m distill.label`")
        task = Task.from_dict(manifest["task"])
        splits, logits = {}, {}
        for name in SPLITS:
            splits[name], logits[name] = _read_split(path / f"{name}.parquet", task)
        return cls(path, manifest, task, splits, logits)


def _read_split(path: Path, task: Task) -> tuple[Split, np.ndarray]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DistillError(f"{path}: missing from the label set; relabel with `python -m distill.label`")
    table = pq.read_table(path)
    cols = ["text_a", "text_b"][: len(task.text_columns)]
    texts = list(zip(*(table.column(c).to_pylist() for c in cols)))
    labels = table.column("label").to_numpy().astype(np.int64)
    flat = table.column("logits").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    logits = flat.astype(np.float32).reshape(len(labels), task.num_labels)
    return Split(texts=texts, labels=labels, source=str(path)), logits


def write_split(path: Path, split: Split, logits: np.ndarray) -> None:
    """One split as zstd-compressed Parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, c = logits.shape
    columns = {f"text_{'ab'[i]}": pa.array(split.column(i), pa.string())
               for i in range(len(split.texts[0]))}
    columns["label"] = pa.array(split.labels, pa.int64())
    columns["logits"] = pa.FixedSizeListArray.from_arrays(
        pa.array(logits.astype(np.float32).reshape(-1), pa.float32()), c)
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(columns), tmp, compression="zstd", compression_level=9)


def write_label_set(
    directory: Path, manifest: dict, splits: dict[str, Split], logits: dict[str, np.ndarray],
    tokenizer_json: str | None, embeddings=None,
) -> None:
    """Write every file of a label set into `directory` (a fresh temporary folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_split(directory / f"{name}.parquet", splits[name], logits[name])
    if tokenizer_json is not None:
        atomic_write_text(directory / "tokenizer.json", tokenizer_json)
    if embeddings is not None:
        import torch

        # int8 per row with an absmax scale: 4x smaller than float32, and the error (<0.4% of each
        # row's largest entry) is far below what a PCA down to the student's width discards.
        w = embeddings.detach().float().cpu()
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        q = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
        save_tensors(directory / "teacher_embeddings.safetensors", {"weight_int8": q, "scale": scale})
    atomic_write_json(directory / "manifest.json", manifest)  # last: its presence marks "complete"
