"""Export a trained student as a bundle for a phone or a CPU service: ONNX or ExecuTorch, fp32 or
int8, checked against the PyTorch student on the dev set every time.

    python -m distill.export runs/sst2-bilstm --format onnx --quantize int8 --output-dir exports/bilstm
    python -m distill.export runs/sst2-cnn --format executorch --max-length 64
    python -m distill.predict exports/bilstm "a gorgeous, witty, seductive movie"

Flow: run folder (distill.train or search.run output) -> student -> model file in a temporary
folder beside the output -> [int8: ONNX Runtime quantization, dynamic for the BiLSTM and the
transformer, static (calibrated on training rows) for the CNN; kept only if it agrees with the
student and is not slower] -> parity check through the bundled tokenizer (fails loudly) ->
metadata.json and README.md -> the folder is renamed into place, so a failed or killed export
never leaves half a bundle.

What each format can take (and metadata.json records it):
- ONNX (torch.onnx.export, dynamo; the BiLSTM's graph written from its weights, one bidirectional LSTM
  node per layer): any batch and any length up to the maximum, for every student.
- ExecuTorch (.pte, XNNPACK backend): a fixed batch (`--batch-size`, default 1); the length is
  dynamic up to the maximum for the CNN and the transformer, and fixed at the maximum for the
  BiLSTM, whose LSTM ExecuTorch can only unroll over a known length (inputs are padded to it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from distill.bundle.check import DevRows, calibration_feeds, dev_rows, parity, time_bundle
from distill.bundle.executorch import export_executorch
from distill.bundle.files import render_readme, versions, write_tokenizer
from distill.bundle.onnx import export_onnx, quantize_onnx
from distill.bundle.policy import (
    DEFAULT_INT8_OPS,
    FP32_MAX_DIFF,
    INT8_MIN_AGREEMENT,
    INT8_OPS,
    SLOWER_TOLERANCE,
    STATIC,
    TABLE4_BLOCK,
    TABLE_BITS,
    int8_batch_policy,
    int8_is_slower,
    int8_slowdown,
    per_channel,
)
from distill.bundle.runtime import BUNDLE_VERSION, EXTRAS, METADATA, Bundle, install_hint
from distill.bundle.trace import length_limit, quiet
from distill.cli import _help, run_command
from distill.cli import build_parser as cli_parser
from distill.data.metrics import fmt as fmt_metric
from distill.errors import DistillError
from distill.io import atomic_write_json, atomic_write_text
from distill.outputs import check_output, staged

FORMATS = ("onnx", "executorch")
PRECISIONS = ("none", "int8")
KEEP_INT8 = ("if-faster", "always")


# ============================================================================ arguments


@dataclass
class ExportArgs:
    """Everything `python -m distill.export` takes (run_dir is positional, the rest are flags)."""

    run_dir: str = field(default="", metadata=_help(
        "a trained student: the output folder of `python -m distill.train` or `search.run`"))
    format: str = field(default="onnx", metadata=_help(
        "onnx (ONNX Runtime: servers, Android, iOS) or executorch (.pte with the XNNPACK backend)"))
    quantize: str = field(default="none", metadata=_help(
        "int8: ONNX Runtime quantization (ONNX only; dynamic for the BiLSTM and the transformer, static, "
        "calibrated on training rows of the label set, for the CNN); kept only if the labels agree on "
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
    keep_int8: str = field(default="if-faster", metadata=_help(
        "with --quantize int8: if-faster keeps int8 only if it is not slower than fp32 (within "
        f"{SLOWER_TOLERANCE:.0%}, on the geometric mean of its time ratios at batch 1 and 32); always keeps it "
        "whenever its labels agree, even if slower (for its size)"))
    table_bits: int | None = field(default=None, metadata=_help(
        f"with --quantize int8: bits per weight of the embedding table, 8 or 4; default: 4 if the student was "
        "trained for it (distill.train --table-bits 4), else 8. 4 stores it in blocks of "
        f"{TABLE4_BLOCK} values with a scale each (ONNX Runtime's GatherBlockQuantized, a contrib op: "
        "onnxruntime >= 1.20 on every platform; not standard ONNX), about 0.56 of the int8 table's bytes"))
    no_vocab_txt: bool = field(default=False, metadata=_help(
        "leave vocab.txt out: the vocabulary is also in tokenizer.json (model.vocab, token to id), which "
        "distill.predict, transformers.js and the HF tokenizers ports read. Keep it (the default) for a "
        "client that implements WordPiece from a vocabulary file; with a pruned vocabulary it is 3% of "
        "the folder"))
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
            (self.keep_int8 in KEEP_INT8, f"--keep-int8 {self.keep_int8}: choose {' or '.join(KEEP_INT8)}"),
            (self.table_bits is None or self.table_bits in TABLE_BITS,
             f"--table-bits {self.table_bits}: choose {' or '.join(map(str, TABLE_BITS))}"),
            (self.table_bits in (None, 8) or self.quantize == "int8",
             "--table-bits 4 quantizes the int8 model's embedding table further: add --quantize int8"),
            (not (self.batch_size is not None and self.format == "onnx"),
             "--batch-size is for --format executorch; ONNX bundles take any batch size"),
            (not (self.quantize == "int8" and self.format == "executorch"),
             "--quantize int8 is available with --format onnx (ONNX Runtime quantization); "
             "ExecuTorch bundles are fp32 here: drop --quantize or use --format onnx"),
        ]
        for ok, message in checks:
            if not ok:
                raise DistillError(message)


def build_parser() -> argparse.ArgumentParser:
    paragraphs = (__doc__ or "").split("\n\n")
    epilog = ("The bundle holds the model, tokenizer.json (and vocab.txt, unless --no-vocab-txt), labels.txt,\n"
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
            with quiet():
                importlib.import_module(name)
        except ImportError:
            raise DistillError(f"--format {fmt} needs the '{EXTRAS[fmt]}' extra ({name} is not "
                               f"installed): {install_hint(EXTRAS[fmt])}") from None


# ============================================================================ the pipeline


def predict_command(out: Path, pair: bool) -> str:
    """The `python -m distill.predict` command that classifies an example text with the bundle in `out`
    (a pair as 'first<TAB>second', written $'...\\t...' for bash)."""
    text = "$'a first text\\ta second text'" if pair else "'some text'"
    return f"python -m distill.predict {shlex.quote(str(out))} {text}"


def default_output_dir(args: ExportArgs) -> Path:
    name = Path(args.run_dir.rstrip("/")).name or "student"
    return Path("exports") / f"{name}-{args.format}{'-int8' if args.quantize == 'int8' else ''}"


def default_table_bits(config: dict, quantize: str) -> int:
    """--table-bits when not given: 4 for an int8 export of a student trained for a 4-bit table (its
    table is already on that grid, so 8 bits would only make the bundle bigger), else 8."""
    trained = config.get("args", {}).get("table_bits", 8)
    if quantize == "int8" and trained == 4:
        print("the student was trained for a 4-bit table (distill.train --table-bits 4): exporting its table at "
              "4 bits (--table-bits 8 to keep 8)")
        return 4
    return 8


def _step(message: str) -> float:
    print(message, flush=True)
    return time.perf_counter()


def run(args: ExportArgs) -> dict:
    """Export, check and write the bundle; returns its metadata."""
    from distill.training.runfolder import load_run

    out = Path(args.output_dir) if args.output_dir else default_output_dir(args)
    if check_output(out, "bundle") == "ours" and not args.overwrite:
        raise DistillError(f"--output-dir {out} already holds a bundle; pass --overwrite to replace it, or "
                           "choose another --output-dir")
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
    limit = length_limit(model, max_length)
    if limit < max_length:
        raise DistillError(f"--max-length {max_length}: the {student} student has {limit} "
                           f"positions; use --max-length {limit} or less")
    rows = dev_rows(config, args.labels, args.parity_rows)
    batch_size = args.batch_size or 1
    if args.table_bits is None:
        args = dataclasses.replace(args, table_bits=default_table_bits(config, args.quantize))

    with staged(out, "bundle") as tmp:  # the whole bundle appears at once
        meta = _build(args, tmp, model, tok, config, rows, max_length, batch_size, pair, out)
    par = meta["parity"]
    folder = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"\nsaved {meta['format']} bundle ({meta['precision']}, model {meta['model_bytes'] / 1e6:.2f} MB; "
          f"the whole folder, what an app downloads, {folder / 1e6:.2f} MB) to {out}/")
    print(f"parity on {par['rows']} dev rows: max |logit diff| {par['max_abs_logit_diff']:.2e}, "
          f"labels agree {100 * par['label_agreement']:.2f}%, dev {par['metric']} "
          f"{fmt_metric(par['metric'], par['bundle_metric'])} "
          f"(PyTorch {fmt_metric(par['metric'], par['pytorch_metric'])})")
    lat = ", ".join(f"batch {k[1:]} {v:.2f} ms" for k, v in meta["latency_ms"].items())
    print(f"latency at {meta['timing']['length']} tokens, {args.threads} thread(s): {lat}")
    print(f"run it:\n  {predict_command(out, pair)}")
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

    tok_meta = write_tokenizer(tok, tmp, max_length, vocab_txt=not args.no_vocab_txt)
    labels = list(config["task"]["label_names"])
    (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    ids_shape = ["batch" if dynamic_batch else batch_size] + ([2] if pair else []) + \
        (["length"] if dynamic_length else [max_length])
    meta = {
        "bundle_version": BUNDLE_VERSION,
        "format": fmt,
        "precision": "fp32",
        "model_file": model_file,
        "model_bytes": (tmp / model_file).stat().st_size,
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
        "batch_policy": "batch",  # one model call per batch (int8 bundles: "row", see _quantize)
        "length": {"dynamic": dynamic_length, "min": 1, "max": max_length,
                   "why_fixed": None if dynamic_length else why_fixed},
        "padding": "right, with tokenizer.pad_id and attention_mask 0",
        "tokenizer": tok_meta,
        "backend": "XNNPACK" if fmt == "executorch" else "ONNX Runtime CPU",
        "source": {"run_name": Path(args.run_dir.rstrip("/")).name, "label_set": rows.source},
        "versions": versions(fmt),
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
        meta = _quantize(tmp, model, rows, meta, student, args.threads, args.keep_int8, args.table_bits)
    atomic_write_text(tmp / "README.md", render_readme(meta, out.name))
    meta = _with_bytes(tmp, meta)
    atomic_write_json(tmp / METADATA, meta)
    return meta


def bundle_bytes(directory: Path, meta: dict) -> dict:
    """Where the bundle folder's bytes go: the model, tokenizer.json, vocab.txt and everything else
    (labels.txt, README.md, the folder's marker, and metadata.json as it will be written, with this
    breakdown in it)."""
    import json

    from distill.outputs import MARKER

    sizes = {p.name: p.stat().st_size for p in directory.iterdir() if p.is_file() and p.name != METADATA}
    if MARKER not in sizes:  # written when the bundle is complete, with what write_marker writes
        sizes[MARKER] = len((json.dumps({"kind": "bundle", "tool": "distill-workbench"}, indent=2) + "\n").encode())
    parts = {"model": sizes.pop(meta["model_file"], 0), "tokenizer.json": sizes.pop("tokenizer.json", 0),
             "vocab.txt": sizes.pop("vocab.txt", 0)}
    rest = sum(sizes.values())
    out = parts | {"other": rest, "total": sum(parts.values()) + rest}
    for _ in range(5):  # metadata.json holds these numbers: settle on sizes that include themselves
        text = json.dumps(meta | {"bundle_bytes": out}, indent=2, ensure_ascii=False) + "\n"
        other = rest + len(text.encode())
        new = parts | {"other": other, "total": sum(parts.values()) + other}
        if new == out:
            break
        out = new
    return out


def _with_bytes(directory: Path, meta: dict) -> dict:
    meta = meta | {"bundle_bytes": bundle_bytes(directory, meta)}
    b = meta["bundle_bytes"]
    print(f"  bundle {b['total'] / 1e6:.2f} MB: " + ", ".join(
        f"{k} {v / 1e6:.2f} MB ({100 * v / max(b['total'], 1):.0f}%)" for k, v in b.items() if k != "total"))
    return meta


def _quantize(tmp: Path, model, rows: DevRows, meta: dict, student: str, threads: int,
              keep: str = "if-faster", table_bits: int = 8) -> dict:
    """Quantize model.onnx to int8 (table_bits=4: its embedding table at 4 bits); keep it only if it agrees
    and (keep="if-faster") is not slower.

    A dynamic int8 bundle runs one text per call ("batch_policy": "row"): dynamic quantization computes each
    activation scale over the whole input, so in a batch a text's logits would depend on its neighbours
    (and their padding). Row by row, the parity check, distill.predict and any batch give each text
    what it gets alone; its timings (batch 32 = 32 calls) are what that costs. A static one (policy.STATIC)
    has fixed scales and runs a batch in one call ("batch"). Updates meta."""
    fp32, int8 = tmp / "model.onnx", tmp / "model.int8.onnx"
    table = f"; the table at 4 bits, blocks of {TABLE4_BLOCK}" if table_bits == 4 else ""
    static = student in STATIC
    how = f"static, calibrated on {len(rows.calibration)} training rows" if static else "dynamic"
    t0 = _step(f"quantizing to int8 ({how}, ONNX Runtime: {', '.join(INT8_OPS.get(student, DEFAULT_INT8_OPS))}"
               f"{table}) ...")
    if static and not rows.calibration:
        raise DistillError(f"--quantize int8: the {student} student's int8 is calibrated on training rows, and its "
                           f"label set ({rows.source}) has none; pass --labels with a label set that has them, or "
                           "export without --quantize")
    ops = quantize_onnx(fp32, int8, student, table_bits, calibration_feeds(tmp, student, rows.calibration))
    os.replace(fp32, tmp / "model.fp32.onnx")
    os.replace(int8, fp32)  # the bundle reads model.onnx; try the int8 one there
    bundle = Bundle(tmp, threads=threads)
    bundle.batch_policy = int8_batch_policy(student)
    par = parity(bundle, model, rows)
    timing_length = meta["timing"]["length"]
    lat = time_bundle(bundle, timing_length)
    # time fp32 again right after int8, and keep each one's best, so load drift favours neither
    fp32_bundle = Bundle(tmp, threads=threads, model_file="model.fp32.onnx")
    lat_fp32 = time_bundle(fp32_bundle, timing_length)
    lat_fp32 = {k: min(v, meta["latency_ms"][k]) for k, v in lat_fp32.items()}
    again = time_bundle(bundle, timing_length)
    lat = {k: min(v, again[k]) for k, v in lat.items()}
    sizes = {"fp32_bytes": (tmp / "model.fp32.onnx").stat().st_size, "int8_bytes": fp32.stat().st_size}
    print(f"  int8: {sizes['int8_bytes'] / 1e6:.2f} MB (fp32 {sizes['fp32_bytes'] / 1e6:.2f} MB), "
          f"labels agree {100 * par['label_agreement']:.2f}%, "
          + ", ".join(f"batch {k[1:]} {lat[k]:.2f} ms (fp32 {lat_fp32[k]:.2f})" for k in lat)
          + f" ({time.perf_counter() - t0:.1f}s)")
    if par["label_agreement"] < INT8_MIN_AGREEMENT:
        raise DistillError(
            f"int8 parity check failed: labels agree with the PyTorch student on only "
            f"{100 * par['label_agreement']:.2f}% of {par['rows']} dev rows (needs "
            f"{100 * INT8_MIN_AGREEMENT:.0f}%; dev {par['metric']} "
            f"{fmt_metric(par['metric'], par['bundle_metric'])} vs "
            f"{fmt_metric(par['metric'], par['pytorch_metric'])}); export without --quantize for an fp32 bundle")
    slowdown = int8_slowdown(lat, lat_fp32)
    slower = int8_is_slower(lat, lat_fp32)
    times = (f"time ratio {slowdown:.2f}, the geometric mean over " + ", ".join(
        f"batch {k[1:]}: {lat[k]:.3f} vs {lat_fp32[k]:.3f} ms" for k in lat))
    weights = "a scale per output channel" if per_channel(student) else "one scale per tensor"
    method = (f"onnxruntime.quantization.quantize_static (QDQ), QUInt8 activations at scales calibrated on "
              f"{len(rows.calibration)} training rows, QInt8 weights with {weights} (Conv, MatMul, Gemm)" if static
              else f"onnxruntime.quantization.quantize_dynamic, QInt8 weights with {weights} (MatMul, LSTM)")
    q = {"requested": "int8", "method": method + "; the embedding tables " + (
             f"by MatMulNBitsQuantizer (4-bit, symmetric, blocks of {TABLE4_BLOCK})" if table_bits == 4 else
             "int8 with a scale per row (Gather, Cast, Gather, Mul)"), "table_bits": table_bits,
         "op_types": ops, **sizes, "int8_latency_ms": lat, "fp32_latency_ms": lat_fp32,
         "int8_time_ratio": round(slowdown, 4), "int8_parity": par, "fp32_parity": meta["parity"]}
    if slower and keep == "always":
        kept_why = (f"kept with --keep-int8 always although it is more than {SLOWER_TOLERANCE:.0%} slower than "
                    f"fp32 on this CPU ({times})")
        print(f"  {kept_why}")
    elif slower:
        reason = (f"int8 is more than {SLOWER_TOLERANCE:.0%} slower than fp32 on this CPU ({times}, "
                  f"{threads} thread(s)); shipping the fp32 model")
        print(f"  {reason}")
        os.replace(tmp / "model.fp32.onnx", fp32)
        meta["quantization"] = {**q, "kept": False, "keep_int8": keep, "reason": reason}
        meta["latency_ms"] = lat_fp32
        return meta
    (tmp / "model.fp32.onnx").unlink()
    meta["quantization"] = {**q, "kept": True, "keep_int8": keep, "reason": kept_why if slower else (
        f"agrees, and is not slower overall (within {SLOWER_TOLERANCE:.0%} timing noise; {times})")}
    meta |= {"precision": "int8", "model_bytes": sizes["int8_bytes"], "parity": par, "latency_ms": lat,
             "batch_policy": int8_batch_policy(student),
             "batch_policy_why": ("static int8: activation scales are fixed and accumulation is in integers, so a "
                                  "batch gives each text what it gets alone" if static else
                                  "dynamic int8 scales activations over the whole input: each text runs alone, "
                                  "at its own length, so its label never depends on the rest of a batch")}
    return meta


def main(argv: list[str] | None = None) -> dict | None:
    """`python -m distill.export`; bad input exits with one line."""
    return run_command(lambda: run(parse_args(argv)), "nothing was written")


if __name__ == "__main__":
    main()
