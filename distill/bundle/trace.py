"""What both exporters share: silencing their chatter, the student's length limit, and example inputs."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress prints, warnings and log lines (errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch", "torchao", "torch.onnx", "torch.export", "onnxscript",
                                              "executorch", "root")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def length_limit(model, max_length: int) -> int:
    """The longest input the student itself can take (the transformer has a position table)."""
    limit = getattr(model.config, "max_len", None)
    return max_length if limit is None else min(max_length, limit)


def example_inputs(pair: bool, batch: int, length: int, vocab_size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    shape = (batch, 2, length) if pair else (batch, length)
    ids = torch.randint(min(2, vocab_size - 1), vocab_size, shape, generator=g)
    return ids, torch.ones_like(ids)
