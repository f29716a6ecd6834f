"""Fine-tune an encoder into a teacher for your own task: the first step before distillation.

    python -m distill.finetune --model bert-base-uncased --task sst2 --output-dir teachers/sst2
    python -m distill.finetune --model ./encoder --data ./tickets --text-column body --label-column queue \\
        --output-dir teachers/tickets
    python -m distill.train --student cnn --teacher teachers/tickets --data ./tickets --text-column body \\
        --label-column queue

Any encoder `AutoModelForSequenceClassification` can load (a hub id or a local `save_pretrained`
folder, with or without a classification head) learns any task `distill.data` loads: GLUE by
name, or local files with named columns; single texts or pairs; any number of classes, named by
the data. It trains on the one loop of distill.training.engine (cross-entropy on gold labels, dev
evaluated several times per epoch, the best evaluation kept, resumable), under bf16 autocast on
CUDA. At the end the output folder becomes, in one rename, a standard
`save_pretrained` folder (config.json with id2label and label2id, model.safetensors, the tokenizer)
plus `finetune.json` (dev metric of every evaluation, the best one, every setting, wall time) and a
`README.md`; it is directly usable as `--teacher`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from string import Template

import numpy as np
import torch

from distill.cli import DataFlags, _help, build_parser, check_finite, run_command, setup_torch
from distill.data.metrics import learned_nothing, majority_baseline
from distill.data.sources import check_classes, content_hash
from distill.data.tasks import Split, Task, safe_name
from distill.errors import DistillError
from distill.io import atomic_write_json, atomic_write_text
from distill.outputs import (
    begin_output,
    check_output,
    clear_output,
    discard_fresh,
    flag_defaults,
    hold_lock,
    resumable_output,
    staged,
)
from distill.teacher.load import (
    load_encoder_config,
    load_model,
    load_tokenizer,
    position_limit,
    quiet_transformers,
)
from distill.teacher.tuning import encode, predict, token_lengths, train

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
        check_finite(self)
        checks = [
            (bool(self.model), "--model is required: a hub id or a local encoder folder saved with save_pretrained"),
            (self.epochs >= 1, f"--epochs {self.epochs} must be >= 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be >= 1"),
            (self.lr > 0, f"--lr {self.lr} must be > 0"),
            (self.weight_decay >= 0, f"--weight-decay {self.weight_decay} must be >= 0"),
            (0 <= self.warmup_ratio < 1, f"--warmup-ratio {self.warmup_ratio} is outside [0, 1)"),
            (self.grad_clip >= 0, f"--grad-clip {self.grad_clip} must be >= 0"),
            (self.checkpoint_every_s >= 0, f"--checkpoint-every-s {self.checkpoint_every_s} must be >= 0"),
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
            (not (self.text_column and not self.data_source), "--text-column needs --data: the folder holding "
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


# ============================================================================ the command


def prepare_output_dir(args: FinetuneArgs, out: Path, data_hash: str) -> bool:
    """Check the output folder; True if a run there is to be resumed (or is already finished)."""
    old = resumable_output(
        out, "teacher", RECORD, args.identity(), args.resume, args.overwrite,
        held=lambda saved: f"{'a finished' if saved.get('status') == 'finished' else 'an unfinished'} fine-tuning run",
        defaults=flag_defaults(type(args)))
    if old is None:
        return False
    if old.get("data", {}).get("hash") != data_hash:
        raise DistillError(f"--output-dir {out} was fine-tuned on other data (the content of the train/dev "
                           "files changed); use another --output-dir or --overwrite")
    return True


def _subset(split: Split, n: int, seed: int) -> Split:
    idx = np.sort(np.random.default_rng([seed, 7]).permutation(len(split))[:n])
    return Split([split.texts[i] for i in idx], split.labels[idx], split.source)


def distil_command(data_flags: dict, task_name: str, out: Path) -> str:
    """The `python -m distill.train` command that distils the teacher in `out` on the same data: every
    data flag the fine-tuning got (--data, the columns, --test, --validation-fraction) and the task."""
    from distill.train import TrainArgs

    names = {f.name for f in fields(DataFlags)}
    flags = {k: v for k, v in data_flags.items() if k in names}
    return TrainArgs(student="bilstm", teacher=str(out), task=task_name, **flags).command()


def _readme(record: dict, out: Path) -> str:
    """The teacher folder's README.md, from README.template.md beside this module."""
    task, best, s = record["task"], record["best"], record["settings"]
    template = Template((Path(__file__).parent / "README.template.md").read_text(encoding="utf-8"))
    return template.substitute(
        name=out.name, model=record["model"], task=task["name"], architecture=record["architecture"],
        params=f"{record['params']:,}", train_rows=f"{record['data']['rows']['train_used']:,}",
        source=record["data"]["source"], metric=task["metric"], dev_metric=f"{best['dev_metric']:.4f}",
        dev_rows=f"{record['data']['rows']['dev']:,}", evaluations=len(record["history"]), best_step=best["step"],
        best_epoch=best["epoch"], labels=", ".join(f"`{i} = {n}`" for i, n in enumerate(task["label_names"])),
        epochs=s["epochs"], total_steps=s["total_steps"], lr=f"{s['lr']:g}", weight_decay=f"{s['weight_decay']:g}",
        batch_size=s["batch_size"], warmup=f"{100 * s['warmup_ratio']:g}", grad_clip=f"{s['grad_clip']:g}",
        max_length=record["max_length"], seed=s["seed"], device=s["device"], threads=s["threads"],
        minutes=f"{record['wall_seconds'] / 60:.1f}", record=RECORD, out=out,
        command=distil_command(record["args"], task["name"], out))


def run(args: FinetuneArgs) -> dict:
    """The whole command; returns the record written to finetune.json."""
    device = setup_torch(args.no_progress, args.threads, args.device)

    if args.output_dir:  # a file or a foreign folder in the way is one line before any work
        check_output(Path(args.output_dir), "teacher")
    task = args.resolve_task()
    config = load_encoder_config(args.model, args.trust_remote_code)
    tokenizer = load_tokenizer(args.model, args.trust_remote_code)
    limit, limit_source = position_limit(config, tokenizer)
    if args.max_length and limit and args.max_length > limit:
        raise DistillError(f"--max-length {args.max_length} is above what {args.model} takes ({limit} tokens: "
                           f"{limit_source}); use --max-length {limit} or less")

    task, splits = args.load_data(args.task)
    data_hash = content_hash(splits)
    check_classes(task, splits)
    model_name = Path(args.model.rstrip("/")).name
    out = Path(args.output_dir or f"teachers/{safe_name(task.name)}-{model_name}")
    state = check_output(out, "teacher")
    with hold_lock(out):  # a second run on the same folder is refused at once
        return _run(args, device, task, splits, config, tokenizer, limit, limit_source, data_hash, out, state)


def _run(args: FinetuneArgs, device, task, splits, config, tokenizer, limit, limit_source, data_hash,
         out: Path, state: str) -> dict:
    """The fine-tuning once `out` is checked and locked."""
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
    left = tokenizer.padding_side == "left"
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

    if args.overwrite:
        clear_output(out, "teacher")
    begin_output(out, "teacher")
    record = {
        "status": "running",
        "model": args.model,
        "architecture": type(model).__name__,
        "model_type": config.model_type,
        "params": params,
        "new_weights": new_keys,
        "task": task.to_dict(),
        "data": {"source": args.data_source or f"glue/{task.name}", "hash": data_hash,
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

    try:
        r = train(model, train_data, dev, args, task.metric, left, device, out)
    except DistillError:
        if not resume:  # a fresh run that failed (a non-finite loss) leaves nothing behind
            discard_fresh(out, "teacher", state)
        raise
    has = dev.labels >= 0
    dev_pred = predict(model, dev, args.eval_batch_size, left, device).argmax(1)[has]
    baseline = majority_baseline(task.metric, dev.labels[has], train_data.labels)
    warning = learned_nothing(task.metric, r.best_metric, dev_pred, dev.labels[has], train_data.labels,
                              task.label_names)

    record |= {
        "status": "finished",
        "dev_metric": r.best_metric,
        "metric": task.metric,
        "best": {"step": r.best_step, "epoch": r.best_epoch, "dev_metric": r.best_metric},
        "majority_baseline": baseline,
        "warning": warning,
        "history": [h | {"seconds": t} for h, t in zip(r.history, r.eval_seconds)],
        "settings": {**asdict(args), "total_steps": r.total_steps, "steps_per_epoch":
                     r.steps_per_epoch, "eval_every": r.eval_every, "warmup_steps": r.warmup_steps,
                     "device": str(device), "threads": threads, "autocast": "bf16" if device.type == "cuda" else None},
        "wall_seconds": round(r.seconds, 1),
        "resumed": resume,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for k in ("resume", "overwrite"):
        record["settings"].pop(k)

    # The finished folder is assembled beside the output folder and renamed into place at once;
    # the checkpoint goes with the old folder.
    with staged(out, "teacher") as tmp:
        with quiet_transformers():
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
    print(f"best dev {task.metric} {r.best_metric:.4f} at step {r.best_step} of {record['settings']['total_steps']} "
          f"(epoch {r.best_epoch}; majority-class baseline {baseline:.4f}); {r.seconds / 60:.1f} min of training")
    print(f"saved the teacher to {out}/ ({RECORD}, README.md, tb/); distil it with:\n"
          f"  {distil_command(asdict(args), task.name, out)}")
    if warning:
        print(f"warning: this teacher seems to have learned nothing: {warning}. Distilling it will not help; try "
              "more --epochs, another --lr (1e-5 to 5e-5 for a full-size encoder), or check the labels")
    return record


def main(argv: list[str] | None = None) -> dict | None:
    """`python -m distill.finetune`: parse argv and run; bad input exits with one line."""
    return run_command(lambda: run(parse_args(argv)), "rerun the same command with --resume to continue")


if __name__ == "__main__":
    main()
