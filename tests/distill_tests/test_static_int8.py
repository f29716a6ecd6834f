"""The CNN's static int8 (distill.bundle.onnx, policy.STATIC), single texts and pairs, plain and with context
layers: a padded batch gives each row exactly what it gets alone, and the logits stay near the student's."""

import importlib.util

import numpy as np
import pytest
import torch
from onnx_helpers import right_padded

from students import build_student

HAS_ORT = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
pytestmark = pytest.mark.skipif(not HAS_ORT, reason="needs the onnx extra (pip install -e '.[onnx]'); CI installs it")
torch.set_num_threads(1)

VOCAB, T = 80, 12


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("context", [0, 2])
def test_static_int8_is_batch_independent_and_close(pair, context, tmp_path):
    import onnxruntime as ort

    from distill.bundle.onnx import export_onnx, quantize_onnx

    torch.manual_seed(context + int(pair))
    model = build_student("cnn", vocab_size=VOCAB, num_labels=3, pair=pair, embed_dim=16, width=12, depth=2,
                          context_layers=context).eval()
    export_onnx(model, tmp_path / "m.onnx", pair=pair, max_length=T)
    ids, mask = right_padded([T, 1, 6, 0, 4], pair, VOCAB, T, seed=1)
    lengths = [max(1, int(m.reshape(-1, T).sum(-1).max())) for m in mask]
    # calibrated on these rows, each alone: their activations are inside the scales' range
    calibration = [(ids[i:i + 1, ..., :n], mask[i:i + 1, ..., :n]) for i, n in enumerate(lengths)]
    quantize_onnx(tmp_path / "m.onnx", tmp_path / "m8.onnx", "cnn", calibration=calibration)
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.log_severity_level = 1, 3
    s = ort.InferenceSession(str(tmp_path / "m8.onnx"), o, providers=["CPUExecutionProvider"])
    batch = s.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    for i, n in enumerate(lengths):
        alone = s.run(["logits"], {"input_ids": ids[i:i + 1, ..., :n], "attention_mask": mask[i:i + 1, ..., :n]})[0]
        np.testing.assert_array_equal(alone[0], batch[i])  # integer arithmetic, fixed scales: bit for bit
    with torch.inference_mode():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    scale = np.abs(want).max()
    assert np.abs(batch - want).max() <= 0.05 * scale  # int8: near the student, not equal
