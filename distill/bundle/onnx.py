"""ONNX export of a student and ONNX Runtime dynamic int8.

The CNN and the transformer are traced (torch.export, then the dynamo ONNX exporter); the BiLSTM's graph is
written from its weights (distill.bundle.onnx_bilstm: one bidirectional LSTM node per layer)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from distill.bundle.policy import DEFAULT_INT8_OPS, INT8_OPS, TABLE4_BLOCK, TABLE4_SYMMETRIC
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


def quantize_onnx(src: Path, dst: Path, student: str, table_bits: int = 8) -> list[str]:
    """Dynamic int8 (weights int8, activations quantized on the fly) of the chosen op types; with
    table_bits=4 the embedding table (Gather) is stored blockwise at 4 bits instead (policy.TABLE4_BLOCK).
    Returns what was quantized."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    # The dynamo exporter annotates intermediate shapes (value_info) that ORT's quantizer's shape
    # inference then rejects; the quantizer infers what it needs without them.
    del model.graph.value_info[:]
    ops = list(INT8_OPS.get(student, DEFAULT_INT8_OPS))
    int8_ops = [o for o in ops if not (table_bits == 4 and o == "Gather")]
    with quiet():
        quantize_dynamic(model, str(dst), op_types_to_quantize=int8_ops, weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
    if table_bits == 4:
        _table_to_4_bits(dst)
        return [f"Gather (4-bit, blocks of {TABLE4_BLOCK}: GatherBlockQuantized)", *int8_ops]
    return ops


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
