"""Batches: a split's token ids in flat arrays, length-bucketed batch order, and padding.

`pad` is the one padder: student training batches, teacher fine-tuning batches and the bundle
runtime all pad through it. This module needs numpy alone (torch only inside `Encoded.batch` and
`pad_batch`), so the bundle runtime never imports torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def pad(seqs: Sequence[Sequence[int]], pad_id: int, length: int | None = None,
        left: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask), both (N, T) int64: each sequence padded with pad_id to T = length or the longest (>= 1).

    Right padding unless `left`; mask is 1 on real tokens. Sequences longer than `length` must
    have been truncated already."""
    T = length if length is not None else max(1, max((len(s) for s in seqs), default=1))
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), T), dtype=np.int64)
    for i, s in enumerate(seqs):
        n = len(s)
        cols = slice(T - n, T) if left else slice(0, n)
        ids[i, cols] = s
        mask[i, cols] = 1
    return ids, mask


def pad_batch(seqs: list[list[int]] | list[list[list[int]]], pad_id: int, pair: bool):
    """Right-padded (input_ids, attention_mask) torch tensors: (B, T), or (B, 2, T) when seqs[i] is [ids_a, ids_b]."""
    import torch

    flat = [side for row in seqs for side in row] if pair else list(seqs)
    ids, mask = pad(flat, pad_id)
    if pair:
        ids, mask = ids.reshape(len(seqs), 2, -1), mask.reshape(len(seqs), 2, -1)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
    bucket_batches: int = 50,
) -> list[np.ndarray]:
    """Index batches of similar length, so little time is spent on padding.

    Without `rng`: all rows sorted by length (inference). With `rng`: shuffle, sort within chunks
    of `bucket_batches` batches, then shuffle the batch order (training).
    """
    n = len(lengths)
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    chunk = batch_size * bucket_batches
    batches = []
    for start in range(0, n, chunk):
        idx = perm[start : start + chunk]
        idx = idx[np.argsort(-lengths[idx], kind="stable")]
        batches.extend(idx[i : i + batch_size] for i in range(0, len(idx), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def longest_first_batches(tokenizer, texts: list[tuple[str, ...]], max_length: int, batch_size: int,
                          return_tensors: str = "pt"):
    """(row indices, padded encoding) of `texts` (tuples: one text, or a pair) through a Hugging Face
    tokenizer, in batches of similar length, longest first: the teacher's passes over a split."""
    cols = list(zip(*texts))
    lengths = np.asarray([len(x) for x in tokenizer(*cols, truncation=True, max_length=max_length)["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        yield idx, tokenizer(*([c[j] for j in idx] for c in cols), truncation=True, max_length=max_length,
                             padding=True, return_tensors=return_tensors)


@dataclass
class Encoded:
    """A split as token ids in flat arrays, ready to batch (no per-row Python lists).

    Row i, side s (s < sides; a student's sentence pair has 2) holds
    tokens[offsets[i*sides + s] : offsets[i*sides + s + 1]]. `type_ids`, when present, runs beside
    `tokens` (a teacher's token type ids); `teacher_logits` is None where no teacher labelled the rows.
    """

    tokens: np.ndarray  # (total,) int32
    offsets: np.ndarray  # (N * sides + 1,) int64
    labels: np.ndarray  # (N,) int64, -1 = no gold label
    teacher_logits: np.ndarray | None  # (N, C) float32
    pair: bool
    pad_id: int
    type_ids: np.ndarray | None = None  # (total,) int32

    def __post_init__(self) -> None:
        self.sides = 2 if self.pair else 1
        self.side_lengths = np.diff(self.offsets).reshape(-1, self.sides)  # (N, S)
        self.lengths = self.side_lengths.max(axis=1)  # (N,) longest side of each row

    def __len__(self) -> int:
        return len(self.labels)

    def _pieces(self, flat: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
        starts = self.offsets[:-1].reshape(-1, self.sides)[idx].reshape(-1)
        ends = self.offsets[1:].reshape(-1, self.sides)[idx].reshape(-1)
        return [flat[a:b] for a, b in zip(starts, ends)]

    def ids(self, i: int) -> list:
        """Row i's ids: a list (single) or two lists (pair)."""
        out = [p.tolist() for p in self._pieces(self.tokens, np.array([i]))]
        return out if self.pair else out[0]

    def select(self, idx: np.ndarray) -> Encoded:
        """A new Encoded holding rows idx."""
        def gather(flat):
            return None if flat is None else np.concatenate(self._pieces(flat, idx) or [flat[:0]])
        lens = self.side_lengths[idx].reshape(-1)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        logits = None if self.teacher_logits is None else self.teacher_logits[idx]
        return Encoded(gather(self.tokens), offsets, self.labels[idx], logits, self.pair, self.pad_id,
                       gather(self.type_ids))

    def arrays(self, idx: np.ndarray, left: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(input_ids, attention_mask, type_ids or None) of rows idx, padded: (B, T) or (B, 2, T) int64."""
        ids, mask = pad(self._pieces(self.tokens, idx), self.pad_id, left=left)
        types = None if self.type_ids is None else pad(self._pieces(self.type_ids, idx), 0, left=left)[0]
        if self.pair:
            ids, mask = ids.reshape(len(idx), 2, -1), mask.reshape(len(idx), 2, -1)
        return ids, mask, types

    def batch(self, idx: np.ndarray, device: str):
        """(input_ids, attention_mask, labels, teacher logits) torch tensors for rows idx, right-padded."""
        import torch

        ids, mask, _ = self.arrays(idx)
        return (torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device),
                torch.as_tensor(self.labels[idx]).to(device),
                torch.as_tensor(self.teacher_logits[idx]).to(device))


def encode_sequences(sequences: Iterable[list[list[int]]], labels: np.ndarray, logits: np.ndarray | None,
                     pair: bool, pad_id: int, type_ids: Iterable[list[list[int]]] | None = None) -> Encoded:
    """An Encoded from chunks of token id lists, row-major (row 0 side a, row 0 side b, row 1 a, ...)."""
    def flatten(chunks):
        lengths, flat = [], []
        for seqs in chunks:
            lengths.append(np.fromiter((len(x) for x in seqs), dtype=np.int64, count=len(seqs)))
            flat.append(np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32,
                                    count=int(lengths[-1].sum())))
        if not flat:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        return np.concatenate(flat), np.concatenate(lengths)

    tokens, lengths = flatten(sequences)
    types = None if type_ids is None else flatten(type_ids)[0]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    logits = None if logits is None else logits.astype(np.float32)
    return Encoded(tokens, offsets, labels, logits, pair, pad_id, types)
