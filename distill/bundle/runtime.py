"""The bundle runtime: load an exported bundle (made by `python -m distill.export`) and classify texts.

    bundle = Bundle("exports/sst2-bilstm", threads=1)
    bundle.predict(["a gorgeous, witty, seductive movie"])[0].label

A bundle is a folder: the model (model.onnx or model.pte), tokenizer.json, labels.txt and
metadata.json, which says everything this file needs (input names and shapes, maximum length,
padding id, labels). ONNX bundles run with onnxruntime, tokenizers and numpy alone: this module
never imports torch for them. ExecuTorch bundles need the executorch runtime (and torch, which it
uses for tensors): `pip install 'distill-workbench[executorch]'`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.data.batching import pad
from distill.errors import DistillError

BUNDLE_VERSION = 1
METADATA = "metadata.json"
EXTRAS = {"onnx": "onnx", "executorch": "executorch"}  # format -> extra that installs its runtime


def install_hint(extra: str) -> str:
    return (f"pip install 'distill-workbench[{extra}]' (in a checkout: .venv/bin/pip install -c "
            f"scripts/constraints.txt -e '.[{extra}]')")


def read_metadata(path: str | Path) -> dict:
    """metadata.json of a bundle folder, checked to be one this version can run."""
    path = Path(path)
    meta_path = path / METADATA
    if not meta_path.is_file():
        raise DistillError(f"{path} is not an export bundle (no {METADATA}); make one with "
                           "`python -m distill.export RUN_DIR`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DistillError(f"{meta_path} is not valid JSON ({e}); export the bundle again") from None
    if not isinstance(meta, dict):
        raise DistillError(f"{meta_path} is not a JSON object; export the bundle again")
    if meta.get("bundle_version") != BUNDLE_VERSION:
        raise DistillError(f"{meta_path} has bundle_version {meta.get('bundle_version')!r}; this "
                           f"version reads {BUNDLE_VERSION}; export the bundle again")
    check_metadata(meta, meta_path)
    for entry, value in file_entries(meta):
        bundle_file(path, entry, value)
    return meta


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(meta: dict, dotted: str):
    value = meta
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


# metadata entry -> (what it must be, the check)
_CHECKS = {
    "format": ("a string", lambda v: isinstance(v, str)),
    "model_file": ("a file name", lambda v: isinstance(v, str) and v.strip() != ""),
    "labels": ("a list of at least two label names", lambda v: isinstance(v, list) and len(v) >= 2
               and all(isinstance(x, str) for x in v)),
    "max_length": ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    "min_length": ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    "pair": ("true or false", lambda v: isinstance(v, bool)),
    "length.dynamic": ("true or false", lambda v: isinstance(v, bool)),
    "batch.dynamic": ("true or false", lambda v: isinstance(v, bool)),
    "tokenizer.file": ("a file name", lambda v: isinstance(v, str) and v.strip() != ""),
    "tokenizer.pad_id": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "tokenizer.unk_id": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
}


def check_metadata(meta: dict, meta_path: Path) -> None:
    """Every entry the runtime reads is present and of the right type; one line naming the first that is not."""
    for dotted, (what, ok) in _CHECKS.items():
        try:
            value = _entry(meta, dotted)
        except KeyError:
            raise DistillError(f"{meta_path} lacks '{dotted}'; export the bundle again") from None
        if not ok(value):
            raise DistillError(f"{meta_path}: '{dotted}' is {json.dumps(value)[:60]}, not {what}; export the "
                               "bundle again") from None
    if meta["min_length"] > meta["max_length"]:
        raise DistillError(f"{meta_path}: 'min_length' {meta['min_length']} is above 'max_length' "
                           f"{meta['max_length']}; export the bundle again")
    if not meta["batch"]["dynamic"]:
        size = meta["batch"].get("size")
        if not (_is_int(size) and size >= 1):
            raise DistillError(f"{meta_path}: 'batch.size' is {json.dumps(size)}, not a whole number >= 1 "
                               "(the batch is fixed); export the bundle again")


def file_entries(meta: dict, prefix: str = ""):
    """(dotted entry, value) of every entry of metadata.json that names a file: `file` or `*_file`."""
    for key, value in meta.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from file_entries(value, name + ".")
        elif (key == "file" or key.endswith("_file")) and value is not None:
            yield name, value


def bundle_file(folder: Path, entry: str, value) -> Path:
    """The file a metadata entry names, refused unless it is a relative path that stays inside the bundle
    folder (no absolute path, no '..', no symlink that leads out)."""
    where = f"{Path(folder) / METADATA}: '{entry}'"
    if not isinstance(value, str) or not value.strip():
        raise DistillError(f"{where} is {json.dumps(value)[:60]}, not a file name; export the bundle again")
    rel = Path(value)
    if rel.is_absolute() or value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        raise DistillError(f"{where} is the absolute path {value!r}; a bundle names only files inside its own "
                           "folder: export the bundle again")
    if ".." in rel.parts or ".." in value.replace("\\", "/").split("/"):
        raise DistillError(f"{where} is {value!r}, which climbs out of the bundle with '..'; a bundle names only "
                           "files inside its own folder: export the bundle again")
    root = Path(folder).resolve()
    target = (Path(folder) / rel).resolve()
    if target != root and root not in target.parents:
        raise DistillError(f"{where} is {value!r}, which leads outside the bundle (to {target}, through a symlink); "
                           "a bundle names only files inside its own folder: export the bundle again")
    return Path(folder) / rel


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:160]}" if text else type(e).__name__


# ============================================================================ runners


class OnnxRunner:
    """One onnxruntime session on the CPU."""

    def __init__(self, model_path: Path, threads: int | None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DistillError(f"this ONNX bundle needs onnxruntime: {install_hint('onnx')}") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


@contextlib.contextmanager
def _quiet_native():
    """Keep the ExecuTorch runtime's import and load chatter (Python log lines, and C++ lines such
    as cpuinfo's written straight to file descriptor 2) off the terminal; replay it on failure."""
    import logging
    import tempfile
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch", "torchao", "executorch")]
    levels = [lg.level for lg in loggers]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        ok = False
        try:
            for lg in loggers:
                lg.setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
            ok = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            if not ok:
                buf.seek(0)
                sys.stderr.write(buf.read().decode(errors="replace"))


class _ExecuTorchRunner:
    """The `forward` method of a .pte program, through the ExecuTorch Python runtime."""

    def __init__(self, model_path: Path, threads: int | None):
        with _quiet_native():
            try:
                import torch  # the ExecuTorch Python runtime takes and returns torch tensors
                from executorch.runtime import Runtime
            except ImportError:
                raise DistillError("this ExecuTorch bundle needs the executorch runtime: "
                                   f"{install_hint('executorch')}") from None
            self.torch = torch
            if threads:
                from executorch.extension.pybindings import portable_lib

                portable_lib._unsafe_reset_threadpool(threads)  # XNNPACK's thread pool, process-wide
            program = Runtime.get().load_program(Path(model_path))
            self.method = program.load_method("forward")

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = self.method.execute([self.torch.from_numpy(ids), self.torch.from_numpy(mask)])
        return out[0].numpy()


# ============================================================================ the bundle


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    truncated: bool


class Bundle:
    """A loaded bundle: tokenizer, model runner and the shapes the model takes.

    `encode` turns texts into padded int64 arrays, `logits` runs them (in chunks of the bundle's
    fixed batch size, if it has one), `predict` does both and returns labels."""

    def __init__(self, path: str | Path, threads: int | None = None, model_file: str | None = None):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self.meta = read_metadata(self.path)  # checked: every entry read here is there, of its type
        m = self.meta
        self.labels: list[str] = list(m["labels"])
        self.max_length: int = int(m["max_length"])
        self.min_length: int = int(m["min_length"])
        self.pair: bool = bool(m["pair"])
        self.fixed_length: bool = not m["length"]["dynamic"]
        self.batch_size: int | None = None if m["batch"]["dynamic"] else int(m["batch"]["size"])
        # "row": the model runs one text per call, trimmed to its own length (int8 bundles: ONNX Runtime's
        # dynamic quantization scales activations over the whole input, so in a batch a text's label could
        # depend on its neighbours and their padding); "batch": one call per batch
        self.batch_policy: str = m.get("batch_policy", "batch")
        self.pad_id: int = int(m["tokenizer"]["pad_id"])
        self.unk_id: int = int(m["tokenizer"]["unk_id"])
        tok_path = bundle_file(self.path, "tokenizer.file", m["tokenizer"]["file"])
        model_path = bundle_file(self.path, "model_file", model_file or m["model_file"])
        for p in (tok_path, model_path):
            if not p.is_file():
                raise DistillError(f"{p} is missing from the bundle; export it again")
        runner = {"onnx": OnnxRunner, "executorch": _ExecuTorchRunner}.get(m["format"])
        if runner is None:
            raise DistillError(f"{self.path / METADATA}: unknown format {m['format']!r}; export again")
        try:
            self.tokenizer = Tokenizer.from_file(str(tok_path))
        except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for a damaged file
            raise DistillError(f"{tok_path} is not a readable tokenizer ({_first_line(e)}); the bundle is "
                               "damaged: export it again") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.model_path = model_path
        try:
            self.run = runner(model_path, threads)  # run(ids, mask) -> logits, one call, no chunking
        except DistillError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged or truncated model file, whatever the runtime says
            raise DistillError(f"{model_path} cannot be loaded ({_first_line(e)}); the bundle is damaged or "
                               "incomplete: export it again") from None

    # ------------------------------------------------------------------ inputs

    def split_pair(self, text: str | tuple | list) -> tuple[str, ...]:
        """A text as the tuple of sides the model reads: (text,) or (first, second)."""
        if isinstance(text, (tuple, list)):
            sides = tuple(text)
        elif self.pair:
            sides = tuple(text.split("\t", 1))
        else:
            sides = (text,)
        if len(sides) != (2 if self.pair else 1):
            if self.pair:
                raise DistillError("this bundle classifies sentence pairs: give each as "
                                   "'first<TAB>second'")
            raise DistillError("this bundle classifies single texts, not pairs")
        return sides

    def encode(self, texts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded (input_ids, attention_mask) of shape (N, T) or (N, 2, T), int64, and a (N,)
        bool array: True where a text was longer than max_length and got truncated."""
        rows = [self.split_pair(t) for t in texts]
        n_sides = 2 if self.pair else 1
        seqs: list[list[int]] = []  # row-major: row 0 side a, row 0 side b, row 1 side a, ...
        truncated = np.zeros(len(rows), dtype=bool)
        if len(rows) == 1:  # one request, one text: encode skips encode_batch's parallel machinery
            sides = [[self.tokenizer.encode(rows[0][j], add_special_tokens=False)] for j in range(n_sides)]
        else:
            sides = [self.tokenizer.encode_batch([r[j] for r in rows], add_special_tokens=False)
                     for j in range(n_sides)]
        for i, encs in enumerate(zip(*sides)):
            seqs += [e.ids or [self.unk_id] for e in encs]  # no known token: [unknown]
            truncated[i] = any(len(e.overflowing) > 0 for e in encs)
        longest = max((len(s) for s in seqs), default=1)
        T = self.max_length if self.fixed_length else max(longest, self.min_length)
        if all(len(s) == T for s in seqs):  # nothing to pad (one text, at its own length): one conversion
            ids = np.array(seqs, dtype=np.int64)
            mask = np.ones_like(ids)
        else:
            ids, mask = pad(seqs, self.pad_id, T)
        if self.pair:
            ids, mask = ids.reshape(len(rows), 2, T), mask.reshape(len(rows), 2, T)
        return ids, mask, truncated

    # ------------------------------------------------------------------ running

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits (N, C) of padded inputs; a fixed-batch model gets chunks padded with empty rows; a
        "row" batch policy runs each row alone at its own length, so it gets what it gets alone."""
        if self.batch_policy == "row" and self.batch_size is None:
            T = ids.shape[-1]
            # right-padded: a row runs at T when its longest side reaches the last position
            if len(ids) == 1 and (self.fixed_length or mask[0, ..., -1].any()):  # one request: no slicing, no copy
                return self.run(ids, mask)
            if self.fixed_length:
                lengths = [T] * len(ids)
            else:  # each row's longest side; a row with no real token still runs min_length steps
                lengths = mask.reshape(len(ids), -1, T).sum(-1).max(-1).clip(self.min_length).tolist()
            out = [self.run(ids[i:i + 1, ..., :n], mask[i:i + 1, ..., :n]) for i, n in enumerate(lengths)]
            return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)
        if self.batch_size is None or len(ids) == self.batch_size:
            return self.run(ids, mask)
        out = []
        B = self.batch_size
        for start in range(0, len(ids), B):
            chunk_ids, chunk_mask = ids[start:start + B], mask[start:start + B]
            n = len(chunk_ids)
            if n < B:  # rows with no real token are allowed: every student returns finite logits
                fill = np.full((B - n, *chunk_ids.shape[1:]), self.pad_id, dtype=np.int64)
                chunk_ids = np.concatenate([chunk_ids, fill])
                chunk_mask = np.concatenate([chunk_mask, np.zeros_like(fill)])
            out.append(self.run(chunk_ids, chunk_mask)[:n])
        return np.concatenate(out)

    def predict(self, texts: list, batch_size: int = 32) -> list[Prediction]:
        """Label and class probabilities of each text."""
        preds = []
        for start in range(0, len(texts), batch_size):
            ids, mask, truncated = self.encode(texts[start:start + batch_size])
            # softmax in Python floats, row by row: for a few labels, cheaper than numpy's per-call overhead
            for row, t in zip(self.logits(ids, mask).tolist(), truncated.tolist()):
                top = max(row)
                e = [math.exp(v - top) for v in row]
                total = sum(e)
                preds.append(Prediction(self.labels[row.index(top)],
                                        {name: round(v / total, 6) for name, v in zip(self.labels, e)}, t))
        return preds
