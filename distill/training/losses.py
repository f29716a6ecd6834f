"""Distillation losses, as pure functions of logits.

    total = alpha * CE(student, gold) + (1 - alpha) * D(student, teacher)

with D one of
    mse:  mean over batch and classes of (z_s - z_t)^2                    (Tang et al. 2019)
    kl:   T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), batch mean      (Hinton et al. 2015)

The T^2 factor keeps the gradient scale of the soft term roughly independent of T. `alpha = 1`
trains on gold labels alone: the no-distillation baseline. Rows without a gold label (label -1,
e.g. augmented or unlabeled transfer text) contribute to the distillation term only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("mse", "kl")


def mse_logits(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between logits (B, C)."""
    return F.mse_loss(student, teacher)


def kl_with_temperature(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(p_teacher^T || p_student^T), averaged over the batch."""
    t = temperature
    log_p_s = F.log_softmax(student / t, dim=-1)
    log_p_t = F.log_softmax(teacher / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * t * t


def gold_cross_entropy(student: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on rows that have a gold label (label >= 0); 0 if none do."""
    has = labels >= 0
    if not has.any():
        return student.sum() * 0.0
    return F.cross_entropy(student[has], labels[has])


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
    kind: str = "mse", alpha: float = 0.0, temperature: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The mixed loss and its terms: {"loss", "distill", "gold"}."""
    if kind == "mse":
        soft = mse_logits(student, teacher)
    elif kind == "kl":
        soft = kl_with_temperature(student, teacher, temperature)
    else:
        raise ValueError(f"unknown loss '{kind}'; choose one of: {', '.join(LOSSES)}")
    gold = gold_cross_entropy(student, labels)
    if alpha >= 1.0:
        total = gold
    elif alpha <= 0.0:
        total = soft
    else:
        total = alpha * gold + (1.0 - alpha) * soft
    return {"loss": total, "distill": soft.detach(), "gold": gold.detach()}
