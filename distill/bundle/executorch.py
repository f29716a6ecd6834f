"""ExecuTorch export of a student: a .pte program for the XNNPACK backend, at a fixed batch."""

from __future__ import annotations

from pathlib import Path

from distill.bundle.trace import example_inputs, length_limit, quiet


def export_executorch(model, path: Path, *, pair: bool, max_length: int, batch_size: int) -> dict:
    """model.pte for the XNNPACK backend, fixed batch; returns whether the length is dynamic."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    limit = length_limit(model, max_length)
    # ExecuTorch unrolls nn.LSTM over the example's length: an LSTM student takes exactly max_length
    fixed_length = any(isinstance(m, torch.nn.LSTM) for m in model.modules()) or limit < 2
    example_len = limit if fixed_length else min(8, limit)
    ids, mask = example_inputs(pair, batch_size, example_len, model.config.vocab_size)
    dims = {} if fixed_length else {2 if pair else 1: torch.export.Dim("length", min=1, max=limit)}
    with quiet(), torch.inference_mode(False):
        ep = torch.export.export(model, (ids, mask), dynamic_shapes={"input_ids": dims,
                                                                     "attention_mask": dims})
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(program.buffer)
    return {"fixed_length": fixed_length, "length_limit": limit}
