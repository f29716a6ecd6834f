"""What the two training commands share (`distill.train` and `distill.finetune`): the check of the
output folder, the learning-rate schedule, and checkpoints that a killed run resumes from to the
same weights.

A checkpoint is a folder written whole or not at all: model.safetensors (the weights now),
best.safetensors (the best evaluated weights so far), state.pt (optimizer, scheduler and RNG
states: tensors and plain containers only, read back with weights_only=True) and progress.json.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from distill.errors import DistillError
from distill.io import atomic_write_json, replace_dir, save_tensors


def check_output_dir(out: Path, record: str, identity: dict, resume: bool, overwrite: bool, kind: str = "run",
                     held: Callable[[dict], str] = lambda saved: "a run") -> dict | None:
    """The saved record (out/record, holding the run's flags under "args") of a run to resume, or
    None when the run starts afresh in `out`.

    Refuses a folder that holds something else, a run when neither --resume nor --overwrite is
    given (`held(saved)` says what is there), and a resume with other flags (naming the first)."""
    path = out / record
    if not out.exists() or not any(out.iterdir()):
        if resume:
            print(f"nothing to resume in {out}; starting a new run")
        return None
    if overwrite:
        return None  # emptied once training is about to start
    if not path.is_file():
        raise DistillError(f"--output-dir {out} is not empty and holds no {kind}; choose another "
                           "folder or pass --overwrite")
    saved = json.loads(path.read_text())
    if not resume:
        raise DistillError(f"--output-dir {out} already holds {held(saved)}; pass --resume to continue "
                           "it, --overwrite to replace it, or choose another --output-dir")
    old = saved.get("args", {})
    diff = [k for k in identity if old.get(k) != identity[k]]
    if diff:
        k = diff[0]
        raise DistillError(f"--output-dir {out} holds a different run (--{k.replace('_', '-')} was "
                           f"{old.get(k)!r}, now {identity[k]!r}); use another --output-dir or --overwrite")
    return saved


def warmup_linear_decay(warmup: int, total: int) -> Callable[[int], float]:
    """LambdaLR factor: linear warm-up over `warmup` steps, then linear decay to 0 at `total`."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


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
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return best_state, json.loads((ckpt / "progress.json").read_text())
