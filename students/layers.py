"""Building blocks shared by two or more students: masked pooling, the pair combiner, the MLP head.

Every student encodes one sentence into a fixed vector with `encode(input_ids, attention_mask)`;
`encode_inputs` runs that encoder on single-sentence inputs (B, T) or on pairs (B, 2, T), so each
student's `forward` stays two lines long.
"""

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn


def masked_max_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over time of h (B, T, C) where mask (B, T) is 1; rows with no real token give zeros."""
    keep = mask.bool().unsqueeze(-1)  # (B, T, 1)
    # the dtype's lowest finite value rather than -inf, so a fully masked row never holds inf/NaN
    pooled = h.masked_fill(~keep, torch.finfo(h.dtype).min).amax(dim=1)  # (B, C)
    return torch.where(keep.any(dim=1), pooled, torch.zeros_like(pooled))


def masked_mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over time of h (B, T, C) where mask (B, T) is 1; rows with no real token give zeros."""
    m = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, C)


def combine_pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """InferSent / Tang et al. pair features: (B, C), (B, C) -> (B, 4C) = [a, b, a*b, |a-b|]."""
    return torch.cat([a, b, a * b, (a - b).abs()], dim=-1)


def encode_inputs(
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pair: bool,
) -> torch.Tensor:
    """Sentence features (B, C) from (B, T) inputs, or pair features (B, 4C) from (B, 2, T)."""
    if not pair:
        if input_ids.dim() != 2:
            raise ValueError(f"expected input_ids of shape (B, T), got {tuple(input_ids.shape)}")
        return encode(input_ids, attention_mask)
    if input_ids.dim() != 3 or input_ids.shape[1] != 2:
        shape = tuple(input_ids.shape)
        raise ValueError(f"pair model expects input_ids of shape (B, 2, T), got {shape}")
    # one encoder call for both sides (siamese): (B, 2, T) -> (2B, T), rows alternate a, b
    feats = encode(input_ids.flatten(0, 1), attention_mask.flatten(0, 1))  # (2B, C)
    feats = feats.unflatten(0, (-1, 2))  # (B, 2, C)
    return combine_pair(feats[:, 0], feats[:, 1])


class Student(nn.Module):
    """What every student shares: forward(input_ids, attention_mask) -> logits through its own
    `encode` (one sentence -> a vector) and `head`, and its parameter count with or without tables.
    Its token table comes first, as config.embedding_rank asks (reset_layers_after_embeddings relies on
    the name `embedding`)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embedding = make_embedding(config.vocab_size, config.embed_dim, config.pad_id, config.embedding_rank)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_labels) from (B, T) inputs, or (B, 2, T) when config.pair."""
        return self.head(encode_inputs(self.encode, input_ids, attention_mask, self.config.pair))

    def embedding_tables(self) -> list[nn.Parameter]:
        """The parameters `num_parameters(exclude_embeddings=True)` leaves out: the token table."""
        return list(self.embedding.parameters())

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameter count, optionally without the embedding tables."""
        return count_parameters(self, self.embedding_tables() if exclude_embeddings else [])


class MLPHead(nn.Module):
    """Classifier head: Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, in_dim: int, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(in_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> logits (B, num_labels)."""
        return self.out(self.drop(torch.relu(self.fc(x))))


class LowRankEmbedding(nn.Module):
    """A token table stored as two factors, E ~ A B: a (V, r) lookup, then a (r, d) projection.

    Made by `distill.compress` from a trained student's table; exports as a Gather and a MatMul,
    so the (V, d) table is never multiplied back out. The pad row of A is zero, so pads embed to 0.
    """

    def __init__(self, vocab_size: int, dim: int, rank: int, pad_id: int):
        super().__init__()
        self.lookup = nn.Embedding(vocab_size, rank, padding_idx=pad_id)  # A
        self.proj = nn.Linear(rank, dim, bias=False)  # B^T

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(…,) ids -> (…, d) vectors."""
        return self.proj(self.lookup(input_ids))


def make_embedding(vocab_size: int, dim: int, pad_id: int, rank: int = 0) -> nn.Module:
    """The student's token table: a plain (V, d) nn.Embedding, or the low-rank pair when rank > 0."""
    if rank:
        return LowRankEmbedding(vocab_size, dim, rank, pad_id)
    return nn.Embedding(vocab_size, dim, padding_idx=pad_id)


def check_rank(rank: int, embed_dim: int) -> None:
    """embedding_rank is 0 (a full table) or a factorisation rank below the embedding size."""
    check(isinstance(rank, int) and 0 <= rank < embed_dim, "embedding_rank",
          f"must be 0 (full table) or in [1, embed_dim={embed_dim}), got {rank!r}")


def count_parameters(module: nn.Module, exclude: Iterable[nn.Parameter] = ()) -> int:
    """Number of parameters in module, leaving out the given ones (e.g. embedding tables)."""
    skip = {id(p) for p in exclude}
    return sum(p.numel() for p in module.parameters() if id(p) not in skip)


def check(ok: bool, field: str, message: str) -> None:
    """Raise ValueError naming the config field when ok is False (used by __post_init__)."""
    if not ok:
        raise ValueError(f"{field}: {message}")


def check_common(vocab_size: int, num_labels: int, pad_id: int, dropout: float, pair: bool) -> None:
    """Validate the fields every student config has."""
    check(vocab_size >= 1, "vocab_size", f"must be >= 1, got {vocab_size}")
    check(num_labels >= 2, "num_labels", f"must be >= 2, got {num_labels}")
    check(
        0 <= pad_id < vocab_size, "pad_id", f"must be in [0, vocab_size={vocab_size}), got {pad_id}"
    )
    check(0.0 <= dropout < 1.0, "dropout", f"must be in [0, 1), got {dropout}")
    check(isinstance(pair, bool), "pair", f"must be a bool, got {pair!r}")
