"""Metrics, size, latency, and the teacher-vs-student comparison report (Ganesh et al. 2021).

The report has a row for the teacher, for the student, and for a BERT-base reference when the
teacher is not BERT-base. Sizes and speeds of the teacher and the reference are measured on their
architectures with random weights (weights do not change speed), so a report can be made from a
label set alone, without the teacher's weights. All timings in one report come from the same
process and thread setting, at the task's typical length (the median dev length), so the speedups
are ratios measured side by side.
"""

from __future__ import annotations

import platform
import statistics
import time

import torch

from distill.data.metrics import fmt
from distill.errors import DistillError
from distill.teacher.load import count_hf_parameters

# ----------------------------------------------------------------------------- latency


def median_ms(fn, warmup: int, repeats: int) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


@torch.inference_mode()
def measure_latency(model: torch.nn.Module, make_inputs, device: str = "cpu",
                    batches: tuple[int, ...] = (1, 32), repeats: int = 20,
                    budget_s: float = 2.0) -> dict[str, float]:
    """{f"{device}_b{B}": median ms} of one forward pass at each batch size.

    Batch 1 is timed `repeats` times, larger batches a quarter as often (they are slower, and
    their median is steadier). A slow model is timed fewer times, down to 3, so that the timed
    calls of one batch size take about `budget_s` (BERT-base at batch 32 takes a second a call on
    2 CPU threads); the first warm-up call tells how slow it is."""
    model = model.eval().to(device)
    out = {}
    for b in batches:
        inputs = {k: v.to(device) for k, v in make_inputs(b).items()}

        def run(inputs=inputs):
            model(**inputs)
            if device == "cuda":
                torch.cuda.synchronize()

        t0 = time.perf_counter()
        run()  # the first warm-up call, timed
        first = time.perf_counter() - t0
        n = repeats if b == 1 else max(1, repeats // 4)
        n = max(min(n, 3), min(n, int(budget_s / max(first, 1e-9))))
        warmup = min(2, n) if 3 * first < budget_s else 0  # a slow model is warm after one call
        out[f"{device}_b{b}"] = round(median_ms(run, warmup=warmup, repeats=n), 4)
    return out


def teacher_inputs(vocab_size: int, length: int, model_type: str):
    """A make_inputs(batch) for an HF classifier: random ids of one length, full attention."""
    def make(b: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(5, vocab_size, (b, length), generator=g)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if model_type in ("bert", "electra", "albert"):
            inputs["token_type_ids"] = torch.zeros_like(ids)
        return inputs
    return make


def student_inputs(vocab_size: int, length: int, pair: bool):
    def make(b: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        shape = (b, 2, length) if pair else (b, length)
        ids = torch.randint(2, vocab_size, shape, generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return make


def random_model(config) -> torch.nn.Module:
    """An HF sequence classifier with random N(0, 0.02) weights, for timing and counting.

    HF's per-module initialisation takes seconds for BERT-base; weights do not change speed,
    so it is skipped where transformers allows and the parameters are filled directly."""
    from contextlib import nullcontext

    from transformers import AutoModelForSequenceClassification

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers
        try:
            from transformers.modeling_utils import no_init_weights
        except ImportError:
            no_init_weights = nullcontext
    with no_init_weights():
        model = AutoModelForSequenceClassification.from_config(config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=g)
    return model


def model_from_config(config: dict) -> torch.nn.Module:
    """An HF sequence classifier with random weights, built from a saved config dict."""
    from transformers import AutoConfig

    cfg = dict(config)
    model_type = cfg.pop("model_type")
    try:
        hf_config = AutoConfig.for_model(model_type, **cfg)
    except (ValueError, KeyError) as e:
        raise DistillError(f"cannot rebuild the teacher architecture '{model_type}' to time it "
                           f"({e}); upgrade transformers") from None
    return random_model(hf_config)


BERT_BASE = {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
             "num_attention_heads": 12, "intermediate_size": 3072}


def is_bert_base(config: dict) -> bool:
    return all(config.get(k, BERT_BASE[k] if k != "model_type" else None) == v
               for k, v in BERT_BASE.items())


# ----------------------------------------------------------------------------- report


def format_metric(metric: str, value: float | None) -> str:
    """A dev metric in its own convention: accuracy and F1 as percentages (85.32%), MCC as a coefficient (0.105)."""
    return fmt(metric, value)


def format_delta(metric: str, delta: float | None) -> str:
    """A signed difference of two metric values: points for accuracy and F1 (-1.20 pts), MCC units for MCC."""
    if delta is None:
        return "—"
    return f"{delta:+.3f}" if metric == "mcc" else f"{100 * delta:+.2f} pts"


def build_report(
    *, task, teacher: dict, student_name: str, student: torch.nn.Module, student_vocab: int,
    teacher_length: int, student_length: int, student_metric: float, agreement: float | None,
    extra: dict | None = None, repeats: int = 20,
) -> dict:
    """Measure sizes and speeds and assemble the comparison as a JSON-able dict.

    A teacher without a `config` (a gold-only label set: no teacher was used) gets no row; the
    student is then compared with the BERT-base reference alone."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    has_teacher = bool(teacher.get("config"))
    rows = {}

    def time_all(model, make_inputs):
        lat = {}
        for d in devices:
            lat |= measure_latency(model, make_inputs, d, repeats=repeats)
        model.to("cpu")
        return lat

    if has_teacher:
        teacher_model = model_from_config(teacher["config"])
        t_params, t_wo = count_hf_parameters(teacher_model)
        t_vocab = teacher["config"].get("vocab_size", 30522)
        t_type = teacher["config"]["model_type"]
        rows["teacher"] = {
            "name": teacher.get("name") or teacher.get("id"),
            "params": t_params, "params_without_embeddings": t_wo,
            "dev_metric": teacher.get("dev_metric"),
            "latency_ms": time_all(teacher_model, teacher_inputs(t_vocab, teacher_length, t_type)),
        }
        del teacher_model
    if not has_teacher or not is_bert_base(teacher["config"]):
        from transformers import BertConfig

        ref = random_model(BertConfig(num_labels=task.num_labels))
        r_params, r_wo = count_hf_parameters(ref)
        rows["reference"] = {
            "name": "BERT-base (architecture only)", "params": r_params,
            "params_without_embeddings": r_wo, "dev_metric": None,
            "latency_ms": time_all(ref, teacher_inputs(30522, teacher_length, "bert")),
        }
        del ref
    s = {
        "name": student_name,
        "params": student.num_parameters(),
        "params_without_embeddings": student.num_parameters(exclude_embeddings=True),
        "dev_metric": student_metric,
        "agreement_with_teacher": agreement if has_teacher else None,
        "latency_ms": time_all(student, student_inputs(student_vocab, student_length, task.pair)),
    }
    t = rows.get("teacher")
    if t is not None:
        s["params_pct_of_teacher"] = round(100 * s["params"] / t["params"], 3)
        s["params_without_embeddings_pct_of_teacher"] = round(
            100 * s["params_without_embeddings"] / t["params_without_embeddings"], 3)
    for key in s["latency_ms"]:
        if t is not None:
            s[f"speedup_{key}"] = round(t["latency_ms"][key] / s["latency_ms"][key], 2)
        if "reference" in rows:
            s[f"speedup_vs_bert_base_{key}"] = round(
                rows["reference"]["latency_ms"][key] / s["latency_ms"][key], 2)
    s["drop"] = (round(t["dev_metric"] - student_metric, 6)
                 if t is not None and t["dev_metric"] is not None else None)
    rows["student"] = s
    return {
        "task": task.name, "metric": task.metric,
        "lengths": {"teacher": teacher_length, "student": student_length},
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "gold_only": not has_teacher,
        **rows, **(extra or {}),
    }


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def render_markdown(report: dict) -> str:
    """The report as a Markdown table, one row per model: sizes, latencies, how many times faster than
    the teacher and than BERT-base, the dev metric in its own convention and the signed Δ vs teacher."""
    t = report.get("teacher")
    bert = report.get("reference") or t  # without a reference row the teacher is BERT-base
    metric = report["metric"]
    keys = list(report["student"]["latency_ms"])
    base, base_name = (t, "teacher") if t is not None else (bert, "BERT-base")
    head = ["model", "params", f"% {base_name}", "params w/o emb", f"% {base_name} w/o emb"]
    head += [f"{k.replace('_', ' ')} ms" for k in keys]
    if t is not None:
        head += [f"x faster than the teacher, {k.replace('_', ' ')}" for k in keys]
    head += [f"x faster than BERT-base, {k.replace('_', ' ')}" for k in keys]
    head += [f"dev {metric}"] + (["Δ vs teacher"] if t is not None else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role in ("reference", "teacher", "student"):
        r = report.get(role)
        if r is None:
            continue
        cells = [
            f"{r['name']} ({role})",
            _fmt_params(r["params"]), f"{100 * r['params'] / base['params']:.1f}%",
            _fmt_params(r["params_without_embeddings"]),
            f"{100 * r['params_without_embeddings'] / base['params_without_embeddings']:.1f}%",
        ]
        cells += [f"{r['latency_ms'][k]:.2f}" for k in keys]
        if t is not None:
            cells += [f"{t['latency_ms'][k] / r['latency_ms'][k]:.1f}x" for k in keys]
        cells += [f"{bert['latency_ms'][k] / r['latency_ms'][k]:.1f}x" for k in keys]
        m = r["dev_metric"]
        cells.append(format_metric(metric, m))
        if t is not None:
            delta = None if (m is None or t["dev_metric"] is None or role != "student") else m - t["dev_metric"]
            cells.append(format_delta(metric, delta))
        lines.append("| " + " | ".join(cells) + " |")
    unit = "a coefficient from -1 to 1" if metric == "mcc" else "a percentage"
    notes = [
        "",
        f"Task {report['task']}, metric {metric} ({unit}); timings are medians on "
        f"{report['threads']} CPU thread(s) at the typical dev length "
        f"({report['lengths']['teacher']} {'teacher' if t is not None else 'BERT-base (estimated)'} tokens, "
        f"{report['lengths']['student']} student "
        "tokens); \"x faster\" is the other model's latency divided by this one's.",
    ]
    if t is not None:
        notes.append("Δ vs teacher is the student's dev metric minus the teacher's"
                     + (" (MCC units)." if metric == "mcc" else " (percentage points)."))
    if report.get("gold_only") or t is None:
        notes.append("No teacher: this student was trained on the gold labels alone (a baseline, --alpha 1), "
                     "so there is no teacher row and nothing to agree with.")
    if "reference" in report:
        notes.append("The BERT-base row is the architecture with random weights: its speed and "
                     "size only; it has no metric.")
    a = report["student"].get("agreement_with_teacher")
    if a is not None:
        notes.append(f"Student agrees with the teacher on {100 * a:.1f}% of dev predictions.")
    return "\n".join(lines + notes) + "\n"
