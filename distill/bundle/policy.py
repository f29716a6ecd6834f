"""The precision policy of a bundle, one table for the export and for the search's size and latency budgets:
which op types go int8, when an int8 model is kept, and how closely a bundle must match its student.
"""

from __future__ import annotations

FP32_MAX_DIFF = 1e-4  # fp32 bundles: largest allowed |logit difference| from the PyTorch student
INT8_MIN_AGREEMENT = 0.99  # int8 bundles: smallest allowed share of equal labels
# int8 counts as slower when its median is more than this much above fp32's at batch 1 or 32:
# closer than that is a tie within timing noise, and a tie keeps the int8 model (3-4x smaller).
SLOWER_TOLERANCE = 0.03
# ONNX Runtime dynamic int8, per student: the op types whose weights become int8. Gather is the
# embedding table (most of the bytes); convolutions stay float because ConvInteger made TextCNN
# 3 to 6 times slower on x86 CPUs. Gemm (the heads) is rewritten to MatMul by the quantizer.
INT8_OPS = {"bilstm": ("Gather", "LSTM", "MatMul"), "cnn": ("Gather", "MatMul"),
            "transformer": ("Gather", "MatMul")}
DEFAULT_INT8_OPS = ("Gather", "MatMul")
TIMING_BATCHES = (1, 32)
