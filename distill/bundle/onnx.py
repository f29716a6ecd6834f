"""ONNX export of a student and its ONNX Runtime int8 (dynamic, or static for policy.STATIC students).

The CNN and the transformer are traced (torch.export, then the dynamo ONNX exporter); the BiLSTM's graph is
written from its weights (distill.bundle.onnx_bilstm: one bidirectional LSTM node per layer)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from distill.bundle.policy import (
    DEFAULT_INT8_OPS,
    INT8_OPS,
    STATIC,
    STATIC_OPS,
    TABLE4_BLOCK,
    TABLE4_SYMMETRIC,
    per_channel,
)
from distill.bundle.trace import example_inputs, length_limit, quiet
from distill.errors import DistillError


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
    from students.bilstm import BiLSTM

    if isinstance(model, BiLSTM):
        import onnx

        from distill.bundle.onnx_bilstm import bilstm_graph

        onnx.save(bilstm_graph(model), str(path))
        return onnx_shapes(path)
    return export_traced(model, path, pair=pair, max_length=max_length)


def export_traced(model, path: Path, *, pair: bool, max_length: int) -> dict:
    """export_onnx through torch.export and the dynamo ONNX exporter (any student; the BiLSTM's graph then
    keeps its hand-built backward direction: scripts/profile_request.py compares the two)."""
    import torch

    Dim = torch.export.Dim
    limit = length_limit(model, max_length)
    example_len = min(8, limit) if limit >= 2 else 1  # not 1 if it can be: torch.export specialises 1s
    ids, mask = example_inputs(pair, 2, example_len, model.config.vocab_size)
    axis = 2 if pair else 1
    dims = {0: Dim("batch", min=1)}
    if limit >= 2:
        dims[axis] = Dim("length", min=1, max=limit)
    dynamic = {"input_ids": dims, "attention_mask": dims}
    with quiet(), _lstm_as_loop(), torch.inference_mode(False):
        try:
            ep = torch.export.export(model, (ids, mask), dynamic_shapes=dynamic, strict=False)
        except Exception:  # the length specialised (an LSTM without the loop patch): fix it
            dims.pop(axis, None)
            ids, mask = example_inputs(pair, 2, limit, model.config.vocab_size)
            ep = torch.export.export(model, (ids, mask), dynamic_shapes=dynamic, strict=False)
        program = torch.onnx.export(ep, (ids, mask), input_names=["input_ids", "attention_mask"],
                                    output_names=["logits"], dynamo=True, verbose=False, optimize=True)
        _fold_large_constants(program.model)
        program.save(str(path), external_data=False)
    _strip_node_metadata(path)
    return onnx_shapes(path)


def _strip_node_metadata(path: Path) -> None:
    """Drop the exporter's per-node debug metadata (the FX node, its class path and the Python stack
    trace, with this machine's file paths): 40-100 KB a model that ONNX Runtime never reads, and
    bytes that the search's size budget (search.budget.parameter_bytes) does not count."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
    onnx.save(model, str(path))


def _fold_large_constants(model) -> None:
    """Fold what depends on weights alone, however large. The exporter's optimizer stops at 262,144
    elements, which leaves the BiLSTM's gate reordering (Slice/Concat of each 4H x E weight, 1200x300 at hidden 300) in
    the graph: run on every call, and invisible to the int8 quantizer, which only quantizes LSTM
    weights that are initializers (with them: 43 -> 11 MB and 2.8x faster on one core)."""
    try:
        import onnxscript.optimizer

        onnxscript.optimizer.optimize(model, input_size_limit=1 << 26, output_size_limit=1 << 26)
    except TypeError:  # another onnxscript API: keep the exporter's own optimization
        pass


def onnx_shapes(path: Path) -> dict:
    """What the saved graph declares: for each input and output, its dims (int or a name)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in v.type.tensor_type.shape.dim]
    return {"inputs": {v.name: dims(v) for v in graph.input},
            "outputs": {v.name: dims(v) for v in graph.output}}


def quantize_onnx(src: Path, dst: Path, student: str, table_bits: int = 8,
                  calibration: list | None = None) -> list[str]:
    """int8 of the chosen op types (policy.INT8_OPS). For policy.STATIC students, ONNX Runtime's `quantize_static`
    with activation scales calibrated on `calibration` (a list of (input_ids, attention_mask) feeds, one training
    row each); otherwise `quantize_dynamic` for the weights of MatMul and LSTM, one scale per tensor or, for
    policy.PER_CHANNEL, per output channel (activations are quantized on the fly). The embedding tables (Gather)
    by _table_to_int8_rows, a scale per row, or with table_bits=4 at 4 bits in blocks (policy.TABLE4_BLOCK).
    Returns the op types quantized."""
    import onnx

    model = onnx.load(str(src))
    # The dynamo exporter annotates intermediate shapes (value_info) that ORT's quantizer's shape
    # inference then rejects; the quantizer infers what it needs without them.
    del model.graph.value_info[:]
    ops = list(INT8_OPS.get(student, DEFAULT_INT8_OPS))
    if student in STATIC:
        if not calibration:
            raise ValueError(f"the {student} student is quantized statically: pass calibration feeds")
        _quantize_static(model, dst, calibration)
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with quiet():
            quantize_dynamic(model, str(dst), op_types_to_quantize=[o for o in ops if o != "Gather"],
                             weight_type=QuantType.QInt8, per_channel=per_channel(student),
                             extra_options={"MatMulConstBOnly": True})
    if "Gather" in ops:
        (_table_to_4_bits if table_bits == 4 else _table_to_int8_rows)(dst)
    return ops


def _quantize_static(model, dst: Path, calibration: list) -> None:
    """QDQ int8 of the convolutions and matrix products: weights per output channel (QInt8), activations
    (QUInt8) at the min/max that the calibration feeds reach."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.rows = iter({"input_ids": ids, "attention_mask": mask} for ids, mask in calibration)

        def get_next(self):
            return next(self.rows, None)

    with tempfile.TemporaryDirectory() as tmp, quiet():
        src = Path(tmp) / "model.onnx"  # quantize_static calibrates on a copy it augments with outputs
        onnx.save(model, str(src))
        quantize_static(str(src), str(dst), Feeds(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(STATIC_OPS), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)


def _weight_tables(graph) -> list:
    """The Gather nodes that look rows up (axis 0) in a 2-D float initializer that nothing else reads: the
    token, position and type tables."""
    import onnx
    from onnx import helper

    floats = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2}
    readers: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            readers[name] = readers.get(name, 0) + 1
    return [n for n in graph.node if n.op_type == "Gather" and n.input[0] in floats and readers[n.input[0]] == 1
            and next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 0) == 0]


def _table_to_int8_rows(path: Path) -> None:
    """Rewrite each Gather over a float table as a Gather over its int8 rows, times each row's own scale
    (max |row| / 127, symmetric): Gather, Cast, Gather, Mul, all standard ONNX. ONNX Runtime's Gather
    quantization has one scale for the whole table; on the SST-2 transformer started from its teacher (with
    per-channel weights) that agreed with fp32 on 98.97% of dev labels, one scale per row on 99.54-99.66%.
    A few rows of 872 either way: on the teacher itself ORT's per-channel Gather did better (98.51 against
    97.82%). The scales cost 4 bytes a row (search.budget counts them)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    for node in _weight_tables(graph):
        table = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0  # an all-zero row (the pad row) stays zero
        q = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
        name, ids, out = node.input[0], node.input[1], node.output[0]
        graph.initializer.remove(inits[name])
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32), f"{name}_row_scale")])
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for k, new in enumerate([
                helper.make_node("Gather", [f"{name}_int8", ids], [f"{out}_int8"], axis=0),
                helper.make_node("Cast", [f"{out}_int8"], [f"{out}_float"], to=onnx.TensorProto.FLOAT),
                helper.make_node("Gather", [f"{name}_row_scale", ids], [f"{out}_scale"], axis=0),
                helper.make_node("Mul", [f"{out}_float", f"{out}_scale"], [out])]):
            graph.node.insert(at + k, new)
    onnx.save(model, str(path))


def _table_to_4_bits(path: Path) -> None:
    """Rewrite the model's Gather over a weight table as GatherBlockQuantized (4-bit, symmetric)."""
    import logging

    import onnx

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # this module calls logging.basicConfig(level=INFO) when imported: undo that, or its INFO lines print
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    for h in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(h)
    root.setLevel(level)
    config = DefaultWeightOnlyQuantConfig(block_size=TABLE4_BLOCK, is_symmetric=TABLE4_SYMMETRIC, bits=4,
                                          op_types_to_quantize=("Gather",), quant_axes=(("Gather", 1),))
    quantizer = MatMulNBitsQuantizer(onnx.load(str(path)), algo_config=config)
    with quiet():
        quantizer.process()
    if not any(n.op_type == "GatherBlockQuantized" for n in quantizer.model.model.graph.node):
        raise DistillError("--table-bits 4: ONNX Runtime's quantizer found no embedding table to store at "
                           "4 bits in this model; export with --table-bits 8")
    quantizer.model.save_model_to_file(str(path))
