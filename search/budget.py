"""Budgets: what a student may cost, measured before any training.

    budget = Budget(max_size_mb=5, precision="int8")            # size at the export precision
    budget = Budget(max_params=2_000_000)                       # parameters with embeddings
    budget = Budget(max_latency_ms=2, timing=Timing(batch=1, length=20, threads=1))
    cost = measure(model, vocab_size, pair=False, timing=budget.timing, precision=budget.precision)
    budget.violations(cost)   # {"latency_ms": 0.31} -> over by 31%; {} or values <= 0: within

Sizes count every parameter, embeddings included (1 MB = 10^6 bytes), stored as the export stores
it: at fp32 and fp16, 4 and 2 bytes each; at int8, the export's precision policy
(distill/bundle/policy.py INT8_OPS): one byte for the weights of the op types it quantizes
(embedding tables: Gather, plus a 4-byte scale per row; Linear weights: MatMul; the BiLSTM's LSTM weights;
the CNN's convolutions, quantized statically; these, for policy.PER_CHANNEL and STATIC students, with a 4-byte
scale and a 1-byte zero point per output channel), four for the rest
(biases, norms); at int8-table4 (`distill.export --quantize int8 --table-bits 4`), the
embedding tables take half a byte per weight plus a 4-byte scale per block of TABLE4_BLOCK values.
An export's other scales and the graph itself are not counted: tens of KB,
under 2% of a model of a few MB. Latency is the median wall time of `timing.repeats` calls at
`timing.batch` x `timing.length` tokens on this CPU with `timing.threads` threads, in
`timing.runtime` (search.latency): "onnx", the student exported as the bundle ships it (at int8
when the precision is int8) and run by ONNX Runtime, or "torch", the PyTorch eager student. Each
violation is the relative excess, cost / limit - 1, so one number per budget, in no unit, goes to Optuna's
constraints API (`trial.set_constraint`); the objective's score never includes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

import students
from distill.bundle.policy import DEFAULT_INT8_OPS, INT8_OPS, TABLE4_BLOCK, per_channel
from search.latency import RUNTIMES, latency_ms, runtime_label

BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "int8": 1, "int8-table4": 1}  # int8-table4: tables at 4 bits


@dataclass(frozen=True)
class Timing:
    """How latency is measured: runtime ("onnx": the exported bundle; "torch": eager), batch size,
    sequence length, CPU threads, timed calls."""

    batch: int = 1
    length: int = 32
    threads: int = 1
    repeats: int = 20
    runtime: str = "onnx"

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}")

    def describe(self, precision: str = "fp32") -> str:
        return (f"{runtime_label(self.runtime, precision)}, batch {self.batch}, {self.length} tokens, "
                f"{self.threads} thread(s), median of {self.repeats}")


@dataclass(frozen=True)
class Cost:
    """What one student costs: parameters, megabytes at the precision, CPU latency."""

    params: int
    params_without_embeddings: int
    size_mb: float
    latency_ms: float
    seconds: float = 0.0  # time spent building nothing, only counting and timing
    latency_runtime: str = ""  # what latency_ms comes from: "ONNX Runtime int8", "PyTorch eager fp32"

    def to_dict(self) -> dict:
        return {"params": self.params, "params_without_embeddings": self.params_without_embeddings,
                "size_mb": round(self.size_mb, 4), "latency_ms": round(self.latency_ms, 4),
                "latency_runtime": self.latency_runtime}


@dataclass(frozen=True)
class Budget:
    """Limits on size and latency; None = no limit of that kind."""

    max_params: int | None = None
    max_size_mb: float | None = None
    max_latency_ms: float | None = None
    precision: str = "fp32"
    timing: Timing = field(default_factory=Timing)

    def __post_init__(self) -> None:
        if self.precision not in BYTES_PER_PARAM:
            raise ValueError(f"precision must be one of {', '.join(BYTES_PER_PARAM)}")

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_params, self.max_size_mb, self.max_latency_ms))

    def limits(self) -> dict[str, float]:
        """{constraint name: limit} of the budgets that are set."""
        named = {"params": self.max_params, "size_mb": self.max_size_mb,
                 "latency_ms": self.max_latency_ms}
        return {k: float(v) for k, v in named.items() if v is not None}

    def violations(self, cost: Cost) -> dict[str, float]:
        """{constraint name: cost / limit - 1} for each budget set; > 0 means over budget."""
        return {k: getattr(cost, k) / limit - 1.0 for k, limit in self.limits().items()}

    def fits(self, cost: Cost) -> bool:
        return all(v <= 0 for v in self.violations(cost).values())

    def describe(self) -> str:
        parts = []
        if self.max_params is not None:
            parts.append(f"<= {self.max_params:,} parameters")
        if self.max_size_mb is not None:
            parts.append(f"<= {self.max_size_mb:g} MB at {self.precision}")
        if self.max_latency_ms is not None:
            parts.append(f"<= {self.max_latency_ms:g} ms ({self.timing.describe(self.precision)})")
        return ", ".join(parts) or "no budget"

    def over(self, cost: Cost) -> str:
        """What is over budget, in words: 'latency 0.41 ms > 0.30 ms'."""
        out = []
        for k, v in self.violations(cost).items():
            if v > 0:
                limit = self.limits()[k]
                unit = {"params": "", "size_mb": " MB", "latency_ms": " ms"}[k]
                fmt = (lambda x: f"{x:,.0f}") if k == "params" else (lambda x: f"{x:.3g}")
                out.append(f"{k.split('_')[0]} {fmt(getattr(cost, k))}{unit} > {fmt(limit)}{unit}")
        return ", ".join(out)


STUDENT_OF = {cls.__name__: name for name, cls in students.STUDENTS.items()}  # class -> INT8_OPS key


def parameter_bytes(model: torch.nn.Module, precision: str = "fp32") -> int:
    """Bytes of the model's parameters in its export at `precision` (see the module's docstring)."""
    if not precision.startswith("int8"):
        return model.num_parameters() * BYTES_PER_PARAM[precision]
    student = STUDENT_OF.get(type(model).__name__, "")
    ops, channel_scales = INT8_OPS.get(student, DEFAULT_INT8_OPS), per_channel(student)
    seen, total = set(), 0
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if precision == "int8-table4" and isinstance(module, torch.nn.Embedding):
                rows, dim = p.shape  # 4-bit values packed two to a byte, an fp32 scale per block of each row
                total += rows * ((dim + 1) // 2 + 4 * -(-dim // TABLE4_BLOCK))
                continue
            if "Gather" in ops and isinstance(module, torch.nn.Embedding):
                rows, dim = p.shape  # int8 values and an fp32 scale per row (distill.bundle.onnx._table_to_int8_rows)
                total += rows * (dim + 4)
                continue
            int8 = (("MatMul" in ops and isinstance(module, torch.nn.Linear) and name == "weight")
                    or ("Conv" in ops and isinstance(module, torch.nn.Conv1d) and name == "weight")
                    or ("LSTM" in ops and isinstance(module, torch.nn.LSTM) and name.startswith("weight_")))
            # int8 weights: a byte each (per channel, with an fp32 scale and an int8 zero point per output row)
            total += p.numel() + (5 * p.shape[0] if channel_scales else 0) if int8 else 4 * p.numel()
    return total


def measure(model: torch.nn.Module, vocab_size: int, pair: bool, timing: Timing,
            precision: str = "fp32", cache: dict | None = None) -> Cost:
    """Count and time an (untrained) student; weights do not change its size or speed. With a
    cache (search.latency), each architecture is timed once."""
    t0 = time.perf_counter()
    params = model.num_parameters()
    without = model.num_parameters(exclude_embeddings=True)
    student = STUDENT_OF.get(type(model).__name__, "")
    lat = latency_ms(model, student, vocab_size, pair, timing, precision, cache)
    return Cost(params=params, params_without_embeddings=without,
                size_mb=parameter_bytes(model, precision) / 1e6, latency_ms=lat,
                seconds=time.perf_counter() - t0, latency_runtime=runtime_label(timing.runtime, precision))
