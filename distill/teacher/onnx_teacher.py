"""The teacher on ONNX Runtime (`distill.label --runtime onnx|onnx-int8`): exported once into the labelling
work folder, run on the CPU, checked against PyTorch before its logits are trusted.

    path = export_teacher(model, tokenizer, work / "teacher.onnx", max_length)
    teacher = OnnxTeacher(path, num_labels, threads)          # predict_logits takes it like the HF model
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from distill.errors import DistillError

RUNTIMES = ("torch", "onnx", "onnx-int8")
ONNX_MAX_DIFF = 1e-3  # fp32 ONNX vs PyTorch: largest allowed |logit difference| on the first chunk
INT8_MIN_AGREEMENT = 0.99  # int8 teacher vs fp32 teacher: smallest allowed share of equal dev labels
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def teacher_inputs(model, tokenizer) -> list[str]:
    """The inputs the model takes and its tokenizer makes (token_type_ids only where both do)."""
    params = inspect.signature(model.forward).parameters
    made = set(getattr(tokenizer, "model_input_names", INPUTS))
    return [n for n in INPUTS if n in params and (n == "input_ids" or n in made)]


def export_teacher(model, tokenizer, path: Path, max_length: int) -> Path:
    """model -> ONNX at `path` (atomically), dynamic batch and sequence axes; reused if already there.

    The TorchScript exporter (dynamo=False) is used first: on torch 2.13 the dynamo exporter's saved
    file of a BERT classifier gave logits off by a constant ~6e-4 (its in-memory program did not), and it
    takes 25x longer. Whichever exporter runs, the first chunk is checked against PyTorch."""
    import torch

    from distill.bundle.trace import quiet

    if path.is_file():
        return path
    names = teacher_inputs(model, tokenizer)

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            return self.m(**dict(zip(names, args))).logits

    wrapper = Logits(model).eval()
    enc = tokenizer(["a b c d", "a"], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    example = tuple(enc[n].to(device) for n in names)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.onnx")  # shards may share the folder
    try:
        with quiet(), torch.inference_mode(False), torch.no_grad():
            try:
                torch.onnx.export(wrapper, example, str(tmp), input_names=names, output_names=["logits"],
                                  dynamic_axes={n: {0: "batch", 1: "length"} for n in names} | {"logits": {0: "batch"}},
                                  dynamo=False, opset_version=17)
            except (TypeError, RuntimeError, ImportError):  # no TorchScript exporter: the dynamo one
                dim = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("length", min=1, max=max_length)}
                program = torch.onnx.export(wrapper, example, input_names=names, output_names=["logits"],
                                            dynamic_shapes=tuple(dim for _ in names), dynamo=True, verbose=False)
                program.save(str(tmp), external_data=False)
    except Exception as e:  # an architecture the exporters cannot represent  # noqa: BLE001
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DistillError(f"the teacher cannot be exported to ONNX ({type(e).__name__}: {first}); "
                           "label with --runtime torch") from None
    os.replace(tmp, path)
    return path


def quantize_teacher(src: Path, dst: Path) -> Path:
    """ONNX Runtime dynamic int8 (QInt8 weights, per output channel) of the teacher's MatMuls and Gathers;
    reused if there. On the MiniLM SST-2 teacher, per-channel weights agree with fp32 on 98.3% of dev labels,
    per-tensor on 96.2% (MatMul only: 96.3%): both below the 99% gate, which then refuses."""
    if dst.is_file():
        return dst
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    del model.graph.value_info[:]  # shape annotations ORT's quantizer's own inference may reject
    tmp = dst.with_suffix(f".{os.getpid()}.tmp.onnx")
    from distill.bundle.trace import quiet

    with quiet():
            quantize_dynamic(model, str(tmp), op_types_to_quantize=["MatMul", "Gather"], per_channel=True,
                         weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
    os.replace(tmp, dst)
    return dst


class OnnxTeacher:
    """An ONNX Runtime CPU session that predict_logits calls like the HF model: numpy inputs, numpy logits."""

    def __init__(self, path: Path, num_labels: int, threads: int):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DistillError("--runtime onnx needs onnxruntime: pip install 'distill-workbench[onnx]'") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        self.config = SimpleNamespace(num_labels=num_labels)
        self.path = path

    def __call__(self, enc) -> np.ndarray:
        return self.session.run(["logits"], {n: np.asarray(enc[n], dtype=np.int64) for n in self.names})[0]


def check_parity(onnx_logits: np.ndarray, torch_logits: np.ndarray, what: str) -> dict:
    """Max |diff| of the fp32 ONNX teacher from PyTorch on one chunk; a one-line error above ONNX_MAX_DIFF."""
    diff = float(np.abs(onnx_logits - torch_logits).max()) if len(onnx_logits) else 0.0
    if not diff <= ONNX_MAX_DIFF:  # NaN fails too
        raise DistillError(f"the ONNX teacher's logits differ from PyTorch's by up to {diff:.2e} on {what} "
                           f"(allowed {ONNX_MAX_DIFF:g}); label with --runtime torch")
    return {"rows": len(onnx_logits), "max_abs_logit_diff": diff, "allowed": ONNX_MAX_DIFF, "on": what}


class OnnxTeacherClassifier:
    """The teacher as one would ship it without distilling: its fast tokenizer (`tokenizers`) and an ONNX
    Runtime session, texts in, label ids out. A text is a string or a tuple of its sides (a pair).

    One text is encoded alone (`encode`: no padding, no batch machinery); several are padded to the longest."""

    def __init__(self, path: Path, tokenizer, max_length: int, num_labels: int, threads: int = 1):
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise DistillError("timing the ONNX teacher needs its fast tokenizer (tokenizer.json); this one is "
                               f"{type(tokenizer).__name__}")
        self.tokenizer = Tokenizer.from_str(backend.to_str())  # our own copy: transformers resets its settings
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=tokenizer.pad_token_id or 0, pad_token=tokenizer.pad_token or "[PAD]")
        self.model = OnnxTeacher(path, num_labels, threads)

    def logits(self, texts: list) -> np.ndarray:
        inputs = [t if isinstance(t, str) else (t[0] if len(t) == 1 else tuple(t)) for t in texts]
        if len(inputs) == 1:
            x = inputs[0]
            encs = [self.tokenizer.encode(x) if isinstance(x, str) else self.tokenizer.encode(*x)]
        else:
            encs = self.tokenizer.encode_batch(inputs)
        enc = {"input_ids": [e.ids for e in encs], "attention_mask": [e.attention_mask for e in encs],
               "token_type_ids": [e.type_ids for e in encs]}
        return self.model(enc)

    def predict(self, texts: list) -> np.ndarray:
        """(N,) label ids."""
        return self.logits(texts).argmax(-1)
