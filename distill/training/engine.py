"""The one training loop. Student distillation (`fit`), teacher fine-tuning and every search trial
run it; what differs between them is the step function, the evaluation and the config.

    cfg = LoopConfig(total_steps=900, batch_size=50, lr=1e-3, evals_per_epoch=1, patience=2)
    result = train_loop(model, lengths, step, evaluate, cfg, run_dir=Path("runs/x"))

`step(idx)` computes the loss terms of the rows idx (a dict holding "loss"); the loop does the
rest: AdamW (no weight decay on biases and norms), linear warm-up and decay
(transformers.get_linear_schedule_with_warmup), gradient clipping, length-bucketed batches in a
per-epoch order fixed by the seed, TensorBoard scalars, `evaluate()` `evals_per_epoch` times an
epoch, the best evaluated weights kept, early stopping after `patience` evaluations without a better
metric, and a stop at the first non-finite loss. `on_eval(n, metric)` is the one callback hook (the
search prunes there by raising).

With `run_dir`, a checkpoint folder run_dir/checkpoint is written whole or not at all at every
evaluation and every `checkpoint_every_s` seconds: model.safetensors (the weights now),
best.safetensors (the best weights so far), state.pt (optimizer, scheduler and RNG states: tensors
and plain containers only, read back with weights_only=True) and progress.json. A loop started
on a run_dir that holds one resumes from it to the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from distill.cli import progress_bar
from distill.data.batching import length_bucketed_batches
from distill.errors import DistillError
from distill.io import atomic_write_json, replace_dir, save_tensors


@dataclass
class LoopConfig:
    """The loop's slice of a command's settings."""

    total_steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    grad_clip: float = 1.0  # 0 = off
    seed: int = 0  # the batch order; callers seed torch themselves (dropout, new layers)
    evals_per_epoch: int = 1
    eval_every: int | None = None  # steps between evaluations (also at each epoch's end); overrides evals_per_epoch
    patience: int | None = None  # evaluations without a better metric before stopping; None = never
    checkpoint_every_s: float = 60.0
    progress: bool = True
    desc: str = "training"
    metric_name: str = "metric"
    log_every: int = 20


@dataclass
class LoopResult:
    best_metric: float
    best_step: int
    best_epoch: float
    history: list[dict]  # per evaluation: step, epoch, dev_metric, train_loss
    eval_seconds: list[float]  # wall time at each evaluation, apart from history so that it is deterministic
    steps: int  # steps taken (fewer than total_steps after an early stop)
    total_steps: int
    seconds: float
    steps_per_epoch: int
    eval_every: int
    warmup_steps: int
    resumed: bool = False
    extra: dict = field(default_factory=dict)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: biases and LayerNorm weights stay undecayed (BERT's recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_checkpoint(ckpt: Path, model, best_state: dict, opt, sched, progress: dict,
                    device: torch.device | None = None) -> None:
    """Write the checkpoint folder `ckpt` (replacing the previous one in one rename)."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_tensors(tmp / "model.safetensors", model.state_dict())
    save_tensors(tmp / "best.safetensors", best_state)
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    torch.save(state, tmp / "state.pt")
    atomic_write_json(tmp / "progress.json", progress)
    replace_dir(tmp, ckpt)  # the whole checkpoint changes at once, never half of it


def load_checkpoint(ckpt: Path, model, opt, sched, device: torch.device | None = None) -> tuple[dict, dict] | None:
    """Restore model, optimizer, scheduler and RNG from `ckpt`; (best_state, progress), or None if there is none."""
    from safetensors.torch import load_file

    if not (ckpt / "progress.json").is_file():
        return None
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    best_state = load_file(str(ckpt / "best.safetensors"))
    state = torch.load(ckpt / "state.pt", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    for group in opt.param_groups:  # torch loads moments of another shape without a word, then steps on them
        for p in group["params"]:
            if any(torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape for v in opt.state.get(p, {}).values()):
                raise DistillError(f"the checkpoint {ckpt} does not fit this training (its optimizer state has "
                                   "other shapes: another version of the workbench wrote it); remove that folder to "
                                   "train from the start")
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return best_state, json.loads((ckpt / "progress.json").read_text())


def train_loop(model: torch.nn.Module, lengths: np.ndarray, step: Callable[[np.ndarray], dict],
               evaluate: Callable[[], float], cfg: LoopConfig, run_dir: Path | None = None,
               on_eval: Callable[[int, float], None] | None = None,
               device: torch.device | str = "cpu") -> LoopResult:
    """Train `model` for cfg.total_steps steps (or until early stopping); it ends with the best weights."""
    from transformers import get_linear_schedule_with_warmup

    device = torch.device(device)
    steps_per_epoch = math.ceil(len(lengths) / cfg.batch_size)
    total = cfg.total_steps
    eval_every = cfg.eval_every or max(1, math.ceil(steps_per_epoch / cfg.evals_per_epoch))
    warmup = int(cfg.warmup_ratio * total)
    # fused: one kernel over all parameters; 8x faster than the default on CPU for a 9M-row table
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=True)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    p = {"epoch": 0, "step_in_epoch": 0, "step": 0, "best_metric": -math.inf, "best_step": 0,
         "best_epoch": 0.0, "bad_evals": 0, "history": [], "eval_seconds": [], "seconds": 0.0,
         "loss_since_eval": [0.0, 0]}
    best_state = cpu_state(model)

    ckpt = run_dir / "checkpoint" if run_dir is not None else None
    restored = load_checkpoint(ckpt, model, opt, sched, device) if ckpt is not None else None
    if restored is not None:
        best_state, p = restored
        print(f"resuming from step {p['step']} of {total} (epoch {p['epoch'] + 1}, batch {p['step_in_epoch']})")

    writer = None
    if run_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    t_start, last_ckpt = time.perf_counter() - p["seconds"], time.perf_counter()
    bar = progress_bar(total=total, initial=p["step"], desc=cfg.desc, unit="step", disable=not cfg.progress,
               mininterval=1.0)
    sums: dict[str, float] = {}  # loss terms since the last log line
    since_eval = p.setdefault("loss_since_eval", [0.0, 0])  # loss sum and count since the last evaluation

    def checkpoint() -> None:
        nonlocal last_ckpt
        p["seconds"] = time.perf_counter() - t_start
        save_checkpoint(ckpt, model, best_state, opt, sched, p, device)
        last_ckpt = time.perf_counter()

    def stopped() -> bool:
        return p["step"] >= total or (cfg.patience is not None and p["bad_evals"] >= cfg.patience)

    try:
        while not stopped():
            model.train()
            rng = np.random.default_rng([cfg.seed, p["epoch"]])  # the same order on resume
            batches = length_bucketed_batches(lengths, cfg.batch_size, rng)
            for bi in range(p["step_in_epoch"], len(batches)):
                terms = step(batches[bi])
                loss = terms["loss"]
                if not torch.isfinite(loss.detach()):
                    raise DistillError(f"the training loss became {loss.item()} at step {p['step'] + 1}; nothing "
                                       "was saved: lower --lr, or check the inputs for extreme values")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                p["step"] += 1
                p["step_in_epoch"] = bi + 1
                bar.update(1)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                since_eval[0] += float(loss.detach())
                since_eval[1] += 1
                if p["step"] % cfg.log_every == 0:
                    n = cfg.log_every
                    bar.set_postfix(loss=f"{sums['loss'] / n:.4f}")
                    if writer:
                        for k, v in sums.items():
                            writer.add_scalar(f"train/{k}", v / n, p["step"])
                        writer.add_scalar("train/lr", sched.get_last_lr()[0], p["step"])
                    sums = {}
                end_of_epoch = p["step_in_epoch"] == len(batches)
                if p["step_in_epoch"] % eval_every == 0 or end_of_epoch or p["step"] >= total:
                    score = float(evaluate())
                    model.train()
                    epoch = round(p["step"] / steps_per_epoch, 3)
                    p["history"].append({"step": p["step"], "epoch": epoch, "dev_metric": score,
                                         "train_loss": round(since_eval[0] / max(1, since_eval[1]), 5)})
                    p["eval_seconds"].append(round(time.perf_counter() - t_start, 1))
                    since_eval[:] = [0.0, 0]
                    if writer:
                        writer.add_scalar(f"dev/{cfg.metric_name}", score, p["step"])
                    better = score > p["best_metric"]
                    if better:
                        p["best_metric"], p["best_step"], p["best_epoch"], p["bad_evals"] = score, p["step"], epoch, 0
                        best_state = cpu_state(model)
                    else:
                        p["bad_evals"] += 1
                    note = " (best so far)" if better else ""
                    bar.write(f"step {p['step']} (epoch {epoch:g}): dev {cfg.metric_name} {score:.4f}{note}")
                    if end_of_epoch:
                        p["epoch"] += 1
                        p["step_in_epoch"] = 0
                    if ckpt is not None:
                        checkpoint()
                    if on_eval is not None:
                        on_eval(len(p["history"]), score)
                    if stopped() or end_of_epoch:
                        break
                elif ckpt is not None and time.perf_counter() - last_ckpt > cfg.checkpoint_every_s:
                    checkpoint()
    finally:  # a prune raised from on_eval must not leave the writer's thread open
        bar.close()
        if writer:
            writer.close()
    model.load_state_dict(best_state)
    return LoopResult(p["best_metric"], p["best_step"], p["best_epoch"], p["history"], p["eval_seconds"],
                      p["step"], total, time.perf_counter() - t_start, steps_per_epoch, eval_every, warmup,
                      resumed=restored is not None)
