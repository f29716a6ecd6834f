"""Task metrics: accuracy, binary F1 and Matthews correlation, each a pure function of labels."""

from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float((pred == gold).mean())


def f1_binary(pred: np.ndarray, gold: np.ndarray, positive: int = 1) -> float:
    tp = float(((pred == positive) & (gold == positive)).sum())
    fp = float(((pred == positive) & (gold != positive)).sum())
    fn = float(((pred != positive) & (gold == positive)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def matthews_corrcoef(pred: np.ndarray, gold: np.ndarray) -> float:
    """Multi-class MCC (Gorodkin 2004); equals the binary formula for two classes."""
    k = int(max(pred.max(initial=0), gold.max(initial=0))) + 1
    c = np.zeros((k, k), dtype=np.float64)
    np.add.at(c, (gold, pred), 1)
    t, p, n = c.sum(1), c.sum(0), c.sum()
    cov = np.trace(c) * n - t @ p
    denom = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return 0.0 if denom == 0 else float(cov / denom)


METRIC_FNS = {"accuracy": accuracy, "f1": f1_binary, "mcc": matthews_corrcoef}


def compute_metric(name: str, pred: np.ndarray, gold: np.ndarray) -> float:
    """The task metric of predictions against gold labels."""
    return METRIC_FNS[name](np.asarray(pred), np.asarray(gold))
