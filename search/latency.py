"""A candidate's latency, measured in the runtime that will ship it (`search.run --latency-runtime`).

    cache = {}
    ms = latency_ms(model, "cnn", vocab_size, pair=False, timing=timing, precision="int8", cache=cache)

"onnx" (the default): the student is exported to a temporary model.onnx by the export's own code
(distill.bundle.onnx.export_onnx, what `python -m distill.export` runs), made int8 by the export's
quantize_onnx when --precision is int8 (fp16 has no ONNX export: its fp32 graph is timed), and run by
an onnxruntime InferenceSession as a bundle runs it (distill.bundle.runtime.OnnxRunner: CPU,
`timing.threads` intra-op threads, one inter-op thread, sequential). Latency depends on the graph,
not on the weights, so each architecture (arch_key: the student's config, less dropout) is exported
and timed once per cache; the search keeps one cache per process.

"torch": the PyTorch eager student, timed with distill.training.report.measure_latency (the
search's behaviour before the ONNX path; 2-3x slower than the bundle that ships).

Both take the median of `timing.repeats` calls after 3 warm-up calls, at `timing.batch` x
`timing.length` random tokens with every position attended.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from distill.bundle.onnx import export_onnx, quantize_onnx
from distill.bundle.policy import STATIC
from distill.training.report import measure_latency, median_ms, student_inputs

RUNTIMES = ("onnx", "torch")
RUNTIME_NAMES = {"onnx": "ONNX Runtime", "torch": "PyTorch eager"}
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")


def timed_precision(runtime: str, precision: str) -> str:
    """The precision of the graph that is timed: the int8 ones on ONNX Runtime, fp32 otherwise."""
    return precision if runtime == "onnx" and precision.startswith("int8") else "fp32"


def runtime_label(runtime: str, precision: str) -> str:
    """What a latency number comes from, in words: 'ONNX Runtime int8', 'PyTorch eager fp32'."""
    return f"{RUNTIME_NAMES[runtime]} {timed_precision(runtime, precision)}"


def require_onnx() -> None:
    """Fail in one line, with the extra to install, when the ONNX latency path cannot run."""
    import importlib.util

    from distill.bundle.runtime import EXTRAS, install_hint
    from distill.errors import DistillError

    missing = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise DistillError(f"--latency-runtime onnx exports each candidate and needs the '{EXTRAS['onnx']}' "
                           f"extra ({', '.join(missing)} not installed): {install_hint(EXTRAS['onnx'])}; "
                           "or pass --latency-runtime torch to time the PyTorch student")


@contextmanager
def torch_threads(n: int):
    """Run the block with n intra-op threads, then restore the previous setting."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def arch_key(model: torch.nn.Module, pair: bool, timing, precision: str) -> str:
    """What determines the timed graph: the student class and config (dropout is the identity at
    inference), the input shape and the timing settings; never the weights."""
    config = {k: v for k, v in dataclasses.asdict(model.config).items() if "dropout" not in k}
    return json.dumps([type(model).__name__, config, pair, dataclasses.asdict(timing),
                       timed_precision(timing.runtime, precision)],
                      sort_keys=True, default=str)


def onnx_latency_ms(model: torch.nn.Module, student: str, vocab_size: int, pair: bool, timing,
                    precision: str) -> float:
    """Export the student as the bundle would be, then time it with ONNX Runtime (median ms)."""
    from distill.bundle.runtime import OnnxRunner

    with tempfile.TemporaryDirectory(prefix="search-latency-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model.eval(), path, pair=pair, max_length=timing.length)
        inputs = student_inputs(vocab_size, timing.length, pair)(timing.batch)
        ids, mask = inputs["input_ids"].numpy(), inputs["attention_mask"].numpy()
        if precision.startswith("int8"):
            # a static student calibrates on the timed inputs: its speed does not depend on the scales
            calibration = [(ids[i:i + 1], mask[i:i + 1]) for i in range(len(ids))] if student in STATIC else None
            quantize_onnx(path, Path(tmp) / "model.int8.onnx", student,
                          table_bits=4 if precision == "int8-table4" else 8, calibration=calibration)
            path = Path(tmp) / "model.int8.onnx"
        runner = OnnxRunner(path, timing.threads)
    return median_ms(lambda: runner(ids, mask), warmup=3, repeats=timing.repeats)


def latency_ms(model: torch.nn.Module, student: str, vocab_size: int, pair: bool, timing,
               precision: str = "fp32", cache: dict | None = None) -> float:
    """Median ms of one call at timing.runtime; with a cache, each architecture is measured once."""
    key = arch_key(model, pair, timing, precision) if cache is not None else None
    if key is not None and key in cache:
        return cache[key]
    if timing.runtime == "onnx":
        ms = onnx_latency_ms(model, student, vocab_size, pair, timing, precision)
    else:
        with torch_threads(timing.threads):
            lat = measure_latency(model, student_inputs(vocab_size, timing.length, pair), "cpu",
                                  batches=(timing.batch,), repeats=timing.repeats)
        ms = lat[f"cpu_b{timing.batch}"]
    if key is not None:
        cache[key] = ms
    return ms
