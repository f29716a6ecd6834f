"""Distilling a student: its batches and loss on the one training loop (`distill.training.engine`).

    result = fit(model, train, dev, FitConfig(epochs=3), metric="accuracy", run_dir=Path("runs/x"))

`fit` never needs the teacher in memory: the teacher's logits come with the encoded rows. The
search runs it for every trial with a shorter config; `distill.train` runs it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distill.data.batching import Encoded, length_bucketed_batches
from distill.data.metrics import compute_metric
from distill.training.engine import LoopConfig, train_loop
from distill.training.losses import distillation_loss
from distill.training.rows import used_rows_only


@dataclass
class FitConfig:
    """Settings of a student's training alone (the search shortens these)."""

    epochs: int = 3
    batch_size: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    loss: str = "mse"
    alpha: float = 0.0
    temperature: float = 2.0
    patience: int = 2
    seed: int = 0
    max_steps: int | None = None
    eval_every: int | None = None  # steps between dev evaluations; None: once an epoch
    eval_batch_size: int = 256
    checkpoint_every_s: float = 60.0
    device: str = "cpu"
    progress: bool = True


@dataclass
class FitResult:
    best_metric: float
    best_epoch: float
    history: list[dict]
    steps: int
    seconds: float


@torch.inference_mode()
def predict(model: torch.nn.Module, data: Encoded, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Student logits (N, C) for a whole split, in length-sorted batches."""
    model.eval()
    out = np.zeros((len(data), data.teacher_logits.shape[1]), dtype=np.float32)
    for idx in length_bucketed_batches(data.lengths, batch_size):
        ids, mask, _, _ = data.batch(idx, device)
        out[idx] = model(ids, mask).float().cpu().numpy()
    return out


def dev_metric(model: torch.nn.Module, dev: Encoded, metric: str, batch_size: int = 256, device: str = "cpu") -> float:
    """The task metric of the student on the rows of `dev` that have a gold label."""
    has = dev.labels >= 0
    logits = predict(model, dev, batch_size, device)
    return compute_metric(metric, logits[has].argmax(1), dev.labels[has])


def fit(model: torch.nn.Module, train: Encoded, dev: Encoded, cfg: FitConfig, metric: str,
        run_dir: Path | None = None, on_epoch=None) -> FitResult:
    """Train `model` on teacher logits (and gold labels when alpha > 0); keep the best dev epoch.

    With `run_dir`: TensorBoard logs in run_dir/tb and a resumable checkpoint in run_dir/checkpoint.
    `on_epoch(epoch, dev_metric)` is called after each evaluation (the search prunes there by raising)."""
    device = cfg.device
    torch.manual_seed(cfg.seed)  # dropout
    model.to(device)
    total = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    if cfg.max_steps:
        total = min(total, cfg.max_steps)

    def step(idx: np.ndarray) -> dict:
        ids, mask, labels, teacher = train.batch(idx, device)
        return distillation_loss(model(ids, mask), teacher, labels, cfg.loss, cfg.alpha, cfg.temperature)

    loop = LoopConfig(total_steps=total, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                      warmup_ratio=cfg.warmup_ratio, grad_clip=cfg.grad_clip, seed=cfg.seed, evals_per_epoch=1,
                      eval_every=cfg.eval_every,
                      patience=cfg.patience, checkpoint_every_s=cfg.checkpoint_every_s, progress=cfg.progress,
                      metric_name=metric)
    with used_rows_only(model, train.tokens, cfg.weight_decay):  # the same training, minus the unused rows' cost
        r = train_loop(model, train.lengths, step,
                       lambda: dev_metric(model, dev, metric, cfg.eval_batch_size, device),
                       loop, run_dir, on_epoch, device)
    return FitResult(r.best_metric, r.best_epoch, r.history, r.steps, r.seconds)
