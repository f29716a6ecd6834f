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


# a teacher within this much of the majority-class baseline has learned (next to) nothing
LEARNED_NOTHING_MARGIN = {"accuracy": 0.02, "f1": 0.02, "mcc": 0.05}
ONE_CLASS_SHARE = 0.95  # a model giving one class more than this share of its predictions


def majority_baseline(name: str, gold: np.ndarray, train_labels: np.ndarray | None = None) -> float:
    """The metric of always predicting the most frequent class (of `train_labels` if given, else of `gold`);
    rows without a gold label (-1) are left out."""
    gold = np.asarray(gold)
    gold = gold[gold >= 0]
    source = np.asarray(train_labels) if train_labels is not None else gold
    source = source[source >= 0]
    if len(gold) == 0 or len(source) == 0:
        return 0.0
    majority = int(np.bincount(source).argmax())
    return compute_metric(name, np.full(len(gold), majority), gold)


def fmt(name: str, value: float | None) -> str:
    """A metric value in its own convention: accuracy and F1 as percentages (85.32%), MCC as a coefficient
    (0.105); None as a dash."""
    if value is None:
        return "—"
    return f"{value:.3f}" if name == "mcc" else f"{100 * value:.2f}%"


def learned_nothing(name: str, metric: float, pred: np.ndarray, gold: np.ndarray,
                    train_labels: np.ndarray | None = None, label_names=None) -> str | None:
    """Why a model seems to have learned nothing, or None: its metric is at or below the majority-class
    baseline plus a margin (2 points of accuracy or F1, 0.05 MCC), or one class takes more than 95% of its
    predictions."""
    base = majority_baseline(name, gold, train_labels)
    problems = []
    if metric <= base + LEARNED_NOTHING_MARGIN[name]:
        m = LEARNED_NOTHING_MARGIN[name]
        margin = f"{m:g}" if name == "mcc" else f"{100 * m:g} points"
        problems.append(f"its dev {name} {fmt(name, metric)} is not {margin} above always predicting the "
                        f"majority class ({fmt(name, base)})")
    pred = np.asarray(pred)
    if len(pred):
        counts = np.bincount(pred)
        top = int(counts.argmax())
        share = counts[top] / len(pred)
        if share > ONE_CLASS_SHARE:
            label = label_names[top] if label_names is not None and top < len(label_names) else str(top)
            problems.append(f"it predicts '{label}' for {100 * share:.1f}% of the dev rows")
    return "; ".join(problems) or None
