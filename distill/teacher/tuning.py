"""What fine-tuning a teacher runs on the one training loop: the split as the teacher's tokenizer encodes it,
its batches, cross-entropy on gold labels, and the dev evaluation (bf16 autocast on CUDA)."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch

from distill.data.batching import Encoded, encode_sequences, length_bucketed_batches
from distill.data.metrics import compute_metric
from distill.data.tasks import Split
from distill.teacher.load import quiet_transformers
from distill.training.engine import LoopConfig, LoopResult, train_loop

# ============================================================================ data


def token_lengths(tokenizer, texts: list[tuple[str, ...]]) -> np.ndarray:
    """Tokens per example without truncation (pairs: both texts and the special tokens)."""
    cols = list(zip(*texts))
    with quiet_transformers():  # "sequence longer than the model's maximum" warnings: we truncate later
        ids = tokenizer(*cols, add_special_tokens=True)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


def encode(tokenizer, split: Split, max_length: int) -> Encoded:
    """The split as the teacher reads it: one sequence per row (a pair joined by the tokenizer), type ids if used."""
    enc = tokenizer(*zip(*split.texts), truncation=True, max_length=max_length)
    types = enc["token_type_ids"] if "token_type_ids" in enc and "token_type_ids" in tokenizer.model_input_names \
        else None
    return encode_sequences([enc["input_ids"]], split.labels.astype(np.int64), None, False,
                            tokenizer.pad_token_id, None if types is None else [types])


def collate(data: Encoded, idx: np.ndarray, left: bool, device) -> dict[str, torch.Tensor]:
    """Rows idx as the model's keyword inputs: input_ids, attention_mask (and token_type_ids), (B, T) each."""
    ids, mask, types = data.arrays(idx, left=left)
    out = {"input_ids": ids, "attention_mask": mask} | ({} if types is None else {"token_type_ids": types})
    return {k: torch.from_numpy(v).to(device) for k, v in out.items()}


# ============================================================================ training


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict(model, data: Encoded, batch_size: int, left: bool, device: torch.device) -> np.ndarray:
    """Logits (N, C) for a whole split, in length-sorted batches."""
    model.eval()
    out = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    for idx in length_bucketed_batches(data.lengths, batch_size):
        with _autocast(device):
            logits = model(**collate(data, idx, left, device)).logits
        out[idx] = logits.float().cpu().numpy()
    return out


def evaluate(model, dev: Encoded, metric: str, batch_size: int, left: bool, device) -> float:
    has = dev.labels >= 0
    logits = predict(model, dev, batch_size, left, device)
    return compute_metric(metric, logits[has].argmax(1), dev.labels[has])


def train(model, train_data: Encoded, dev: Encoded, args, metric: str, left: bool,
          device: torch.device, out: Path) -> LoopResult:
    """Cross-entropy on the gold labels, on the one training loop; the model ends with the best weights."""
    total = args.epochs * math.ceil(len(train_data) / args.batch_size)
    if args.max_steps:
        total = min(total, args.max_steps)

    def step(idx: np.ndarray) -> dict:
        labels = torch.from_numpy(train_data.labels[idx]).to(device)
        with _autocast(device):
            logits = model(**collate(train_data, idx, left, device)).logits  # (B, C)
        return {"loss": torch.nn.functional.cross_entropy(logits.float(), labels)}

    cfg = LoopConfig(total_steps=total, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                     warmup_ratio=args.warmup_ratio, grad_clip=args.grad_clip, seed=args.seed,
                     evals_per_epoch=args.evals_per_epoch, checkpoint_every_s=args.checkpoint_every_s,
                     progress=not args.no_progress, desc="fine-tuning", metric_name=metric)
    return train_loop(model, train_data.lengths, step,
                      lambda: evaluate(model, dev, metric, args.eval_batch_size, left, device),
                      cfg, out, device=device)
