"""Tiny transformer student: a small encoder (1 to 4 layers) with learned positions, masked mean
pooling and an MLP head.

Two layouts: pre-norm (the default when it starts from random weights: LayerNorm before each
sublayer and once at the end), or BERT's post-norm (`norm="post"`: LayerNorm on the embeddings and
after each residual), the layout a student needs to start from its teacher's bottom layers
(`distill.train --encoder-init teacher`, see distill/training/teacher_init.py).

The block is written out with F.scaled_dot_product_attention and a boolean key-padding mask
(no nn.TransformerEncoder fast path, no nested tensors) so it exports cleanly. Real positions
attend only to real keys, so right padding does not change the prediction.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from students.layers import (
    MLPHead,
    Student,
    check,
    check_common,
    check_rank,
    masked_mean_pool,
)


@dataclass
class TinyTransformerConfig:
    vocab_size: int
    num_labels: int
    pad_id: int = 0
    pair: bool = False  # siamese: inputs (B, 2, T), features [a, b, a*b, |a-b|]
    embed_dim: int | None = None  # token table width; None: d_model, else projected to d_model
    d_model: int = 256
    layers: int = 2
    heads: int = 4
    ff_dim: int | None = None  # None: 4 * d_model
    max_len: int = 512
    mlp_hidden: int | None = None  # None: d_model
    dropout: float = 0.1
    embedding_rank: int = 0  # 0: full (V, embed_dim) table; r: two factors (V, r) (r, embed_dim)
    norm: str = "pre"  # "pre": LayerNorm before each sublayer; "post": BERT's, after each residual
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        check_common(self.vocab_size, self.num_labels, self.pad_id, self.dropout, self.pair)
        check(self.d_model >= 1, "d_model", f"must be >= 1, got {self.d_model}")
        check(1 <= self.layers <= 4, "layers", f"must be in 1..4, got {self.layers}")
        check(self.heads >= 1, "heads", f"must be >= 1, got {self.heads}")
        check(
            self.d_model % self.heads == 0,
            "d_model",
            f"must be divisible by heads={self.heads}, got {self.d_model}",
        )
        check(self.max_len >= 1, "max_len", f"must be >= 1, got {self.max_len}")
        check(self.norm in ("pre", "post"), "norm", f"must be 'pre' or 'post', got {self.norm!r}")
        check(self.layer_norm_eps > 0, "layer_norm_eps", f"must be > 0, got {self.layer_norm_eps}")
        # resolve the defaults now so the saved config says what was built
        if self.embed_dim is None:
            self.embed_dim = self.d_model
        if self.ff_dim is None:
            self.ff_dim = 4 * self.d_model
        if self.mlp_hidden is None:
            self.mlp_hidden = self.d_model
        check(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        check_rank(self.embedding_rank, self.embed_dim)
        check(self.ff_dim >= 1, "ff_dim", f"must be >= 1, got {self.ff_dim}")
        check(self.mlp_hidden >= 1, "mlp_hidden", f"must be >= 1, got {self.mlp_hidden}")

    @staticmethod
    def knobs(width: int | None, depth: int | None) -> dict:
        """Map the shared knobs onto fields: width = d_model, depth = layers."""
        return {k: v for k, v in (("d_model", width), ("layers", depth)) if v is not None}


class SelfAttention(nn.Module):
    """Multi-head self-attention with a boolean key-padding mask."""

    def __init__(self, config: TinyTransformerConfig):
        super().__init__()
        self.heads = config.heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), key_ok (B, 1, 1, T) True where a key may be attended -> (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok, dropout_p=p)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Encoder block. Pre-norm: x + attn(ln1(x)), then x + mlp(ln2(x)). Post-norm (BERT):
    ln1(x + attn(x)), then ln2(x + mlp(x))."""

    def __init__(self, config: TinyTransformerConfig):
        super().__init__()
        self.post = config.norm == "post"
        self.ln1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.ff_dim),
            nn.GELU(),
            nn.Linear(config.ff_dim, config.d_model),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        if self.post:
            x = self.ln1(x + self.drop(self.attn(x, key_ok)))
            return self.ln2(x + self.drop(self.mlp(x)))
        x = x + self.drop(self.attn(self.ln1(x), key_ok))
        return x + self.drop(self.mlp(self.ln2(x)))


class TinyTransformer(Student):
    """Small transformer classifier (pre- or post-norm); forward(input_ids, attention_mask) -> logits."""

    config_class = TinyTransformerConfig

    def __init__(self, config: TinyTransformerConfig):
        super().__init__(config)
        # factorised embedding (ALBERT-style) only when the table is narrower/wider than the model
        if config.embed_dim != config.d_model:
            self.embed_proj = nn.Linear(config.embed_dim, config.d_model)
        else:
            self.embed_proj = nn.Identity()
        self.pos_embedding = nn.Embedding(config.max_len, config.d_model)
        post = config.norm == "post"  # BERT normalises the embeddings, and each block's output
        self.ln_embed = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if post else nn.Identity()
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_f = nn.Identity() if post else nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        feat = config.d_model * (4 if config.pair else 1)
        self.head = MLPHead(feat, config.mlp_hidden, config.num_labels, config.dropout)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (B, d_model) from right-padded (B, T) inputs."""
        T = input_ids.shape[1]
        if T > self.config.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len={self.config.max_len}")
        mask = attention_mask.bool()  # (B, T)
        pos = torch.arange(T, device=input_ids.device)
        x = self.embed_proj(self.embedding(input_ids)) + self.pos_embedding(pos)  # (B, T, C)
        x = self.drop(self.ln_embed(x))
        # a row with no real token would softmax over nothing (NaN); let it attend everywhere,
        # its output is dropped by the masked mean anyway
        key_ok = mask | ~mask.any(dim=1, keepdim=True)  # (B, T)
        key_ok = key_ok[:, None, None, :]  # (B, 1, 1, T), broadcast over heads and queries
        for block in self.blocks:
            x = block(x, key_ok)
        return masked_mean_pool(self.ln_f(x), mask)  # (B, C)

    def embedding_tables(self) -> list[nn.Parameter]:
        """The token and positional tables."""
        return [*self.embedding.parameters(), self.pos_embedding.weight]
