"""Training only the rows of the token table that the training data uses.

    with used_rows_only(model, train.tokens, weight_decay):
        train_loop(model, ...)

A token that never occurs in the training rows gets no gradient, so with no weight decay its row
never changes: AdamW's moments stay zero, and so does its update. A dense table still pays for every
row on every step: backward fills a zeroed (V, d) gradient, clipping reads and rescales it, AdamW
updates it. SST-2 with its 2 augmented copies uses 11,572 of BERT's 30,522 tokens, and the table is
most of a student's parameters (all but 0.4M of the CNN's 9.5M).

Inside the context, `model.embedding` trains a (K, d) copy of the K used rows. The full table stays
the module's `weight`: it is what `state_dict()` holds (so checkpoints, the best weights and the
saved student are unchanged in form), what evaluation reads, and it is written from the copy before
either reads it. On exit the model has its own table back. The training is the same algorithm:
the same gradients, summed in the same order, and the same AdamW updates. It is not the same to the
last bit: the clipping norm sums the same squares in another order (fewer zeros), so the scale
differs in its last bits, and over thousands of steps that rounding grows like any other (the default
SST-2 BiLSTM after 300 steps: weights within 6e-5 of the dense run, the same dev accuracy).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from distill.data.vocab import token_counts

# Below this share of rows used, the copy is worth it; a table that is mostly used is left alone.
MAX_USED_SHARE = 0.8


class UsedRows(nn.Module):
    """A token table that trains only `rows` (sorted ids); state_dict() holds the whole (V, d) table.

    Train-mode forward (with grad) looks ids up in the (K, d) copy; any other forward reads the
    full table, written from the copy first (a copy of K rows: milliseconds, once per evaluation
    batch; fused AdamW updates in place without bumping a version counter, so there is no cheap
    way to tell whether the copy changed)."""

    def __init__(self, table: nn.Embedding, rows: torch.Tensor):
        super().__init__()
        self.padding_idx = table.padding_idx
        self.weight = table.weight  # the same Parameter: no copy of the full table
        self.weight.requires_grad_(False)
        self.register_buffer("rows", rows.to(self.weight.device), persistent=False)
        slot = torch.full((table.num_embeddings,), -1, dtype=torch.long, device=self.weight.device)
        slot[self.rows] = torch.arange(len(rows), device=self.weight.device)
        self.register_buffer("slot", slot, persistent=False)  # token id -> row of the copy
        self.compact = nn.Parameter(self.weight.detach()[self.rows].clone())
        self.compact_padding_idx = None if self.padding_idx is None else int(slot[self.padding_idx])

    def sync(self) -> None:
        """Write the trained rows into the full table."""
        with torch.no_grad():
            self.weight.index_copy_(0, self.rows, self.compact.detach())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            return F.embedding(self.slot[input_ids], self.compact, self.compact_padding_idx)
        self.sync()
        return F.embedding(input_ids, self.weight, self.padding_idx)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.sync()
        destination[prefix + "weight"] = self.weight if keep_vars else self.weight.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        full = state_dict.get(prefix + "weight")
        if full is not None:  # a resumed checkpoint holds the full table: the copy is cut from it
            state_dict[prefix + "compact"] = full[self.rows.to(full.device)]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def used_rows(tokens: np.ndarray, vocab_size: int, pad_id: int | None) -> np.ndarray:
    """The sorted token ids that occur in `tokens`, with the pad id (every padded batch has it)."""
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got {tokens.min()}..{tokens.max()}")
    used = token_counts(tokens, vocab_size) > 0
    if pad_id is not None:
        used[pad_id] = True
    return np.flatnonzero(used).astype(np.int64)


def can_compact(table: nn.Module, weight_decay: float) -> bool:
    """True where rows without gradient cannot change: a plain, trained table and no weight decay."""
    return (type(table) is nn.Embedding and table.weight.requires_grad and weight_decay == 0
            and "forward" not in table.__dict__  # a 4-bit table (table4.attach) reads its own forward
            and table.max_norm is None and not table.scale_grad_by_freq and not table.sparse)


@contextmanager
def used_rows_only(model: nn.Module, tokens: np.ndarray, weight_decay: float):
    """Train only the rows of `model.embedding` that `tokens` uses (see the module docstring).

    Does nothing for a model without such a table, a table it cannot shrink exactly, or one whose
    rows are mostly used."""
    table = getattr(model, "embedding", None)
    if table is None or not can_compact(table, weight_decay):
        yield
        return
    rows = used_rows(tokens, table.num_embeddings, table.padding_idx)
    if len(rows) > MAX_USED_SHARE * table.num_embeddings:
        yield
        return
    wrapper = UsedRows(table, torch.from_numpy(rows))
    model.embedding = wrapper
    try:
        yield
    finally:
        wrapper.sync()
        table.weight.requires_grad_(True)
        model.embedding = table
