"""BiLSTM student (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple
Neural Networks"): embedding -> bidirectional LSTM -> max pooling over time -> ReLU MLP -> logits.

The backward direction is built by hand (reverse each row within its own length, run a forward
LSTM, reverse back) instead of pack_padded_sequence, which exports poorly to ONNX / ExecuTorch.
With right padding, pads come after every real token in both directions, so they cannot reach a
real position: predictions do not depend on how much padding a batch has.
"""

from dataclasses import dataclass

import torch
import torch.nn as nn

from students.layers import (
    MLPHead,
    Student,
    check,
    check_common,
    check_rank,
    masked_max_pool,
)


@dataclass
class BiLSTMConfig:
    vocab_size: int
    num_labels: int
    pad_id: int = 0
    pair: bool = False  # siamese: inputs (B, 2, T), features [a, b, a*b, |a-b|]
    embed_dim: int = 300
    hidden: int = 150  # per direction (Tang et al.; 300 scores the same on SST-2 dev and is 1.6x slower to train)
    layers: int = 1
    mlp_hidden: int = 400
    dropout: float = 0.1
    embedding_rank: int = 0  # 0: full (V, embed_dim) table; r: two factors (V, r) (r, embed_dim)

    def __post_init__(self):
        check_common(self.vocab_size, self.num_labels, self.pad_id, self.dropout, self.pair)
        check(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        check_rank(self.embedding_rank, self.embed_dim)
        check(self.hidden >= 1, "hidden", f"must be >= 1, got {self.hidden}")
        check(self.layers >= 1, "layers", f"must be >= 1, got {self.layers}")
        check(self.mlp_hidden >= 1, "mlp_hidden", f"must be >= 1, got {self.mlp_hidden}")

    @staticmethod
    def knobs(width: int | None, depth: int | None) -> dict:
        """Map the shared knobs onto fields: width = hidden per direction, depth = LSTM layers."""
        return {k: v for k, v in (("hidden", width), ("layers", depth)) if v is not None}


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first lengths[b] steps of each row of x (B, T, C); later steps stay in place."""
    T = x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    last = lengths.unsqueeze(1) - 1  # (B, 1)
    idx = torch.where(t <= last, last - t, t)  # (B, T); its own inverse
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class BiLSTM(Student):
    """Tang et al. BiLSTM classifier; forward(input_ids, attention_mask) -> logits."""

    config_class = BiLSTMConfig

    def __init__(self, config: BiLSTMConfig):
        super().__init__(config)
        self.drop = nn.Dropout(config.dropout)
        H = config.hidden
        in_dims = [config.embed_dim] + [2 * H] * (config.layers - 1)
        self.fwd = nn.ModuleList(nn.LSTM(d, H, batch_first=True) for d in in_dims)
        self.bwd = nn.ModuleList(nn.LSTM(d, H, batch_first=True) for d in in_dims)
        feat = 2 * H * (4 if config.pair else 1)
        self.head = MLPHead(feat, config.mlp_hidden, config.num_labels, config.dropout)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (B, 2H) from right-padded input_ids / attention_mask (B, T)."""
        lengths = attention_mask.long().sum(dim=1)  # (B,)
        x = self.drop(self.embedding(input_ids))  # (B, T, E)
        for i, (fwd, bwd) in enumerate(zip(self.fwd, self.bwd)):
            if i > 0:
                x = self.drop(x)
            h_f, _ = fwd(x)  # (B, T, H)
            h_b, _ = bwd(reverse_within_length(x, lengths))  # (B, T, H), in reversed order
            x = torch.cat([h_f, reverse_within_length(h_b, lengths)], dim=-1)  # (B, T, 2H)
        return masked_max_pool(x, attention_mask)  # (B, 2H)
