"""The BiLSTM student's ONNX graph, written from its weights: one bidirectional LSTM node per layer.

    onnx.save(bilstm_graph(model), "model.onnx")   # what export_onnx writes for a BiLSTM

The PyTorch student builds its backward direction by hand (reverse each row within its length, run a
forward LSTM, reverse back), and the traced export keeps that: about 40 small nodes of index arithmetic
around its two LSTM nodes (74 nodes in int8), a fifth of an int8 call on one core. ONNX's LSTM op does the same thing
itself: `direction="bidirectional"` with `sequence_lens` (each row's number of real tokens) runs the
backward direction over each row's own length. So this graph is the embedding lookup, one LSTM node
per layer, the masked max over time and the head: the same function (the export's parity check holds
it to 1e-4 of the PyTorch student on the dev rows), in 32 nodes once quantized.
"""

from __future__ import annotations

import numpy as np

from students.bilstm import BiLSTM

IR_VERSION, OPSET = 10, 20  # what the traced export (torch.onnx, dynamo) writes today


def _gates(w: np.ndarray) -> np.ndarray:
    """PyTorch's gate blocks (input, forget, cell, output) in ONNX's order (input, output, forget, cell)."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def _np(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _lstm_weights(fwd, bwd) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (2, 4H, in), R (2, 4H, H), B (2, 8H) of one layer's two directions (nn.LSTM, one layer each)."""
    W = np.stack([_gates(_np(m.weight_ih_l0)) for m in (fwd, bwd)])
    R = np.stack([_gates(_np(m.weight_hh_l0)) for m in (fwd, bwd)])
    B = np.stack([np.concatenate([_gates(_np(m.bias_ih_l0)), _gates(_np(m.bias_hh_l0))]) for m in (fwd, bwd)])
    return W, R, B


class _Graph:
    """Nodes and initializers, with fresh names."""

    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def const(self, value, name: str | None = None) -> str:
        from onnx import numpy_helper

        self._n += 1
        name = name or f"c{self._n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None, **attrs) -> str | list[str]:
        from onnx import helper

        self._n += 1
        names = [name] if name else [f"{op_type.lower()}{self._n}" + (f"_{k}" if outputs > 1 else "")
                                     for k in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def bilstm_graph(model: BiLSTM):
    """The onnx.ModelProto of a BiLSTM student: inputs input_ids and attention_mask (int64, (batch, length),
    or (batch, 2, length) for pairs, right-padded), output logits (float32, (batch, labels))."""
    from onnx import TensorProto, helper

    cfg = model.config
    g = _Graph()
    H = cfg.hidden
    one, minus_one = g.const(np.array([1], np.int64)), g.const(np.array([-1], np.int64))
    ids, mask = "input_ids", "attention_mask"
    if cfg.pair:  # siamese: (B, 2, T) -> (2B, T), rows alternate first and second side
        ids, mask = g.op("Flatten", ids, axis=2), g.op("Flatten", mask, axis=2)

    emb = model.embedding
    if hasattr(emb, "lookup"):  # LowRankEmbedding: a (V, r) lookup, then a (r, d) projection
        x = g.op("Gather", g.const(_np(emb.lookup.weight), "embedding.lookup.weight"), ids)
        x = g.op("MatMul", x, g.const(_np(emb.proj.weight).T.copy(), "embedding.proj.weight"))
    else:
        x = g.op("Gather", g.const(_np(emb.weight), "embedding.weight"), ids)  # (B, T, E)

    lengths = g.op("ReduceSum", mask, one, keepdims=0)  # (B,) real tokens per row
    # a row with no real token runs over one step, then its output is replaced by zeros below
    steps = g.op("Cast", g.op("Max", lengths, g.const(np.array(1, np.int64))), to=TensorProto.INT32)
    x = g.op("Transpose", x, perm=[1, 0, 2])  # (T, B, E): ONNX's LSTM layout
    width = g.const(np.array([0, 0, 2 * H], np.int64))
    for i, (fwd, bwd) in enumerate(zip(model.fwd, model.bwd)):
        W, R, B = _lstm_weights(fwd, bwd)
        y = g.op("LSTM", x, g.const(W, f"lstm{i}.W"), g.const(R, f"lstm{i}.R"), g.const(B, f"lstm{i}.B"), steps,
                 direction="bidirectional", hidden_size=H)  # (T, 2, B, H)
        x = g.op("Reshape", g.op("Transpose", y, perm=[0, 2, 1, 3]), width)  # (T, B, 2H): [forward, backward]
    h = g.op("Transpose", x, perm=[1, 0, 2])  # (B, T, 2H)

    keep = g.op("Unsqueeze", g.op("Cast", mask, to=TensorProto.BOOL), minus_one)  # (B, T, 1)
    lowest = g.const(np.array(np.finfo(np.float32).min, np.float32))
    pooled = g.op("ReduceMax", g.op("Where", keep, h, lowest), one, keepdims=0)  # (B, 2H)
    has_token = g.op("Unsqueeze", g.op("Greater", lengths, g.const(np.array(0, np.int64))), minus_one)
    feats = g.op("Where", has_token, pooled, g.const(np.array(0.0, np.float32)))
    if cfg.pair:  # [a, b, a*b, |a - b|] (students.layers.combine_pair)
        feats = g.op("Reshape", feats, g.const(np.array([-1, 4 * H], np.int64)))  # (B, [a, b])
        a, b = g.op("Split", feats, g.const(np.array([2 * H, 2 * H], np.int64)), axis=1, outputs=2)
        feats = g.op("Concat", a, b, g.op("Mul", a, b), g.op("Abs", g.op("Sub", a, b)), axis=1)

    def linear(v, layer, name, out=None):
        w = g.const(_np(layer.weight).T.copy(), f"{name}.weight")
        return g.op("Add", g.op("MatMul", v, w), g.const(_np(layer.bias), f"{name}.bias"), name=out)

    hidden = g.op("Relu", linear(feats, model.head.fc, "head.fc"))
    linear(hidden, model.head.out, "head.out", out="logits")

    shape = ["batch", 2, "length"] if cfg.pair else ["batch", "length"]
    graph = helper.make_graph(
        g.nodes, "bilstm",
        [helper.make_tensor_value_info(n, TensorProto.INT64, shape) for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", cfg.num_labels])],
        initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                             producer_name="distill-workbench")
