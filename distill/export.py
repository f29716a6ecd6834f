"""Export a trained student as a bundle for a phone or a CPU service: ONNX or ExecuTorch, fp32 or
int8, checked against the PyTorch student on the dev set every time.

    python -m distill.export runs/sst2-bilstm --format onnx --quantize int8 --output-dir exports/bilstm
    python -m distill.export runs/sst2-cnn --format executorch --max-length 64
    python -m distill.predict exports/bilstm "a gorgeous, witty, seductive movie"

Flow: run folder (distill.train or search.run output) -> student -> model file in a temporary
folder beside the output -> [int8: ONNX Runtime dynamic quantization; kept only if it agrees with
the student and is not slower] -> parity check through the bundled tokenizer (fails loudly) ->
metadata.json and README.md -> the folder is renamed into place, so a failed or killed export
never leaves half a bundle.

What each format can take (and metadata.json records it):
- ONNX (torch.onnx.export, dynamo): any batch and any length up to the maximum, for every student.
  The BiLSTM's nn.LSTM becomes ONNX's LSTM op, so its length stays dynamic too.
- ExecuTorch (.pte, XNNPACK backend): a fixed batch (`--batch-size`, default 1); the length is
  dynamic up to the maximum for the CNN and the transformer, and fixed at the maximum for the
  BiLSTM, whose LSTM ExecuTorch can only unroll over a known length (inputs are padded to it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distill.cli import _help, run_command
from distill.cli import build_parser as cli_parser
from distill.errors import DistillError
from distill.io import atomic_write_json, atomic_write_text, replace_dir
from distill.predict import BUNDLE_VERSION, EXTRAS, METADATA, Bundle, install_hint

FORMATS = ("onnx", "executorch")
PRECISIONS = ("none", "int8")
FP32_MAX_DIFF = 1e-4  # fp32 bundles: largest allowed |logit difference| from the PyTorch student
INT8_MIN_AGREEMENT = 0.99  # int8 bundles: smallest allowed share of equal labels
# int8 counts as slower when its median is more than this much above fp32's at batch 1 or 32:
# closer than that is a tie within timing noise, and a tie keeps the int8 model (3-4x smaller).
SLOWER_TOLERANCE = 0.03
# ONNX Runtime dynamic int8, per student: the op types whose weights become int8. Gather is the
# embedding table (most of the bytes); convolutions stay float because ConvInteger made TextCNN
# 3 to 6 times slower on x86 CPUs. Gemm (the heads) is rewritten to MatMul by the quantizer.
INT8_OPS = {"bilstm": ("Gather", "LSTM", "MatMul"), "cnn": ("Gather", "MatMul"),
            "transformer": ("Gather", "MatMul")}
DEFAULT_INT8_OPS = ("Gather", "MatMul")
TIMING_BATCHES = (1, 32)


# ============================================================================ arguments


@dataclass
class ExportArgs:
    """Everything `python -m distill.export` takes (run_dir is positional, the rest are flags)."""

    run_dir: str = field(default="", metadata=_help(
        "a trained student: the output folder of `python -m distill.train` or `search.run`"))
    format: str = field(default="onnx", metadata=_help(
        "onnx (ONNX Runtime: servers, Android, iOS) or executorch (.pte with the XNNPACK backend)"))
    quantize: str = field(default="none", metadata=_help(
        "int8: ONNX Runtime dynamic quantization (ONNX only); kept only if the labels agree on "
        f">= {INT8_MIN_AGREEMENT:.0%} of dev rows and it is not slower than fp32, otherwise fp32 "
        "is shipped and the output says why"))
    output_dir: str | None = field(default=None, metadata=_help(
        "bundle folder; default exports/<run name>-<format>[-int8]"))
    max_length: int | None = field(default=None, metadata=_help(
        "tokens per text the bundle reads (longer texts are truncated); default: the student's "
        "training length. An ExecuTorch BiLSTM pads every input to it, so smaller is faster"))
    batch_size: int | None = field(default=None, metadata=_help(
        "ExecuTorch only: the fixed batch the .pte takes (default 1; distill.predict pads a "
        "short last chunk). ONNX bundles take any batch"))
    labels: str | None = field(default=None, metadata=_help(
        "label set whose dev split the parity check uses; default: the one the student was "
        "trained on (config.json)"))
    parity_rows: int = field(default=1000, metadata=_help(
        "dev rows for the parity check (all of them if there are fewer)"))
    threads: int = field(default=1, metadata=_help(
        "CPU threads for the parity check and the fp32/int8 timing"))
    overwrite: bool = field(default=False, metadata=_help("replace an existing --output-dir"))

    def __post_init__(self) -> None:
        checks = [
            (self.format in FORMATS, f"--format {self.format}: unknown format; choose one of: "
             f"{', '.join(FORMATS)}"),
            (self.quantize in PRECISIONS, f"--quantize {self.quantize}: choose none or int8"),
            (self.max_length is None or self.max_length >= 1, f"--max-length {self.max_length} must be >= 1"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size {self.batch_size} must be >= 1"),
            (self.parity_rows >= 1, f"--parity-rows {self.parity_rows} must be >= 1"),
            (self.threads >= 1, f"--threads {self.threads} must be >= 1"),
            (not (self.batch_size is not None and self.format == "onnx"),
             "--batch-size is for --format executorch; ONNX bundles take any batch size"),
            (not (self.quantize == "int8" and self.format == "executorch"),
             "--quantize int8 is available with --format onnx (ONNX Runtime dynamic quantization); "
             "ExecuTorch bundles are fp32 here: drop --quantize or use --format onnx"),
        ]
        for ok, message in checks:
            if not ok:
                raise DistillError(message)


def build_parser() -> argparse.ArgumentParser:
    paragraphs = (__doc__ or "").split("\n\n")
    epilog = ("The bundle holds the model, tokenizer.json (and vocab.txt), labels.txt,\n"
              "metadata.json (inputs, outputs, shapes, precision, parity, sizes) and a README\n"
              "with the Python, Kotlin and Swift calls. Run it: python -m distill.predict BUNDLE."
              "\n\n" + paragraphs[-1].strip())
    return cli_parser(ExportArgs, "python -m distill.export", "\n\n".join(paragraphs[:2]),
                      positional=("run_dir",), epilog=epilog)


def parse_args(argv: list[str] | None = None) -> ExportArgs:
    return ExportArgs(**vars(build_parser().parse_args(argv)))


# ============================================================================ exporting


def _require(fmt: str) -> None:
    """Fail with the extra to install when a format's packages are missing."""
    modules = {"onnx": ("onnx", "onnxscript", "onnxruntime"),
               "executorch": ("executorch.exir", "executorch.runtime")}[fmt]
    import importlib

    for name in modules:
        try:
            with _quiet():
                importlib.import_module(name)
        except ImportError:
            raise DistillError(f"--format {fmt} needs the '{EXTRAS[fmt]}' extra ({name} is not "
                               f"installed): {install_hint(EXTRAS[fmt])}") from None


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, warnings and log lines (errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch", "torchao", "torch.onnx", "torch.export", "onnxscript",
                                              "executorch", "root")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _length_limit(model, max_length: int) -> int:
    """The longest input the student itself can take (the transformer has a position table)."""
    limit = getattr(model.config, "max_len", None)
    return max_length if limit is None else min(max_length, limit)


def _example_inputs(pair: bool, batch: int, length: int, vocab_size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    shape = (batch, 2, length) if pair else (batch, length)
    ids = torch.randint(min(2, vocab_size - 1), vocab_size, shape, generator=g)
    return ids, torch.ones_like(ids)


@contextlib.contextmanager
def _lstm_as_loop():
    """Trace nn.LSTM as a while_loop, so that its length stays symbolic through torch.export and
    the ONNX exporter (which then emits one ONNX LSTM op). Without it the LSTM is unrolled over the
    example's length. A private torch API: when it is gone the BiLSTM exports at a fixed length."""
    try:
        from torch.export._patches import register_lstm_while_loop_decomposition
    except ImportError:
        yield False
        return
    with register_lstm_while_loop_decomposition():
        yield True


def export_onnx(model, path: Path, *, pair: bool, max_length: int) -> dict:
    """model.onnx with dynamic batch and length (up to max_length); returns the input shapes."""
    import torch

    Dim = torch.export.Dim
    limit = _length_limit(model, max_length)
    example_len = min(8, limit) if limit >= 2 else 1  # not 1 if it can be: torch.export specialises 1s
    ids, mask = _example_inputs(pair, 2, example_len, model.config.vocab_size)
    axis = 2 if pair else 1
    dims = {0: Dim("batch", min=1)}
    if limit >= 2:
        dims[axis] = Dim("length", min=1, max=limit)
    dynamic = {"input_ids": dims, "attention_mask": dims}
    with _quiet(), _lstm_as_loop(), torch.inference_mode(False):
        try:
            ep = torch.export.export(model, (ids, mask), dynamic_shapes=dynamic, strict=False)
        except Exception:  # the length specialised (an LSTM without the loop patch): fix it
            dims.pop(axis, None)
            ids, mask = _example_inputs(pair, 2, limit, model.config.vocab_size)
            ep = torch.export.export(model, (ids, mask), dynamic_shapes=dynamic, strict=False)
        program = torch.onnx.export(ep, (ids, mask), input_names=["input_ids", "attention_mask"],
                                    output_names=["logits"], dynamo=True, verbose=False, optimize=True)
        _fold_large_constants(program.model)
        program.save(str(path), external_data=False)
    return _onnx_shapes(path)


def _fold_large_constants(model) -> None:
    """Fold what depends on weights alone, however large. The exporter's optimizer stops at 262,144
    elements, which leaves the BiLSTM's gate reordering (Slice/Concat of each 1200x300 weight) in
    the graph: run on every call, and invisible to the int8 quantizer, which only quantizes LSTM
    weights that are initializers (with them: 43 -> 11 MB and 2.8x faster on one core)."""
    try:
        import onnxscript.optimizer

        onnxscript.optimizer.optimize(model, input_size_limit=1 << 26, output_size_limit=1 << 26)
    except TypeError:  # another onnxscript API: keep the exporter's own optimization
        pass


def _onnx_shapes(path: Path) -> dict:
    """What the saved graph declares: for each input and output, its dims (int or a name)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in v.type.tensor_type.shape.dim]
    return {"inputs": {v.name: dims(v) for v in graph.input},
            "outputs": {v.name: dims(v) for v in graph.output}}


def export_executorch(model, path: Path, *, pair: bool, max_length: int, batch_size: int) -> dict:
    """model.pte for the XNNPACK backend, fixed batch; returns whether the length is dynamic."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    limit = _length_limit(model, max_length)
    # ExecuTorch unrolls nn.LSTM over the example's length: an LSTM student takes exactly max_length
    fixed_length = any(isinstance(m, torch.nn.LSTM) for m in model.modules()) or limit < 2
    example_len = limit if fixed_length else min(8, limit)
    ids, mask = _example_inputs(pair, batch_size, example_len, model.config.vocab_size)
    dims = {} if fixed_length else {2 if pair else 1: torch.export.Dim("length", min=1, max=limit)}
    with _quiet(), torch.inference_mode(False):
        ep = torch.export.export(model, (ids, mask), dynamic_shapes={"input_ids": dims,
                                                                     "attention_mask": dims})
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(program.buffer)
    return {"fixed_length": fixed_length, "length_limit": limit}


def quantize_onnx(src: Path, dst: Path, student: str) -> list[str]:
    """Dynamic int8 (weights int8, activations quantized on the fly) of the chosen op types."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    # The dynamo exporter annotates intermediate shapes (value_info) that ORT's quantizer's shape
    # inference then rejects; the quantizer infers what it needs without them.
    del model.graph.value_info[:]
    ops = list(INT8_OPS.get(student, DEFAULT_INT8_OPS))
    with _quiet():
        quantize_dynamic(model, str(dst), op_types_to_quantize=ops, weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
    return ops


# ============================================================================ checking


@dataclass
class DevRows:
    """The dev rows the parity check runs: texts as tuples of sides, gold labels (-1: none)."""

    texts: list[tuple[str, ...]]
    labels: np.ndarray
    metric: str
    source: str


def dev_rows(config: dict, labels_path: str | None, n: int) -> DevRows:
    """Up to n dev rows of the label set the student was trained on (or --labels), seeded."""
    from distill.labelset import LabelSet

    path = labels_path or config.get("label_set", {}).get("path")
    flag = "--labels" if labels_path else "config.json's label_set.path"
    if not path or not Path(path).is_dir():
        raise DistillError(f"the parity check needs the dev set, but the label set ({flag}: "
                           f"{path}) is not there; pass --labels with the label set the student "
                           "was trained on")
    ls = LabelSet.load(path)
    dev = ls.splits["dev"]
    want = config.get("task", {}).get("name")
    if want and ls.task.name != want:
        raise DistillError(f"--labels {path} is for task '{ls.task.name}', the student for "
                           f"'{want}'; pass the label set it was trained on")
    idx = np.arange(len(dev.texts))
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(0).choice(len(idx), n, replace=False))
    return DevRows([tuple(dev.texts[i]) for i in idx], np.asarray(dev.labels)[idx],
                   ls.task.metric, Path(ls.path).name)  # a name: the bundle holds no local paths


def bundle_and_student_logits(bundle: Bundle, model, texts: list, batch: int = 64):
    """Logits of the exported model and of the PyTorch student on the same bundled-tokenizer
    inputs, plus each row's real length and whether it was truncated."""
    import torch

    order = np.argsort([sum(len(s) for s in t) for t in texts], kind="stable")  # less padding
    n_cls = len(bundle.labels)
    out_b = np.zeros((len(texts), n_cls), np.float32)
    out_t = np.zeros((len(texts), n_cls), np.float32)
    lengths = np.zeros(len(texts), np.int64)
    truncated = np.zeros(len(texts), bool)
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            idx = order[start:start + batch]
            ids, mask, trunc = bundle.encode([texts[i] for i in idx])
            out_b[idx] = bundle.logits(ids, mask)
            out_t[idx] = model(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
            lengths[idx] = mask.reshape(len(idx), -1, mask.shape[-1]).sum(-1).max(-1)
            truncated[idx] = trunc
    return out_b, out_t, lengths, truncated


def parity(bundle: Bundle, model, rows: DevRows) -> dict:
    """Max |logit difference|, label agreement and the dev metric of bundle and student."""
    from distill.evaluate import compute_metric

    b, t, lengths, truncated = bundle_and_student_logits(bundle, model, rows.texts)
    has = rows.labels >= 0
    pb, pt = b.argmax(1), t.argmax(1)
    return {
        "rows": len(rows.texts),
        "max_abs_logit_diff": float(np.abs(b - t).max()),
        "label_agreement": float((pb == pt).mean()),
        "metric": rows.metric,
        "bundle_metric": compute_metric(rows.metric, pb[has], rows.labels[has]) if has.any() else None,
        "pytorch_metric": compute_metric(rows.metric, pt[has], rows.labels[has]) if has.any() else None,
        "truncated_rows": int(truncated.sum()),
        "median_length": max(1, int(np.median(lengths))),
        "label_set": rows.source,
    }


def time_bundle(bundle: Bundle, length: int, batches=TIMING_BATCHES, budget_s: float = 0.15) -> dict:
    """{"b1": median ms, ...} of one model call on random ids of the given length; a fixed-batch
    bundle is timed at its own batch only (a fixed-length one at its own length). Each median
    takes about budget_s (at least 10 calls), so sub-millisecond models get hundreds of calls."""
    import time as _time

    from distill.evaluate import median_ms

    if bundle.batch_size is not None:
        batches = (bundle.batch_size,)
    T = bundle.max_length if bundle.fixed_length else max(length, bundle.min_length)
    rng = np.random.default_rng(0)
    vocab = bundle.tokenizer.get_vocab_size(with_added_tokens=True)
    out = {}
    for b in batches:
        shape = (b, 2, T) if bundle.pair else (b, T)
        ids = rng.integers(min(2, vocab - 1), vocab, size=shape, dtype=np.int64)
        mask = np.zeros(shape, np.int64)
        mask[..., :length] = 1  # `length` real tokens, the rest (fixed length) padding
        ids[mask == 0] = bundle.pad_id
        def call(ids=ids, mask=mask):
            bundle.run(ids, mask)
        t0 = _time.perf_counter()
        for _ in range(3):  # warm-up, and an estimate of one call
            call()
        one = (_time.perf_counter() - t0) / 3
        n = int(min(2000, max(10, budget_s / max(one, 1e-6))))
        out[f"b{b}"] = round(median_ms(call, 2, n), 4)
    return out


# ============================================================================ the bundle files


def _tokenizer_spec(tok_json: dict) -> dict:
    """What a reimplementation on a phone needs besides vocab.txt: the tokenizer's model and rules."""
    model = tok_json.get("model", {})
    spec = {"type": model.get("type"), "unk_token": model.get("unk_token"),
            "continuing_subword_prefix": model.get("continuing_subword_prefix"),
            "max_input_chars_per_word": model.get("max_input_chars_per_word"),
            "normalizer": tok_json.get("normalizer"), "pre_tokenizer": tok_json.get("pre_tokenizer")}
    return {k: v for k, v in spec.items() if v is not None}


def write_tokenizer(tok, directory: Path, max_length: int) -> dict:
    """tokenizer.json (truncating at max_length, no special tokens, no padding) and vocab.txt."""
    from tokenizers import Tokenizer

    t = Tokenizer.from_str(tok.tokenizer.to_str())
    t.no_padding()
    t.enable_truncation(max_length)
    (directory / "tokenizer.json").write_text(t.to_str(pretty=False), encoding="utf-8")
    vocab = t.get_vocab(with_added_tokens=True)
    by_id = [""] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        by_id[i] = token
    (directory / "vocab.txt").write_text("\n".join(by_id) + "\n", encoding="utf-8")
    spec = _tokenizer_spec(json.loads(t.to_str()))
    return {"file": "tokenizer.json", "vocab_file": "vocab.txt", "kind": tok.kind,
            "vocab_size": tok.vocab_size, "pad_id": tok.pad_id, "unk_id": tok.unk_id,
            "add_special_tokens": False, "truncation": {"max_length": max_length, "side": "right"},
            "empty_text": "a text with no token becomes [unk_id]", **spec}


def _versions(fmt: str) -> dict:
    import importlib.metadata as md

    names = ["torch", "tokenizers"] + (["onnx", "onnxscript", "onnxruntime"] if fmt == "onnx"
                                       else ["executorch"])
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            pass
    return out


def render_readme(meta: dict) -> str:
    """The bundle's README: what is inside and the calls that run it in Python, Kotlin and Swift."""
    fmt, T, pair = meta["format"], meta["max_length"], meta["pair"]
    labels = ", ".join(f"{i}: {n}" for i, n in enumerate(meta["labels"]))
    shape = "(batch, 2, length)" if pair else "(batch, length)"
    batch = ("any batch" if meta["batch"]["dynamic"] else f"a batch of exactly {meta['batch']['size']}")
    if meta["length"]["dynamic"]:
        length = f"any length from {meta['min_length']} to {T} tokens"
    else:
        length = f"exactly {T} tokens, every text padded to {T} ({meta['length']['why_fixed']})"
    par = meta["parity"]
    metric = par["metric"]
    q = meta.get("quantization")
    qline = ""
    if q and not q["kept"]:
        qline = f"\nint8 was requested and not kept: {q['reason']}.\n"
    pair_note = (" Pairs: tokenize each side on its own; input_ids[b, 0] is the first text, "
                 "input_ids[b, 1] the second." if pair else "")
    if fmt == "onnx":
        py_run = ('import onnxruntime as ort\n'
                  'session = ort.InferenceSession("model.onnx")\n'
                  'logits = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]')
        kotlin = f'''// build.gradle: implementation("com.microsoft.onnxruntime:onnxruntime-android:<version>")
val env = OrtEnvironment.getEnvironment()
val session = env.createSession(modelBytes)               // model.onnx from assets
val ids: LongArray = tokenize(text)                       // <= {T} ids, see "Tokenizer" below
val shape = longArrayOf(1, ids.size.toLong())
val inputs = mapOf(
    "input_ids" to OnnxTensor.createTensor(env, LongBuffer.wrap(ids), shape),
    "attention_mask" to OnnxTensor.createTensor(env, LongBuffer.wrap(LongArray(ids.size) {{ 1L }}), shape))
session.run(inputs).use {{ out ->
    val logits = (out[0].value as Array<FloatArray>)[0]   // one score per label
}}'''
        swift = f'''// Swift Package: https://github.com/microsoft/onnxruntime-swift-package-manager
import onnxruntime_objc
let env = try ORTEnv(loggingLevel: .warning)
let session = try ORTSession(env: env, modelPath: modelPath, sessionOptions: nil)
var ids: [Int64] = tokenize(text)                         // <= {T} ids, see "Tokenizer" below
var mask = [Int64](repeating: 1, count: ids.count)
let shape: [NSNumber] = [1, NSNumber(value: ids.count)]
let idsValue = try ORTValue(tensorData: NSMutableData(bytes: &ids, length: ids.count * 8),
                            elementType: .int64, shape: shape)
let maskValue = try ORTValue(tensorData: NSMutableData(bytes: &mask, length: mask.count * 8),
                             elementType: .int64, shape: shape)
let out = try session.run(withInputs: ["input_ids": idsValue, "attention_mask": maskValue],
                          outputNames: ["logits"], runOptions: nil)
let data = try out["logits"]!.tensorData() as Data
let logits = data.withUnsafeBytes {{ Array($0.bindMemory(to: Float.self)) }}'''
    else:
        n_ids = f"<= {T}" if meta["length"]["dynamic"] else f"exactly {T} (padded)"
        py_run = ('import torch\nfrom executorch.runtime import Runtime\n'
                  'forward = Runtime.get().load_program("model.pte").load_method("forward")\n'
                  'logits = forward.execute([torch.from_numpy(ids), torch.from_numpy(mask)])[0].numpy()')
        kotlin = f'''// build.gradle: implementation("org.pytorch:executorch-android:<version>")
val module = Module.load(modelPath)                       // model.pte copied to the app's files
val ids: LongArray = tokenize(text)                       // {n_ids} ids, see "Tokenizer" below
val mask = LongArray(ids.size) {{ if (ids[it] == {meta["tokenizer"]["pad_id"]}L) 0L else 1L }}
val shape = longArrayOf(1, ids.size.toLong())
val out = module.forward(EValue.from(Tensor.fromBlob(ids, shape)), EValue.from(Tensor.fromBlob(mask, shape)))
val logits = out[0].toTensor().dataAsFloatArray           // one score per label'''
        swift = f'''// Swift Package: https://github.com/pytorch/executorch (branch swiftpm-<version>),
// products executorch and backend_xnnpack
import ExecuTorch
let module = Module(filePath: modelPath)
let ids: [Int64] = tokenize(text)                         // {n_ids} ids, see "Tokenizer" below
let mask: [Int64] = ids.map {{ $0 == {meta["tokenizer"]["pad_id"]} ? 0 : 1 }}
let shape = [1, ids.count]
let out: Tensor<Float> = try module.forward([Tensor<Int64>(ids, shape: shape),
                                             Tensor<Int64>(mask, shape: shape)])[0].tensor()!
let logits = out.scalars()                                // one score per label'''
    size_mb = meta["model_bytes"] / 1e6
    py_len = "len(enc)" if meta["length"]["dynamic"] else str(T)  # a fixed-length model: pad to T
    return f"""# {meta['student']} student for {meta['task']['name']}: {fmt} bundle ({meta['precision']})

Made by `python -m distill.export` from `{meta['source']['run_name']}`. Everything a caller needs
is in `metadata.json`; this page shows the calls.

| file | what |
|---|---|
| `{meta['model_file']}` | the model, {size_mb:.1f} MB, {meta['precision']} |
| `tokenizer.json` | the tokenizer (HF `tokenizers` format), set to truncate at {T} tokens, no special tokens |
| `vocab.txt` | the vocabulary, one token per line, line number = id |
| `labels.txt` | label names, line number = class index ({labels}) |
| `metadata.json` | inputs, outputs, shapes, precision, tokenizer rules, parity check, sizes |

**Inputs**: `input_ids` and `attention_mask`, int64, shape {shape}; {batch}; {length}. Right-pad
with pad id {meta['tokenizer']['pad_id']} and mask 0; the prediction does not depend on padding.{pair_note}
**Output**: `logits`, float32, (batch, {len(meta['labels'])}); softmax gives the probabilities, argmax
the label.

**Checked** on {par['rows']} dev rows against the PyTorch student: max |logit difference|
{par['max_abs_logit_diff']:.2e}, labels agree on {100 * par['label_agreement']:.2f}%, dev {metric}
{_pct(par['bundle_metric'])} (PyTorch {_pct(par['pytorch_metric'])}).
{qline}
## Python

```bash
python -m distill.predict . "a gorgeous, witty, seductive movie"      # from the workbench
```

```python
import numpy as np
from tokenizers import Tokenizer
tok = Tokenizer.from_file("tokenizer.json")
enc = tok.encode("a gorgeous, witty, seductive movie", add_special_tokens=False).ids
ids = np.full((1, {py_len}), {meta['tokenizer']['pad_id']}, dtype=np.int64)
ids[0, :len(enc)] = enc
mask = (np.arange(ids.shape[1]) < len(enc)).astype(np.int64)[None]
{py_run}
label = open("labels.txt").read().split("\\n")[int(logits[0].argmax())]
```

## Android (Kotlin)

```kotlin
{kotlin}
```

## iOS (Swift)

```swift
{swift}
```

## Tokenizer

`tokenize(text)` must give the ids the student was trained on: load `tokenizer.json` with a port
of HF tokenizers (for example swift-transformers on iOS, or DJL's HuggingFaceTokenizer on
Android), or implement the rules in `metadata.json` → `tokenizer` (type
{meta['tokenizer'].get('type')}, normalizer, pre-tokenizer) with `vocab.txt`. No [CLS]/[SEP]; keep
the first {T} ids; a text with no token becomes `[{meta['tokenizer']['unk_id']}]`.
"""


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _size(path: Path) -> int:
    return path.stat().st_size


# ============================================================================ the pipeline


def default_output_dir(args: ExportArgs) -> Path:
    name = Path(args.run_dir.rstrip("/")).name or "student"
    return Path("exports") / f"{name}-{args.format}{'-int8' if args.quantize == 'int8' else ''}"


def _check_output_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DistillError(f"--output-dir {out} is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        what = "a bundle" if (out / METADATA).is_file() else "files"
        raise DistillError(f"--output-dir {out} already holds {what}; pass --overwrite to replace "
                           "it, or choose another --output-dir")


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary folders of earlier exports to `out` whose process is gone (killed mid-export)."""
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # someone else's live process
            pass


def _step(message: str) -> float:
    print(message, flush=True)
    return time.perf_counter()


def run(args: ExportArgs) -> dict:
    """Export, check and write the bundle; returns its metadata."""
    from distill.train import load_run

    out = Path(args.output_dir) if args.output_dir else default_output_dir(args)
    _check_output_dir(out, args.overwrite)
    _require(args.format)
    import torch

    torch.set_num_threads(args.threads)
    trials = sorted(Path(args.run_dir).glob("best/trial-*/config.json"))
    if trials and not (Path(args.run_dir) / "config.json").is_file():
        raise DistillError(f"{args.run_dir} is a search; export one of its retrained students: "
                           + ", ".join(str(t.parent) for t in trials[:3]))
    model, tok, config = load_run(args.run_dir)
    student, scfg = config["student"], config["student_config"]
    pair = bool(scfg.get("pair", False))
    trained_length = int(config["tokenizer"]["max_length"])
    max_length = args.max_length or trained_length
    limit = _length_limit(model, max_length)
    if limit < max_length:
        raise DistillError(f"--max-length {max_length}: the {student} student has {limit} "
                           f"positions; use --max-length {limit} or less")
    rows = dev_rows(config, args.labels, args.parity_rows)
    batch_size = args.batch_size or 1

    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = _build(args, tmp, model, tok, config, rows, max_length, batch_size, pair, out)
        replace_dir(tmp, out)  # the whole bundle appears at once
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    par = meta["parity"]
    print(f"\nsaved {meta['format']} bundle ({meta['precision']}, "
          f"{meta['model_bytes'] / 1e6:.2f} MB) to {out}/")
    print(f"parity on {par['rows']} dev rows: max |logit diff| {par['max_abs_logit_diff']:.2e}, "
          f"labels agree {100 * par['label_agreement']:.2f}%, dev {par['metric']} "
          f"{_pct(par['bundle_metric'])} (PyTorch {_pct(par['pytorch_metric'])})")
    lat = ", ".join(f"batch {k[1:]} {v:.2f} ms" for k, v in meta["latency_ms"].items())
    print(f"latency at {meta['timing']['length']} tokens, {args.threads} thread(s): {lat}")
    print(f"run it: python -m distill.predict {out} \"some text\"")
    return meta


def _build(args, tmp: Path, model, tok, config, rows: DevRows, max_length: int, batch_size: int,
           pair: bool, out: Path) -> dict:
    student = config["student"]
    fmt = args.format
    model_file = "model.onnx" if fmt == "onnx" else "model.pte"
    slow = (" (ExecuTorch unrolls the LSTM over every position: this takes minutes at 64 tokens)"
            if fmt == "executorch" and student == "bilstm" else "")
    t0 = _step(f"exporting the {student} student to {fmt} (max length {max_length}) ...{slow}")
    try:
        if fmt == "onnx":
            shapes = export_onnx(model, tmp / model_file, pair=pair, max_length=max_length)
            length_axis = 2 if pair else 1
            dynamic_batch = not isinstance(shapes["inputs"]["input_ids"][0], int)
            dynamic_length = not isinstance(shapes["inputs"]["input_ids"][length_axis], int)
            why_fixed = "the ONNX exporter could not keep this student's length symbolic"
        else:
            info = export_executorch(model, tmp / model_file, pair=pair, max_length=max_length,
                                     batch_size=batch_size)
            dynamic_batch, dynamic_length = False, not info["fixed_length"]
            why_fixed = "ExecuTorch cannot take a dynamic length through an LSTM today"
    except DistillError:
        raise
    except Exception as e:  # an operator or shape the format cannot represent
        other = [f for f in FORMATS if f != fmt][0]
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DistillError(f"the {student} student cannot be exported to {fmt} ({type(e).__name__}: "
                           f"{first}); --format {other} may represent it") from None
    print(f"  exported in {time.perf_counter() - t0:.1f}s "
          f"({'dynamic' if dynamic_length else 'fixed'} length)")

    tok_meta = write_tokenizer(tok, tmp, max_length)
    labels = list(config["task"]["label_names"])
    (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    ids_shape = ["batch" if dynamic_batch else batch_size] + ([2] if pair else []) + \
        (["length"] if dynamic_length else [max_length])
    meta = {
        "bundle_version": BUNDLE_VERSION,
        "format": fmt,
        "precision": "fp32",
        "model_file": model_file,
        "model_bytes": _size(tmp / model_file),
        "student": student,
        "student_config": config["student_config"],
        "task": config["task"],
        "labels": labels,
        "pair": pair,
        "max_length": max_length,
        "trained_max_length": int(config["tokenizer"]["max_length"]),
        "min_length": 1,  # every student takes a single token (TextCNN's convolution is wide)
        "inputs": [{"name": n, "dtype": "int64", "shape": ids_shape} for n in ("input_ids", "attention_mask")],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [ids_shape[0], len(labels)]}],
        "batch": {"dynamic": dynamic_batch, "size": None if dynamic_batch else batch_size},
        "length": {"dynamic": dynamic_length, "min": 1, "max": max_length,
                   "why_fixed": None if dynamic_length else why_fixed},
        "padding": "right, with tokenizer.pad_id and attention_mask 0",
        "tokenizer": tok_meta,
        "backend": "XNNPACK" if fmt == "executorch" else "ONNX Runtime CPU",
        "source": {"run_name": Path(args.run_dir.rstrip("/")).name, "label_set": rows.source},
        "versions": _versions(fmt),
        "exported_on": {"machine": platform.machine(), "python": platform.python_version()},
    }
    atomic_write_json(tmp / METADATA, meta)

    t0 = _step(f"checking parity on {len(rows.texts)} dev rows against the PyTorch student ...")
    bundle = Bundle(tmp, threads=args.threads)
    par = parity(bundle, model, rows)
    print(f"  fp32: max |logit diff| {par['max_abs_logit_diff']:.2e}, labels agree "
          f"{100 * par['label_agreement']:.2f}% ({time.perf_counter() - t0:.1f}s)")
    if par["max_abs_logit_diff"] > FP32_MAX_DIFF:
        raise DistillError(
            f"parity check failed: the {fmt} model's logits differ from the PyTorch student's by up "
            f"to {par['max_abs_logit_diff']:.2e} (allowed {FP32_MAX_DIFF:g}) on {par['rows']} dev rows "
            f"(labels agree on {100 * par['label_agreement']:.2f}%); nothing was written to {out}. "
            f"This is a bug: report it with the versions {meta['versions']}")
    timing_length = par["median_length"]
    latency = time_bundle(bundle, timing_length)
    meta |= {"parity": par, "latency_ms": latency,
             "timing": {"length": timing_length, "threads": args.threads,
                        "what": "median ms of one model call on random ids, tokenizer excluded"}}

    if args.quantize == "int8":
        meta = _quantize(tmp, model, rows, meta, student, args.threads)
    atomic_write_json(tmp / METADATA, meta)
    atomic_write_text(tmp / "README.md", render_readme(meta))
    return meta


def _quantize(tmp: Path, model, rows: DevRows, meta: dict, student: str, threads: int) -> dict:
    """Quantize model.onnx to int8; keep it only if it agrees and is not slower. Updates meta."""
    fp32, int8 = tmp / "model.onnx", tmp / "model.int8.onnx"
    t0 = _step(f"quantizing to int8 (dynamic, ONNX Runtime: {', '.join(INT8_OPS.get(student, DEFAULT_INT8_OPS))}) ...")
    ops = quantize_onnx(fp32, int8, student)
    os.replace(fp32, tmp / "model.fp32.onnx")
    os.replace(int8, fp32)  # the bundle reads model.onnx; try the int8 one there
    bundle = Bundle(tmp, threads=threads)
    par = parity(bundle, model, rows)
    timing_length = meta["timing"]["length"]
    lat = time_bundle(bundle, timing_length)
    # time fp32 again right after int8, and keep each one's best, so load drift favours neither
    fp32_bundle = Bundle(tmp, threads=threads, model_file="model.fp32.onnx")
    lat_fp32 = time_bundle(fp32_bundle, timing_length)
    lat_fp32 = {k: min(v, meta["latency_ms"][k]) for k, v in lat_fp32.items()}
    again = time_bundle(bundle, timing_length)
    lat = {k: min(v, again[k]) for k, v in lat.items()}
    sizes = {"fp32_bytes": _size(tmp / "model.fp32.onnx"), "int8_bytes": _size(fp32)}
    print(f"  int8: {sizes['int8_bytes'] / 1e6:.2f} MB (fp32 {sizes['fp32_bytes'] / 1e6:.2f} MB), "
          f"labels agree {100 * par['label_agreement']:.2f}%, "
          + ", ".join(f"batch {k[1:]} {lat[k]:.2f} ms (fp32 {lat_fp32[k]:.2f})" for k in lat)
          + f" ({time.perf_counter() - t0:.1f}s)")
    if par["label_agreement"] < INT8_MIN_AGREEMENT:
        raise DistillError(
            f"int8 parity check failed: labels agree with the PyTorch student on only "
            f"{100 * par['label_agreement']:.2f}% of {par['rows']} dev rows (needs "
            f"{100 * INT8_MIN_AGREEMENT:.0f}%; dev {par['metric']} {_pct(par['bundle_metric'])} vs "
            f"{_pct(par['pytorch_metric'])}); export without --quantize for an fp32 bundle")
    slower = [k for k in lat if lat[k] > lat_fp32[k] * (1 + SLOWER_TOLERANCE)]
    q = {"requested": "int8", "method": "onnxruntime.quantization.quantize_dynamic, QInt8 weights",
         "op_types": ops, **sizes, "int8_latency_ms": lat, "fp32_latency_ms": lat_fp32,
         "int8_parity": par, "fp32_parity": meta["parity"]}
    if slower:
        reason = (f"int8 is more than {SLOWER_TOLERANCE:.0%} slower than fp32 on this CPU (" + ", ".join(
            f"batch {k[1:]}: {lat[k]:.3f} vs {lat_fp32[k]:.3f} ms" for k in slower)
            + f", {threads} thread(s)); shipping the fp32 model")
        print(f"  {reason}")
        os.replace(tmp / "model.fp32.onnx", fp32)
        meta["quantization"] = {**q, "kept": False, "reason": reason}
        meta["latency_ms"] = lat_fp32
        return meta
    (tmp / "model.fp32.onnx").unlink()
    meta["quantization"] = {**q, "kept": True, "reason": f"agrees, and is not slower (within "
                            f"{SLOWER_TOLERANCE:.0%} timing noise) at batch 1 and 32"}
    meta |= {"precision": "int8", "model_bytes": sizes["int8_bytes"], "parity": par, "latency_ms": lat}
    return meta


def main(argv: list[str] | None = None) -> dict | None:
    """`python -m distill.export`; bad input exits with one line."""
    return run_command(lambda: run(parse_args(argv)), "nothing was written")


if __name__ == "__main__":
    main()
