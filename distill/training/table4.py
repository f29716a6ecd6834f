"""Training an embedding table for a 4-bit export (`distill.train --table-bits 4`).

`distill.export --quantize int8 --table-bits 4` stores each table row in blocks of TABLE4_BLOCK values,
each block as 4-bit integers times one fp32 scale (ONNX Runtime's symmetric round-to-nearest: the scale
is the block's largest-magnitude value over -8, values rounded half to even and clipped to [-8, 7]).
Rounding a table that was trained in float flips about 1% of a BiLSTM's labels. Training through the
same rounding (straight-through: the forward pass reads the rounded table, the gradient updates the
float one) lets the rest of the student adapt to it; `snap` then writes the rounded table into the
weights, so the saved student is on the export's grid and the export rounds nothing away.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

from distill.bundle.policy import TABLE4_BLOCK


def on_grid(weight: torch.Tensor, block: int = TABLE4_BLOCK) -> torch.Tensor:
    """The table as the 4-bit export stores it, dequantized: the same shape and dtype."""
    parts = []
    for start in range(0, weight.shape[1], block):
        data = weight[:, start:start + block]
        hi, lo = data.amax(1, keepdim=True), data.amin(1, keepdim=True)
        scale = torch.where(hi.abs() > lo.abs(), hi, lo) / -8.0
        q = torch.where(scale == 0, torch.zeros_like(data), data / scale).round().clamp(-8, 7)
        parts.append(q * scale)
    return torch.cat(parts, 1)


def _forward(module: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    w = module.weight
    table = w + (on_grid(w.detach()) - w.detach())  # straight-through: rounded forward, float gradient
    return F.embedding(ids, table, module.padding_idx, module.max_norm, module.norm_type,
                       module.scale_grad_by_freq, module.sparse)


def attach(model: torch.nn.Module) -> int:
    """Make every embedding table of the model read its 4-bit rounding; returns how many there are."""
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    for m in tables:
        m.forward = types.MethodType(_forward, m)
    return len(tables)


@torch.no_grad()
def snap(model: torch.nn.Module) -> None:
    """Write each table's rounding into its weights and restore the plain forward (the same outputs)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            m.weight.copy_(on_grid(m.weight))
            m.__dict__.pop("forward", None)
