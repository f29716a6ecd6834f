"""Initial student embedding tables taken from the teacher's word embeddings.

The teacher's table E (V, D_t) is brought down to the student's width d by PCA: centre the rows,
keep the top-d right singular vectors, project. Directions that vary most across the vocabulary
survive; the result is scaled to unit RMS so it matches what a randomly initialised table would
give the student's first layer.
"""

from __future__ import annotations

import torch

INITS = ("auto", "teacher-svd", "random")


def pca_table(table: torch.Tensor, dim: int, seed: int = 0, present: torch.Tensor | None = None) -> torch.Tensor:
    """(V, D_t) -> (V, dim) by PCA, scaled to unit RMS.

    Columns past D_t (if dim > D_t) are small random noise. Rows where `present` is False (the
    label set did not store them) get N(0, 1) rows, the scale of a random table."""
    g = torch.Generator().manual_seed(seed)
    present = torch.ones(table.shape[0], dtype=torch.bool) if present is None else present
    x = table[present].float()
    mean = x.mean(dim=0, keepdim=True)
    x = x - mean
    k = min(dim, x.shape[1])
    # Right singular vectors of the centred table = principal directions. (D_t, D_t) SVD is cheap.
    _, _, vh = torch.linalg.svd(x.T @ x, full_matrices=False)
    proj = x @ vh[:k].T  # (V_present, k)
    proj = proj / proj.pow(2).mean().sqrt().clamp_min(1e-12)
    out = torch.randn(table.shape[0], k, generator=g)
    out[present] = proj
    if dim > k:
        out = torch.cat([out, 0.02 * torch.randn(table.shape[0], dim - k, generator=g)], dim=1)
    return out
