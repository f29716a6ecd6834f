"""Classify texts with an exported bundle (made by `python -m distill.export`).

    python -m distill.predict exports/sst2-bilstm "a gorgeous, witty, seductive movie"
    cat reviews.txt | python -m distill.predict exports/sst2-bilstm --json
    python -m distill.predict exports/rte-cnn "A man sleeps.<TAB>Nobody is asleep."    # sentence pairs

A bundle is a folder: the model (model.onnx or model.pte), tokenizer.json, labels.txt and
metadata.json, which says everything this file needs (input names and shapes, maximum length,
padding id, labels). ONNX bundles run with onnxruntime, tokenizers and numpy alone: this module
never imports torch for them. ExecuTorch bundles need the executorch runtime (and torch, which it
uses for tensors): `pip install 'distill-workbench[executorch]'`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.cli import HelpFormatter, Parser
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
    if meta.get("bundle_version") != BUNDLE_VERSION:
        raise DistillError(f"{meta_path} has bundle_version {meta.get('bundle_version')!r}; this "
                           f"version reads {BUNDLE_VERSION}; export the bundle again")
    return meta


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# ============================================================================ runners


class _OnnxRunner:
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
        self.meta = read_metadata(self.path)
        m = self.meta
        self.labels: list[str] = list(m["labels"])
        self.max_length: int = int(m["max_length"])
        self.min_length: int = int(m["min_length"])
        self.pair: bool = bool(m["pair"])
        self.fixed_length: bool = not m["length"]["dynamic"]
        self.batch_size: int | None = None if m["batch"]["dynamic"] else int(m["batch"]["size"])
        self.pad_id: int = int(m["tokenizer"]["pad_id"])
        self.unk_id: int = int(m["tokenizer"]["unk_id"])
        tok_path = self.path / m["tokenizer"]["file"]
        model_path = self.path / (model_file or m["model_file"])
        for p in (tok_path, model_path):
            if not p.is_file():
                raise DistillError(f"{p} is missing from the bundle; export it again")
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        runner = {"onnx": _OnnxRunner, "executorch": _ExecuTorchRunner}.get(m["format"])
        if runner is None:
            raise DistillError(f"{self.path / METADATA}: unknown format {m['format']!r}; export again")
        self.model_path = model_path
        self.run = runner(model_path, threads)  # run(ids, mask) -> logits, one call, no chunking

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
        ids_rows, truncated = [], np.zeros(len(rows), dtype=bool)
        for j in range(n_sides):
            encs = self.tokenizer.encode_batch([r[j] for r in rows], add_special_tokens=False)
            ids_rows.append([e.ids or [self.unk_id] for e in encs])  # no known token: [unknown]
            truncated |= np.asarray([len(e.overflowing) > 0 for e in encs], dtype=bool)
        longest = max((len(s) for side in ids_rows for s in side), default=1)
        T = self.max_length if self.fixed_length else max(longest, self.min_length)
        ids = np.full((len(rows), n_sides, T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), n_sides, T), dtype=np.int64)
        for j, side in enumerate(ids_rows):
            for i, s in enumerate(side):
                ids[i, j, : len(s)] = s
                mask[i, j, : len(s)] = 1
        if not self.pair:
            ids, mask = ids[:, 0], mask[:, 0]
        return ids, mask, truncated

    # ------------------------------------------------------------------ running

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits (N, C) of padded inputs; a fixed-batch model gets chunks padded with empty rows."""
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
            probs = softmax(self.logits(ids, mask).astype(np.float64))
            for p, t in zip(probs, truncated):
                preds.append(Prediction(self.labels[int(p.argmax())],
                                        {name: round(float(v), 6) for name, v in zip(self.labels, p)}, bool(t)))
        return preds


# ============================================================================ the command line


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m distill.predict",
                description="\n\n".join((__doc__ or "").split("\n\n")[:2]),
                epilog="Texts come as arguments, or one per line on stdin; a sentence-pair bundle\n"
                "takes 'first<TAB>second'. Each text gets its label and the probability of every\n"
                "label. Texts longer than the bundle's maximum length are truncated, as the\n"
                "tokenizer does in training; the output says so once.",
                formatter_class=HelpFormatter)
    p.add_argument("bundle", help="bundle folder (holds metadata.json)")
    p.add_argument("texts", nargs="*", help="texts to classify; none: read stdin, one per line")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per text and line: text, label, probabilities, truncated")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the runtime's)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per model call")
    return p


def _format(text: str, pred: Prediction, labels: list[str]) -> str:
    probs = "  ".join(f"{name} {pred.probabilities[name]:.3f}" for name in labels)
    return f"{pred.label}\t{probs}\t{text}"


def _chunks(texts, size: int):
    buf = []
    for t in texts:
        t = t.rstrip("\r\n")
        if not t.strip():
            continue  # blank lines on stdin carry no text
        buf.append(t)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise DistillError(f"--batch-size {args.batch_size} must be >= 1")
    if args.threads is not None and args.threads < 1:
        raise DistillError(f"--threads {args.threads} must be >= 1")
    if not args.texts and sys.stdin.isatty():
        raise DistillError("no texts: give them as arguments, or one per line on stdin")
    bundle = Bundle(args.bundle, threads=args.threads)
    source = args.texts if args.texts else sys.stdin
    n = n_truncated = 0
    for chunk in _chunks(source, args.batch_size):
        for text, pred in zip(chunk, bundle.predict(chunk, args.batch_size)):
            n += 1
            n_truncated += pred.truncated
            if args.json:
                print(json.dumps({"text": text, "label": pred.label,
                                  "probabilities": pred.probabilities, "truncated": pred.truncated},
                                 ensure_ascii=False))
            else:
                print(_format(text, pred, bundle.labels))
        sys.stdout.flush()
    if n_truncated:
        print(f"note: {n_truncated} of {n} text(s) had more than {bundle.max_length} tokens and were "
              f"truncated to the first {bundle.max_length}, as the tokenizer does", file=sys.stderr)
    return n


def main(argv: list[str] | None = None) -> None:
    try:
        run(argv)
    except DistillError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:  # `... | head`
        sys.stderr.close()
        raise SystemExit(0) from None


if __name__ == "__main__":
    main()
