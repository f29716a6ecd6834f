"""Fine-tune an encoder into a teacher for your own task: the first step before distillation.

    python -m distill.finetune --model bert-base-uncased --task sst2 --output-dir teachers/sst2
    python -m distill.finetune --model ./encoder --data ./tickets --text-column body --label-column queue \\
        --output-dir teachers/tickets
    python -m distill.train --student cnn --teacher teachers/tickets --data ./tickets --text-column body \\
        --label-column queue

Any encoder `AutoModelForSequenceClassification` can load (a hub id or a local `save_pretrained`
folder, with or without a classification head) learns any task `distill.data` loads: GLUE by
name, or local files with named columns; single texts or pairs; any number of classes, named by
the data. Training: AdamW, linear warm-up then linear decay, gradient clipping, length-grouped
batches, dev evaluation several times per epoch with the best evaluation kept, bf16 autocast on
CUDA (fp32 on the CPU), progress bars and TensorBoard logs (`tb/`). It checkpoints into
`OUTPUT_DIR/checkpoint` at every evaluation and every 10 minutes; `--resume` continues a killed
run to the same weights. At the end the output folder becomes, in one rename, a standard
`save_pretrained` folder (config.json with id2label and label2id, model.safetensors, the tokenizer)
plus `finetune.json` (dev metric of every evaluation, the best one, every setting, wall time) and a
`README.md`; it is directly usable as `--teacher`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from distill.cli import DataFlags, _help, build_parser, run_command
from distill.data import (
    Split,
    Task,
    content_hash,
    length_bucketed_batches,
    load_splits,
)
from distill.errors import DistillError
from distill.evaluate import compute_metric
from distill.io import atomic_write_json, atomic_write_text, replace_dir
from distill.loop import check_output_dir, load_checkpoint, save_checkpoint, warmup_linear_decay

RECORD = "finetune.json"
DEFAULT_LENGTH_CAP = 128  # default --max-length: the longest example, but no more than this


# ============================================================================ arguments


@dataclass
class FinetuneArgs(DataFlags):
    """Everything `python -m distill.finetune` takes; each field is one dashed flag."""

    model: str | None = field(default=None, metadata=_help(
        "the encoder to fine-tune (required): a hub id (bert-base-uncased) or a local folder saved with "
        "save_pretrained (config.json, weights, tokenizer); a classification head is added if it has none"))
    task: str | None = field(default=None, metadata=_help(
        "GLUE task (sst2, cola, mrpc, qqp, mnli, qnli, rte) or a name for custom data; default: the --data "
        "folder's name with --text-column, else sst2"))
    output_dir: str | None = field(default=None, metadata=_help(
        "the teacher folder to write; default teachers/<task>-<model name>"))
    max_length: int | None = field(default=None, metadata=_help(
        f"tokens per example (truncation); default: the longest train or dev example, at most "
        f"{DEFAULT_LENGTH_CAP} and never above the model's position limit"))
    epochs: int = field(default=2, metadata=_help("training epochs"))
    batch_size: int = field(default=32, metadata=_help("training batch size"))
    lr: float = field(default=1e-4, metadata=_help("AdamW peak learning rate"))
    weight_decay: float = field(default=0.01, metadata=_help(
        "AdamW weight decay (not on biases and LayerNorm weights)"))
    warmup_ratio: float = field(default=0.06, metadata=_help(
        "share of the steps warming the lr up linearly; it then decays linearly to 0"))
    grad_clip: float = field(default=1.0, metadata=_help("gradient norm clip (0 = off)"))
    evals_per_epoch: int = field(default=4, metadata=_help(
        "dev evaluations per epoch; the best one is the checkpoint that is kept"))
    max_steps: int | None = field(default=None, metadata=_help(
        "stop after this many steps (the lr schedule is fitted to them); for quick checks"))
    limit_train: int | None = field(default=None, metadata=_help(
        "train on a random subset of this many training rows (same rows for the same --seed); for quick checks"))
    seed: int = field(default=0, metadata=_help("random seed (head init, dropout, batch order); default 0"))
    eval_batch_size: int = field(default=128, metadata=_help("batch size of the dev evaluations"))
    threads: int | None = field(default=None, metadata=_help("CPU threads (default: torch's)"))
    device: str | None = field(default=None, metadata=_help(
        "cpu or cuda (default: cuda if present); CUDA trains under bf16 autocast"))
    resume: bool = field(default=False, metadata=_help("continue a killed run in --output-dir"))
    overwrite: bool = field(default=False, metadata=_help("replace what --output-dir holds"))
    trust_remote_code: bool = field(default=False, metadata=_help(
        "allow a hub model to run its own code (off: only trust code you have read)"))
    no_progress: bool = field(default=False, metadata=_help("no progress bars"))
    checkpoint_every_s: float = field(default=600.0, metadata=_help(
        "seconds between checkpoints (there is also one at every evaluation)"))

    def __post_init__(self) -> None:
        checks = [
            (bool(self.model), "--model is required: a hub id or a local encoder folder saved with save_pretrained"),
            (self.epochs >= 1, f"--epochs {self.epochs} must be >= 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be >= 1"),
            (self.lr > 0, f"--lr {self.lr} must be > 0"),
            (self.weight_decay >= 0, f"--weight-decay {self.weight_decay} must be >= 0"),
            (0 <= self.warmup_ratio < 1, f"--warmup-ratio {self.warmup_ratio} is outside [0, 1)"),
            (self.grad_clip >= 0, f"--grad-clip {self.grad_clip} must be >= 0"),
            (self.evals_per_epoch >= 1, f"--evals-per-epoch {self.evals_per_epoch} must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, f"--max-steps {self.max_steps} must be >= 1"),
            (self.limit_train is None or self.limit_train >= 2, f"--limit-train {self.limit_train} must be >= 2"),
            (self.max_length is None or self.max_length >= 8, f"--max-length {self.max_length} is too short; "
             "use at least 8"),
            (self.eval_batch_size >= 1, f"--eval-batch-size {self.eval_batch_size} must be >= 1"),
            (self.threads is None or self.threads >= 1, f"--threads {self.threads} must be >= 1"),
            (self.device in (None, "cpu", "cuda"), f"--device {self.device}: choose cpu or cuda"),
            (not (self.resume and self.overwrite), "--resume and --overwrite exclude each other"),
            (not (self.text_pair_column and not self.text_column), "--text-pair-column needs --text-column"),
            (not (self.text_column and not self.data), "--text-column needs --data: the folder holding "
             "train and dev files with that column"),
        ]
        for ok, message in checks:
            if not ok:
                raise DistillError(message)

    def resolve_task(self) -> Task:
        """The task these flags name (label names of custom data come from the data later)."""
        return self.data_task(self.task)

    def identity(self) -> dict:
        """What makes two runs the same run (flags that only steer execution are left out)."""
        skip = {"resume", "overwrite", "threads", "no_progress", "device", "checkpoint_every_s",
                "eval_batch_size", "output_dir"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def parse_args(argv: list[str] | None = None) -> FinetuneArgs:
    """argv -> FinetuneArgs, validated."""
    parser = build_parser(FinetuneArgs, "python -m distill.finetune", "\n\n".join((__doc__ or "").split("\n\n")[:2]))
    return FinetuneArgs(**vars(parser.parse_args(argv)))


# ============================================================================ the encoder


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report and progress bars; we print one line of our own."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def load_encoder_config(name: str, trust_remote_code: bool = False):
    """The model's config, checked to be an encoder that a classification head can sit on."""
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto

    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not path.is_dir():
            raise DistillError(f"--model {name}: no such folder; pass a local folder saved with "
                               "save_pretrained, or a hub id")
        if not (path / "config.json").is_file():
            raise DistillError(f"--model {name}: the folder has no config.json, so it is not a saved model; "
                               "save the encoder there with model.save_pretrained(...) and "
                               "tokenizer.save_pretrained(...)")
    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise DistillError(f"--model {name}: could not load its config ({_first_line(e)}); if the Hugging Face "
                           "hub cannot be reached, pass a local folder saved with save_pretrained") from None
    kind = getattr(config, "model_type", "") or "unknown"
    decoder_only = (kind in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
                    and kind not in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    if getattr(config, "is_encoder_decoder", False):
        raise DistillError(f"--model {name} is a {kind} encoder-decoder model, not an encoder; fine-tune an "
                           "encoder (BERT, RoBERTa, DistilBERT, DeBERTa, MiniLM, ModernBERT, ...)")
    if decoder_only or getattr(config, "is_decoder", False):
        raise DistillError(f"--model {name} is a {kind} model, a decoder-only language model, not an encoder; "
                           "fine-tune an encoder (BERT, RoBERTa, DistilBERT, DeBERTa, MiniLM, ModernBERT, ...)")
    return config


def position_limit(config, tokenizer) -> tuple[int | None, str]:
    """The most tokens the model takes per example, and where that number comes from."""
    positions = getattr(config, "max_position_embeddings", None)
    tok_max = getattr(tokenizer, "model_max_length", None)
    tok_max = tok_max if isinstance(tok_max, int) and 0 < tok_max < 1_000_000 else None
    if positions is None:
        return tok_max, "its tokenizer's model_max_length"
    if tok_max is not None and positions - 2 <= tok_max < positions:
        # RoBERTa-style position ids start after the padding index: 514 positions hold 512 tokens.
        return tok_max, f"max_position_embeddings {positions}, of which {tok_max} hold tokens"
    return positions, f"max_position_embeddings {positions}"


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DistillError(f"--model {name}: could not load its tokenizer ({_first_line(e)}); save it into the "
                           "folder with tokenizer.save_pretrained(...)") from None
    if tokenizer.pad_token_id is None:
        raise DistillError(f"--model {name}: its tokenizer has no padding token, which batches need; an "
                           "encoder's tokenizer has one (is this a decoder?)")
    return tokenizer


def load_model(name: str, task: Task, trust_remote_code: bool = False):
    """The encoder with a fresh classification head for the task's labels; returns (model, head keys)."""
    from transformers import AutoModelForSequenceClassification

    id2label = dict(enumerate(task.label_names))
    try:
        with _quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                name, num_labels=task.num_labels, id2label=id2label,
                label2id={n: i for i, n in id2label.items()}, ignore_mismatched_sizes=True,
                output_loading_info=True, trust_remote_code=trust_remote_code)
    except ValueError as e:  # no sequence-classification class for this config
        raise DistillError(f"--model {name}: transformers has no sequence classifier for it "
                           f"({_first_line(e)}); fine-tune a text encoder") from None
    except OSError as e:
        raise DistillError(f"--model {name}: could not load its weights ({_first_line(e)})") from None
    model.config.problem_type = "single_label_classification"
    new = sorted(set(info.get("missing_keys", ())) | {k[0] if isinstance(k, tuple) else k
                                                      for k in info.get("mismatched_keys", ())})
    return model.float(), new


# ============================================================================ data


@dataclass
class Encoded:
    """A tokenized split: per-row token ids (and token type ids for pairs), gold labels, lengths."""

    features: dict[str, list[list[int]]]  # input_ids and, if the model takes them, token_type_ids
    labels: np.ndarray  # (N,) int64
    lengths: np.ndarray  # (N,) tokens per row, special tokens included

    def __len__(self) -> int:
        return len(self.labels)


def token_lengths(tokenizer, texts: list[tuple[str, ...]]) -> np.ndarray:
    """Tokens per example without truncation (pairs: both texts and the special tokens)."""
    cols = list(zip(*texts))
    with _quiet_transformers():  # "sequence longer than the model's maximum" warnings: we truncate later
        ids = tokenizer(*cols, add_special_tokens=True)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


def encode(tokenizer, split: Split, max_length: int) -> Encoded:
    cols = list(zip(*split.texts))
    enc = tokenizer(*cols, truncation=True, max_length=max_length)
    keep = [k for k in ("input_ids", "token_type_ids") if k in enc and k in tokenizer.model_input_names]
    features = {k: enc[k] for k in keep}
    lengths = np.fromiter((len(x) for x in features["input_ids"]), dtype=np.int64, count=len(split))
    return Encoded(features, split.labels.astype(np.int64), lengths)


def collate(data: Encoded, idx: np.ndarray, pad_id: int, left: bool, device) -> dict[str, torch.Tensor]:
    """Pad rows idx into a batch: input_ids, attention_mask (and token_type_ids): (B, T) each."""
    n = data.lengths[idx]
    T = int(n.max())
    out = {"input_ids": np.full((len(idx), T), pad_id, dtype=np.int64),
           "attention_mask": np.zeros((len(idx), T), dtype=np.int64)}
    out |= {k: np.zeros((len(idx), T), dtype=np.int64) for k in data.features if k != "input_ids"}
    for b, (i, length) in enumerate(zip(idx, n)):
        cols = slice(T - length, T) if left else slice(0, length)
        out["attention_mask"][b, cols] = 1
        for k, rows in data.features.items():
            out[k][b, cols] = rows[i]
    return {k: torch.from_numpy(v).to(device) for k, v in out.items()}


def check_labels(task: Task, splits: dict[str, Split]) -> None:
    """A classifier needs two classes in train, and dev may only hold labels that train has."""
    train, dev = splits["train"], splits["dev"]
    seen = sorted(set(train.labels[train.labels >= 0].tolist()))
    if len(seen) < 2:
        which = f"label '{task.label_names[seen[0]]}'" if seen else "no label"
        raise DistillError(f"{train.source}: every labelled row has {which}; a classifier needs at least two "
                           "classes: add rows of another class (or name the right column with --label-column)")
    unseen = ~np.isin(dev.labels, seen) & (dev.labels >= 0)
    if unseen.any():
        i = int(np.flatnonzero(unseen)[0])
        row = i + (1 if dev.source.endswith((".jsonl", ".json")) else 2)
        name = task.label_names[int(dev.labels[i])]
        raise DistillError(f"{dev.source}: row {row} has label '{name}', which no row of {train.source} has; a "
                           "teacher cannot learn a label it never sees: add training rows with it, or drop it from dev")


# ============================================================================ training


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: biases and LayerNorm weights stay undecayed (BERT's recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict(model, data: Encoded, batch_size: int, pad_id: int, left: bool, device: torch.device) -> np.ndarray:
    """Logits (N, C) for a whole split, in length-sorted batches."""
    model.eval()
    out = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    for idx in length_bucketed_batches(data.lengths, batch_size):
        with _autocast(device):
            logits = model(**collate(data, idx, pad_id, left, device)).logits
        out[idx] = logits.float().cpu().numpy()
    return out


def evaluate(model, dev: Encoded, metric: str, batch_size: int, pad_id: int, left: bool, device) -> float:
    has = dev.labels >= 0
    logits = predict(model, dev, batch_size, pad_id, left, device)
    return compute_metric(metric, logits[has].argmax(1), dev.labels[has])


def _cpu_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(model, train_data: Encoded, dev: Encoded, args: FinetuneArgs, metric: str, pad_id: int,
          left: bool, device: torch.device, out: Path) -> dict:
    """The loop: returns the progress dict (history, best step); the model ends with the best weights."""
    from torch.utils.tensorboard import SummaryWriter

    steps_per_epoch = math.ceil(len(train_data) / args.batch_size)
    total = args.epochs * steps_per_epoch
    if args.max_steps:
        total = min(total, args.max_steps)
    eval_every = max(1, math.ceil(steps_per_epoch / args.evals_per_epoch))
    warmup = int(args.warmup_ratio * total)
    opt = torch.optim.AdamW(_param_groups(model, args.weight_decay), lr=args.lr, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_linear_decay(warmup, total))
    p = {"epoch": 0, "step_in_epoch": 0, "step": 0, "best_metric": -math.inf, "best_step": 0,
         "history": [], "seconds": 0.0, "total_steps": total, "steps_per_epoch": steps_per_epoch,
         "eval_every": eval_every, "warmup_steps": warmup}
    best_state = _cpu_state(model)

    ckpt = out / "checkpoint"
    restored = load_checkpoint(ckpt, model, opt, sched, device)
    if restored is not None:
        best_state, p = restored
        print(f"resuming from step {p['step']} of {p['total_steps']} (epoch {p['epoch'] + 1}, "
              f"batch {p['step_in_epoch']})")

    writer = SummaryWriter(str(out / "tb"))
    t_start, last_ckpt = time.perf_counter() - p["seconds"], time.perf_counter()
    bar = tqdm(total=total, initial=p["step"], desc="fine-tuning", unit="step", disable=args.no_progress,
               mininterval=1.0)
    loss_sum, loss_n = 0.0, 0
    try:
        while p["step"] < total:
            model.train()
            rng = np.random.default_rng([args.seed, p["epoch"]])  # the same order on resume
            batches = length_bucketed_batches(train_data.lengths, args.batch_size, rng)
            for bi in range(p["step_in_epoch"], len(batches)):
                idx = batches[bi]
                inputs = collate(train_data, idx, pad_id, left, device)
                labels = torch.from_numpy(train_data.labels[idx]).to(device)
                with _autocast(device):
                    logits = model(**inputs).logits  # (B, C)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if args.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
                opt.step()
                sched.step()
                p["step"] += 1
                p["step_in_epoch"] = bi + 1
                loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
                bar.update(1)
                if p["step"] % 20 == 0:
                    bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}")
                    writer.add_scalar("train/loss", loss_sum / loss_n, p["step"])
                    writer.add_scalar("train/lr", sched.get_last_lr()[0], p["step"])
                end_of_epoch = p["step_in_epoch"] == len(batches)
                if p["step_in_epoch"] % eval_every == 0 or end_of_epoch or p["step"] >= total:
                    score = evaluate(model, dev, metric, args.eval_batch_size, pad_id, left, device)
                    model.train()
                    p["seconds"] = time.perf_counter() - t_start
                    p["history"].append({"step": p["step"], "epoch": round(p["step"] / steps_per_epoch, 3),
                                         "dev_metric": score,
                                         "train_loss": round(loss_sum / max(1, loss_n), 5),
                                         "seconds": round(p["seconds"], 1)})
                    loss_sum, loss_n = 0.0, 0
                    writer.add_scalar(f"dev/{metric}", score, p["step"])
                    better = score > p["best_metric"]
                    if better:
                        p["best_metric"], p["best_step"] = score, p["step"]
                        best_state = _cpu_state(model)
                    bar.write(f"step {p['step']} (epoch {p['step'] / steps_per_epoch:.2f}): dev {metric} "
                              f"{score:.4f}{' (best so far)' if better else ''}")
                    if end_of_epoch:
                        p["epoch"] += 1
                        p["step_in_epoch"] = 0
                    save_checkpoint(ckpt, model, best_state, opt, sched, p, device)
                    last_ckpt = time.perf_counter()
                elif time.perf_counter() - last_ckpt > args.checkpoint_every_s:
                    p["seconds"] = time.perf_counter() - t_start
                    save_checkpoint(ckpt, model, best_state, opt, sched, p, device)
                    last_ckpt = time.perf_counter()
                if p["step"] >= total or p["step_in_epoch"] == 0:
                    break
    finally:
        bar.close()
        writer.close()
    p["seconds"] = time.perf_counter() - t_start
    model.load_state_dict(best_state)
    return p


# ============================================================================ the command


def prepare_output_dir(args: FinetuneArgs, out: Path, data_hash: str) -> bool:
    """Check the output folder; True if a run there is to be resumed (or is already finished)."""
    old = check_output_dir(
        out, RECORD, args.identity(), args.resume, args.overwrite, kind="fine-tuning run",
        held=lambda saved: f"{'a finished' if saved.get('status') == 'finished' else 'an unfinished'} fine-tuning run")
    if old is None:
        return False
    if old.get("data", {}).get("hash") != data_hash:
        raise DistillError(f"--output-dir {out} was fine-tuned on other data (the content of the train/dev "
                           "files changed); use another --output-dir or --overwrite")
    return True


def _subset(split: Split, n: int, seed: int) -> Split:
    idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(split))[:n])
    return Split([split.texts[i] for i in idx], split.labels[idx], split.source)


def _readme(record: dict, out: Path) -> str:
    task, best = record["task"], record["best"]
    s = record["settings"]
    labels = ", ".join(f"`{i} = {n}`" for i, n in enumerate(task["label_names"]))
    data_flags = f" --data {record['data']['source']}" if not record["data"]["source"].startswith("glue/") else ""
    cols = ""
    if task["name"] not in ("sst2", "cola", "mrpc", "qqp", "mnli", "qnli", "rte"):
        cols = f" --text-column {task['text_columns'][0]}"
        if len(task["text_columns"]) == 2:
            cols += f" --text-pair-column {task['text_columns'][1]}"
        cols += f" --label-column {task['label_column']}"
    return (
        f"# {out.name}: {record['model']} fine-tuned on {task['name']}\n\n"
        f"A `{record['architecture']}` ({record['params']:,} parameters) fine-tuned by "
        f"`python -m distill.finetune` on {record['data']['rows']['train_used']:,} training rows "
        f"({record['data']['source']}).\n\n"
        f"- labels: {labels} (`id2label` in config.json)\n"
        f"- dev {task['metric']}: **{best['dev_metric']:.4f}** ({record['data']['rows']['dev']:,} rows), the best of "
        f"{len(record['history'])} evaluations (step {best['step']}, epoch {best['epoch']}). The checkpoint was "
        "selected on dev, so this figure is slightly optimistic.\n"
        f"- training: {s['epochs']} epoch(s), {s['total_steps']} steps, AdamW lr {s['lr']:g}, weight decay "
        f"{s['weight_decay']:g}, batch {s['batch_size']}, {100 * s['warmup_ratio']:g}% warm-up then linear decay, "
        f"gradient clip {s['grad_clip']:g}, max length {record['max_length']}, seed {s['seed']}, length-grouped "
        f"batches, on {s['device']} ({s['threads']} thread(s)), {record['wall_seconds'] / 60:.1f} min. "
        f"Every evaluation is in `{RECORD}`; TensorBoard logs in `tb/`.\n\n"
        "Distil it (it loads like any hub model, "
        "`AutoModelForSequenceClassification.from_pretrained(\"" + str(out) + "\")`):\n\n"
        f"```bash\npython -m distill.train --student bilstm --teacher {out} --task {task['name']}{data_flags}{cols}\n"
        f"```\n"
    )


def run(args: FinetuneArgs) -> dict:
    """The whole command; returns the record written to finetune.json."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DistillError("--device cuda, but torch sees no GPU; drop --device or use cpu")

    task = args.resolve_task()
    config = load_encoder_config(args.model, args.trust_remote_code)
    tokenizer = load_tokenizer(args.model, args.trust_remote_code)
    limit, limit_source = position_limit(config, tokenizer)
    if args.max_length and limit and args.max_length > limit:
        raise DistillError(f"--max-length {args.max_length} is above what {args.model} takes ({limit} tokens: "
                           f"{limit_source}); use --max-length {limit} or less")

    task, splits = load_splits(task, args.data)
    data_hash = content_hash(splits)
    check_labels(task, splits)
    model_name = Path(args.model.rstrip("/")).name
    out = Path(args.output_dir or f"teachers/{task.name}-{model_name}")
    resume = prepare_output_dir(args, out, data_hash)
    if resume and (out / RECORD).is_file():
        record = json.loads((out / RECORD).read_text())
        if record.get("status") == "finished":
            print(f"{out} already holds this run, finished: dev {task.metric} {record['dev_metric']:.4f}; "
                  "nothing to do (--overwrite to train again)")
            return record

    train_split = splits["train"]
    unlabelled = int((train_split.labels < 0).sum())
    if unlabelled:
        keep = np.flatnonzero(train_split.labels >= 0)
        train_split = Split([train_split.texts[i] for i in keep], train_split.labels[keep], train_split.source)
    if args.limit_train and args.limit_train < len(train_split):
        train_split = _subset(train_split, args.limit_train, args.seed)

    # max length: as asked, or the longest example (length-grouped batches make padding to it free)
    lengths = {k: token_lengths(tokenizer, s.texts) for k, s in (("train", train_split), ("dev", splits["dev"]))}
    longest = int(max(lengths["train"].max(), lengths["dev"].max()))
    if args.max_length:
        max_length, length_from = args.max_length, "--max-length"
    else:
        max_length = min(longest, DEFAULT_LENGTH_CAP, limit or longest)
        length_from = (f"the longest example ({longest} tokens)" if max_length == longest else
                       f"the longest example ({longest} tokens) capped at {max_length}")
    truncated = {k: round(float((v > max_length).mean()), 5) for k, v in lengths.items()}

    torch.manual_seed(args.seed)  # the new head's initial weights
    model, new_keys = load_model(args.model, task, args.trust_remote_code)
    model.to(device)
    params = sum(p.numel() for p in model.parameters())
    pad_id, left = tokenizer.pad_token_id, tokenizer.padding_side == "left"
    train_data = encode(tokenizer, train_split, max_length)
    dev = encode(tokenizer, splits["dev"], max_length)
    threads = torch.get_num_threads() if device.type == "cpu" else None
    print(f"{args.model}: {type(model).__name__}, {params:,} parameters; new: "
          f"{', '.join(new_keys) if new_keys else 'nothing (it already had a head for these labels)'}")
    print(f"task {task.name} ({'pairs' if task.pair else 'single texts'}, labels: {', '.join(task.label_names)}); "
          f"{len(train_data):,} training rows{f' ({unlabelled:,} unlabelled left out)' if unlabelled else ''}, "
          f"{len(dev):,} dev rows; max length {max_length} from {length_from}, truncating "
          f"{100 * truncated['train']:.1f}% of train and {100 * truncated['dev']:.1f}% of dev; "
          f"{device}{f' ({threads} threads)' if threads else ', bf16 autocast'}")

    if args.overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "running",
        "model": args.model,
        "architecture": type(model).__name__,
        "model_type": config.model_type,
        "params": params,
        "new_weights": new_keys,
        "task": task.to_dict(),
        "data": {"source": args.data or f"glue/{task.name}", "hash": data_hash,
                 "rows": {"train": len(splits["train"]), "train_used": len(train_data),
                          "train_unlabelled": unlabelled, "dev": len(dev)}},
        "max_length": max_length,
        "max_length_from": length_from,
        "position_limit": limit,
        "truncated": truncated,
        "args": args.identity(),
    }
    if not resume:
        atomic_write_json(out / RECORD, record)

    p = train(model, train_data, dev, args, task.metric, pad_id, left, device, out)

    best_step = p["best_step"]
    record |= {
        "status": "finished",
        "dev_metric": p["best_metric"],
        "metric": task.metric,
        "best": {"step": best_step, "epoch": round(best_step / p["steps_per_epoch"], 3),
                 "dev_metric": p["best_metric"]},
        "history": p["history"],
        "settings": {**asdict(args), "total_steps": p["total_steps"], "steps_per_epoch": p["steps_per_epoch"],
                     "eval_every": p["eval_every"], "warmup_steps": p["warmup_steps"], "device": str(device),
                     "threads": threads, "autocast": "bf16" if device.type == "cuda" else None},
        "wall_seconds": round(p["seconds"], 1),
        "resumed": resume,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for k in ("resume", "overwrite"):
        record["settings"].pop(k)

    # The finished folder is assembled beside the output folder and renamed into place at once.
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with _quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        umask = os.umask(0)
        os.umask(umask)
        for f in tmp.iterdir():  # some writers make their files 0600; a teacher folder is shared
            f.chmod(0o666 & ~umask)
        if (out / "tb").is_dir():
            shutil.copytree(out / "tb", tmp / "tb")
        atomic_write_json(tmp / RECORD, record)
        atomic_write_text(tmp / "README.md", _readme(record, out))
        replace_dir(tmp, out)  # the checkpoint goes with the old folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"best dev {task.metric} {p['best_metric']:.4f} at step {best_step} of {p['total_steps']} "
          f"(epoch {record['best']['epoch']}); {p['seconds'] / 60:.1f} min of training")
    print(f"saved the teacher to {out}/ ({RECORD}, README.md, tb/); distil it with: python -m distill.train "
          f"--student bilstm --teacher {out} --task {task.name}" + (f" --data {args.data}" if args.data else ""))
    return record


def main(argv: list[str] | None = None) -> dict | None:
    """`python -m distill.finetune`: parse argv and run; bad input exits with one line."""
    return run_command(lambda: run(parse_args(argv)), "rerun the same command with --resume to continue")


if __name__ == "__main__":
    main()
