"""Checking a bundle against its PyTorch student: parity on dev rows through the bundled tokenizer, and timing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distill.bundle.policy import CALIBRATION_ROWS, STATIC, TIMING_BATCHES
from distill.bundle.runtime import Bundle
from distill.errors import DistillError


@dataclass
class DevRows:
    """The dev rows the parity check runs: texts as tuples of sides, gold labels (-1: none); and training rows
    that calibrate a static int8 model's activation scales (policy.STATIC)."""

    texts: list[tuple[str, ...]]
    labels: np.ndarray
    metric: str
    source: str
    calibration: list[tuple[str, ...]] = field(default_factory=list)


def dev_rows(config: dict, labels_path: str | None, n: int) -> DevRows:
    """Up to n dev rows of the label set the student was trained on (or --labels), seeded."""
    from distill.teacher.labelset import LabelSet

    path = labels_path or config.get("label_set", {}).get("path")
    flag = "--labels" if labels_path else "config.json's label_set.path"
    if not path or not Path(path).is_dir():
        raise DistillError(f"the parity check needs the dev set, but the label set ({flag}: "
                           f"{path}) is not there; pass --labels with the label set the student "
                           "was trained on")
    ls = LabelSet.load(path)
    trained_on = config.get("label_set", {}).get("key")
    if trained_on and ls.key != trained_on:
        if not labels_path:  # the folder was relabelled since: its dev rows are not the student's
            raise DistillError(f"the label set at {path} (config.json's label_set.path) holds other data than "
                               f"the student was trained on (key {ls.key[:12]}, trained on {trained_on[:12]}); "
                               "pass --labels with a label set of the student's task to check parity on")
        print(f"note: --labels {path} is not the label set the student was trained on; parity is checked on "
              "its dev rows")
    dev = ls.splits["dev"]
    want = config.get("task", {}).get("name")
    if want and ls.task.name != want:
        raise DistillError(f"--labels {path} is for task '{ls.task.name}', the student for "
                           f"'{want}'; pass the label set it was trained on")
    idx = np.arange(len(dev.texts))
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(0).choice(len(idx), n, replace=False))
    train = ls.splits["train"].texts
    pick = np.random.default_rng(0).choice(len(train), min(CALIBRATION_ROWS, len(train)), replace=False)
    return DevRows([tuple(dev.texts[i]) for i in idx], np.asarray(dev.labels)[idx],
                   ls.task.metric, Path(ls.path).name,  # a name: the bundle holds no local paths
                   [tuple(train[i]) for i in np.sort(pick)])


def calibration_feeds(bundle_dir: Path, student: str, texts: list) -> list | None:
    """(input_ids, attention_mask) of each text, one row at its own length through the bundle's tokenizer, for a
    policy.STATIC student's calibration; None for the others (nothing to calibrate)."""
    if student not in STATIC:
        return None
    encode = Bundle(bundle_dir).encode
    return [encode([t])[:2] for t in texts]


def bundle_and_student_logits(bundle: Bundle, model, texts: list, batch: int = 64):
    """Logits of the exported model and of the PyTorch student on the same bundled-tokenizer
    inputs, plus each row's real length and whether it was truncated."""
    import torch

    order = np.argsort([sum(len(s) for s in t) for t in texts], kind="stable")  # less padding
    n_cls = len(bundle.labels)
    out_b = np.zeros((len(texts), n_cls), np.float32)
    out_t = np.zeros((len(texts), n_cls), np.float32)
    lengths = np.zeros(len(texts), np.int64)
    truncated = np.zeros(len(texts), bool)
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            idx = order[start:start + batch]
            ids, mask, trunc = bundle.encode([texts[i] for i in idx])
            out_b[idx] = bundle.logits(ids, mask)
            out_t[idx] = model(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
            lengths[idx] = mask.reshape(len(idx), -1, mask.shape[-1]).sum(-1).max(-1)
            truncated[idx] = trunc
    return out_b, out_t, lengths, truncated


def parity(bundle: Bundle, model, rows: DevRows) -> dict:
    """Max |logit difference|, label agreement and the dev metric of bundle and student."""
    from distill.data.metrics import compute_metric

    b, t, lengths, truncated = bundle_and_student_logits(bundle, model, rows.texts)
    has = rows.labels >= 0
    pb, pt = b.argmax(1), t.argmax(1)
    return {
        "rows": len(rows.texts),
        "max_abs_logit_diff": float(np.abs(b - t).max()),
        "label_agreement": float((pb == pt).mean()),
        "metric": rows.metric,
        "bundle_metric": compute_metric(rows.metric, pb[has], rows.labels[has]) if has.any() else None,
        "pytorch_metric": compute_metric(rows.metric, pt[has], rows.labels[has]) if has.any() else None,
        "truncated_rows": int(truncated.sum()),
        "median_length": max(1, int(np.median(lengths))),
        "label_set": rows.source,
    }


def time_bundle(bundle: Bundle, length: int, batches=TIMING_BATCHES, budget_s: float = 0.15) -> dict:
    """{"b1": median ms, ...} of one batch through bundle.logits (so its batch policy: a "row" bundle
    pays one call per row) on random ids of the given length; a fixed-batch
    bundle is timed at its own batch only (a fixed-length one at its own length). Each median
    takes about budget_s (at least 10 calls), so sub-millisecond models get hundreds of calls."""
    import time as _time

    from distill.training.report import median_ms

    if bundle.batch_size is not None:
        batches = (bundle.batch_size,)
    T = bundle.max_length if bundle.fixed_length else max(length, bundle.min_length)
    rng = np.random.default_rng(0)
    vocab = bundle.tokenizer.get_vocab_size(with_added_tokens=True)
    out = {}
    for b in batches:
        shape = (b, 2, T) if bundle.pair else (b, T)
        ids = rng.integers(min(2, vocab - 1), vocab, size=shape, dtype=np.int64)
        mask = np.zeros(shape, np.int64)
        mask[..., :length] = 1  # `length` real tokens, the rest (fixed length) padding
        ids[mask == 0] = bundle.pad_id
        def call(ids=ids, mask=mask):
            bundle.logits(ids, mask)
        t0 = _time.perf_counter()
        for _ in range(3):  # warm-up, and an estimate of one call
            call()
        one = (_time.perf_counter() - t0) / 3
        n = int(min(2000, max(10, budget_s / max(one, 1e-6))))
        out[f"b{b}"] = round(median_ms(call, 2, n), 4)
    return out
