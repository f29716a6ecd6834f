"""Inputs for the ONNX graph tests: right-padded random rows as the bundles take them."""

import numpy as np


def right_padded(lengths: list[int], pair: bool, vocab: int, width: int, seed: int = 0):
    """(input_ids, attention_mask), int64, (N, width) or for pairs (N, 2, width): random ids in [1, vocab) over
    each row's first lengths[i] positions, the rest padding (0); a pair's second side takes the lengths reversed."""
    g = np.random.default_rng(seed)

    def side(lens):
        ids, mask = np.zeros((len(lens), width), np.int64), np.zeros((len(lens), width), np.int64)
        for i, n in enumerate(lens):
            ids[i, :n], mask[i, :n] = g.integers(1, vocab, n), 1
        return ids, mask

    if not pair:
        return side(lengths)
    (a, am), (b, bm) = side(lengths), side(lengths[::-1])
    return np.stack([a, b], 1), np.stack([am, bm], 1)
