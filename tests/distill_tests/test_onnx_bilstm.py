"""The BiLSTM's ONNX graph written from its weights (distill.bundle.onnx_bilstm) computes what the PyTorch student
does: single texts and pairs, one and two layers, full and factored tables, padded batches with rows of every
length (an empty row included), before and after int8."""

import importlib.util

import numpy as np
import pytest
import torch
from onnx_helpers import right_padded

from students import build_student

HAS_ORT = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))
pytestmark = pytest.mark.skipif(not HAS_ORT, reason="needs the onnx extra (pip install -e '.[onnx]'); CI installs it")
torch.set_num_threads(1)

VOCAB, T = 60, 9


def batch(pair: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded rows of lengths T, 1, 0 (no real token) and 5; the second side of a pair reversed."""
    return right_padded([T, 1, 0, 5], pair, VOCAB, T, seed)


def session(model_proto):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.log_severity_level = 1, 3
    return ort.InferenceSession(model_proto.SerializeToString(), o, providers=["CPUExecutionProvider"])


def tiny(pair: bool, layers: int, rank: int):
    torch.manual_seed(layers + 2 * rank + int(pair))
    return build_student("bilstm", vocab_size=VOCAB, num_labels=3, pair=pair, embed_dim=8, width=6, depth=layers,
                         mlp_hidden=10, embedding_rank=rank).eval()


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("rank", [0, 3])
def test_the_written_graph_computes_the_student(pair, layers, rank):
    from distill.bundle.onnx_bilstm import bilstm_graph

    model = tiny(pair, layers, rank)
    graph = bilstm_graph(model)
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("LSTM") == layers  # one bidirectional node a layer
    assert "GatherElements" not in ops  # no reversal by index: sequence_lens does it
    ids, mask = batch(pair)
    with torch.inference_mode():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    got = session(graph).run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # a row alone, at its own length, gets what it gets in the padded batch
    n = int(mask[3].reshape(-1, T).sum(-1).max())
    alone = session(graph).run(["logits"], {"input_ids": ids[3:4, ..., :n], "attention_mask": mask[3:4, ..., :n]})[0]
    np.testing.assert_allclose(alone[0], got[3], atol=1e-5, rtol=0)


def test_the_int8_graph_quantizes_the_lstm_and_keeps_the_labels(tmp_path):
    import onnx

    from distill.bundle.onnx import export_onnx, quantize_onnx

    model = tiny(False, 1, 0)
    export_onnx(model, tmp_path / "m.onnx", pair=False, max_length=T)
    quantize_onnx(tmp_path / "m.onnx", tmp_path / "m8.onnx", "bilstm")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m8.onnx")).graph.node]
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops
    ids, mask = batch(False, seed=1)
    rows = [(ids[i:i + 1, :max(1, int(mask[i].sum()))], mask[i:i + 1, :max(1, int(mask[i].sum()))]) for i in (0, 1, 3)]
    s8 = session(onnx.load(str(tmp_path / "m8.onnx")))
    with torch.inference_mode():
        for x, m in rows:
            want = model(torch.from_numpy(x), torch.from_numpy(m)).numpy()
            got = s8.run(["logits"], {"input_ids": x, "attention_mask": m})[0]
            assert np.abs(got - want).max() < 0.1  # int8: close, not equal


def test_the_int8_table_has_a_scale_per_row(tmp_path):
    """The exported table is int8 rows times each row's scale (max |row| / 127): every weight within half a step
    of the student's, and the pad row exactly zero."""
    import onnx
    from onnx import numpy_helper

    from distill.bundle.onnx import export_onnx, quantize_onnx

    model = tiny(False, 1, 0)
    export_onnx(model, tmp_path / "m.onnx", pair=False, max_length=T)
    quantize_onnx(tmp_path / "m.onnx", tmp_path / "m8.onnx", "bilstm")
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "m8.onnx")).graph.initializer}
    q, scale = inits["embedding.weight_int8"], inits["embedding.weight_row_scale"]
    table = model.embedding.weight.detach().numpy()
    assert q.dtype == np.int8 and q.shape == table.shape and scale.shape == (VOCAB, 1)
    assert "embedding.weight" not in inits  # the float table is gone
    live = np.abs(table).max(1) > 0
    np.testing.assert_allclose(scale[live, 0], np.abs(table[live]).max(1) / 127, rtol=1e-6)
    assert np.all(np.abs(q * scale - table) <= scale / 2 + 1e-7)
    assert not q[model.config.pad_id].any()
