"""TextCNN student (Kim 2014, "Convolutional Neural Networks for Sentence Classification"):
embedding -> Conv1d of several filter widths with ReLU -> max over time -> dropout -> linear.
With `context_layers` > 0, residual dilated convolutions (width 3, dilation 1, 2, 4, ...; the
ID-CNN of Strubell et al. 2017) first widen what each position sees, so that the filters above
them see up to 2^(L+1) - 1 tokens around each position rather than their own width.

Padding invariance: pad embeddings are zeroed and the convolution is "wide" (k-1 zeros on both
sides), so a right-padded row sees exactly the zeros it would see alone; outputs whose window
holds no real token are masked out of the max. Rows shorter than the widest filter need nothing
special: each width keeps at least one output that overlaps a real token. The context layers
keep the length ("same" padding) and zero the pad positions after each layer, so what a position
sees beyond a row's end is zeros, padded or not.
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
)


@dataclass
class TextCNNConfig:
    vocab_size: int
    num_labels: int
    pad_id: int = 0
    pair: bool = False  # siamese: inputs (B, 2, T), features [a, b, a*b, |a-b|]
    embed_dim: int = 300
    num_filters: int = 100  # feature maps per filter width
    filter_widths: tuple[int, ...] = (3, 4, 5)
    mlp_hidden: int = 0  # 0: Kim's plain dropout + linear; > 0: the shared ReLU MLP head
    dropout: float = 0.2  # Kim used 0.5; on teacher logits 0.2 scores higher (README, student table)
    # residual dilated width-3 convolutions before the filters; 0 is Kim's CNN. 3 (receptive field 15
    # tokens) scores 2.3 points higher on SST-2 dev than 0 at 10,000 steps, at 2.2x the model call (README)
    context_layers: int = 3
    embedding_rank: int = 0  # 0: full (V, embed_dim) table; r: two factors (V, r) (r, embed_dim)

    # a saved config that lacks a field was made before it existed, with this value (not today's default)
    saved_before = {"context_layers": 0}

    def __post_init__(self):
        check_common(self.vocab_size, self.num_labels, self.pad_id, self.dropout, self.pair)
        check(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        check_rank(self.embedding_rank, self.embed_dim)
        check(self.num_filters >= 1, "num_filters", f"must be >= 1, got {self.num_filters}")
        # a JSON round trip turns the tuple into a list
        self.filter_widths = tuple(self.filter_widths)
        check(
            len(self.filter_widths) >= 1
            and all(isinstance(k, int) and k >= 1 for k in self.filter_widths),
            "filter_widths",
            f"must be a non-empty sequence of ints >= 1, got {self.filter_widths}",
        )
        check(self.mlp_hidden >= 0, "mlp_hidden", f"must be >= 0, got {self.mlp_hidden}")
        check(0 <= self.context_layers <= 6, "context_layers", f"must be 0 to 6, got {self.context_layers}")

    @staticmethod
    def knobs(width: int | None, depth: int | None) -> dict:
        """Map the shared knobs: width = feature maps per width, depth = how many widths from 3."""
        out = {}
        if width is not None:
            out["num_filters"] = width
        if depth is not None:
            out["filter_widths"] = tuple(range(3, 3 + depth))
        return out


class TextCNN(Student):
    """Kim 2014 CNN classifier; forward(input_ids, attention_mask) -> logits."""

    config_class = TextCNNConfig

    def __init__(self, config: TextCNNConfig):
        super().__init__(config)
        self.context = nn.ModuleList(
            nn.Conv1d(config.embed_dim, config.embed_dim, 3, padding=2**i, dilation=2**i)
            for i in range(config.context_layers)
        )
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embed_dim, config.num_filters, k, padding=k - 1)
            for k in config.filter_widths
        )
        feat = config.num_filters * len(config.filter_widths) * (4 if config.pair else 1)
        if config.mlp_hidden > 0:
            self.head = MLPHead(feat, config.mlp_hidden, config.num_labels, config.dropout)
        else:
            self.head = nn.Sequential(
                nn.Dropout(config.dropout), nn.Linear(feat, config.num_labels)
            )

    def positions(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """What the filters read, (B, E, T): the embeddings, through the context layers if any."""
        x = self.embedding(input_ids).transpose(1, 2)  # (B, E, T)
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        # zero pads whatever id they carry, so a padded row matches the same row alone
        x = x * keep
        for conv in self.context:
            x = (x + torch.relu(conv(x))) * keep  # same length; pads back to zero
        return x

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (B, F * len(filter_widths)) from right-padded (B, T) inputs."""
        mask = attention_mask.bool()
        lengths = mask.long().sum(dim=1, keepdim=True)  # (B, 1)
        x = self.positions(input_ids, mask)
        pooled = []
        for conv, k in zip(self.convs, self.config.filter_widths):
            h = torch.relu(conv(x))  # (B, F, T + k - 1); output j covers inputs [j-k+1, j]
            j = torch.arange(h.shape[2], device=h.device).unsqueeze(0)  # (1, T + k - 1)
            valid = j < lengths + k - 1  # (B, T + k - 1): window touches a real token
            # max over the valid windows: h >= 0 (ReLU), so zeroing the rest leaves the max alone, and a row
            # with no real token gets zeros (as masked_max_pool would give); fewer graph nodes than a masked fill
            pooled.append((h * valid.unsqueeze(1).to(h.dtype)).amax(dim=2))  # (B, F)
        return torch.cat(pooled, dim=-1)
