"""The label set a training command trains on: --labels, the teacher's (labelled now or found in the cache),
the gold labels alone (a baseline without a teacher), or the shipped SST-2 set; and the one line that says how
good its teacher is.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from distill.data.metrics import learned_nothing, majority_baseline
from distill.data.sources import content_hash
from distill.data.tasks import Split, Task, glue_key, safe_name
from distill.errors import DistillError
from distill.outputs import staged
from distill.teacher.labelling import cache_dir, compute_key, is_finished, label
from distill.teacher.labelset import DEFAULT_LABELS, FORMAT_VERSION, LabelSet, write_label_set


def gold_label_set(task: Task, splits: dict[str, Split], data_source: str = "") -> LabelSet:
    """A label set of the gold labels alone (no teacher): teacher logits are zero, no tokenizer or embeddings.

    For a gold-only baseline (`distill.train --data D --alpha 1` without --teacher). Kept in the cache,
    named by the data's content, and reused."""
    data_hash = content_hash(splits)
    key = compute_key("gold-only", data_hash, task, 0)
    output_dir = cache_dir() / "labels" / f"{safe_name(task.name)}-gold-{key[:16]}"
    if is_finished(output_dir, key):
        return LabelSet.load(output_dir)
    manifest = {
        "format_version": FORMAT_VERSION, "key": key, "task": task.to_dict(),
        "teacher": {"id": None, "name": None, "gold_only": True, "dev_metric": None, "test_metric": None},
        "data": {"source": data_source, "hash": data_hash, "rows": {k: len(v) for k, v in splits.items()}},
        "augment": None, "settings": {}, "gold_only": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    logits = {k: np.zeros((len(v), task.num_labels), dtype=np.float32) for k, v in splits.items()}
    origin = {"train": ["train"] * len(splits["train"])}
    source = {"train": np.arange(len(splits["train"]))}
    with staged(output_dir, "label-set") as tmp_dir:
        write_label_set(tmp_dir, manifest, splits, logits, None, origin=origin, source=source)
    return LabelSet.load(output_dir)


def teacher_summary(ls: LabelSet) -> str | None:
    """'teacher dev accuracy 0.8500 beside the majority-class baseline 0.5000' for a label set's teacher (with a
    warning when it seems to have learned nothing); None for a gold-only label set or without dev labels."""

    metric, name = ls.teacher.get("dev_metric"), ls.task.metric
    has = ls.labels["dev"] >= 0
    if ls.teacher.get("gold_only") or metric is None or not has.any():
        return None
    train = ls.labels["train"][ls.origin["train"] == 0]
    base = majority_baseline(name, ls.labels["dev"][has], train)
    text = f"teacher dev {name} {metric:.4f} beside the majority-class baseline {base:.4f}"
    why = learned_nothing(name, metric, ls.logits["dev"][has].argmax(1), ls.labels["dev"][has], train,
                          ls.task.label_names)
    return text + (f"\nwarning: the teacher seems to have learned nothing: {why}" if why else "")


def _wants_contextual(args) -> bool:
    """Whether the students asked for start from the teacher's pooled hidden states (then labelling stores them)."""
    from distill.training.embeddings import wants_contextual

    return wants_contextual(str(getattr(args, "student", "")).split(","), getattr(args, "embedding_init", "auto"),
                            getattr(args, "tokenizer", "teacher"))


def label_set_for(args, device: torch.device) -> LabelSet:
    """The label set a training command trains on: --labels, or the teacher's (labelled now, or found in
    the cache by its key), or the shipped SST-2 one. `args` has the fields of DataFlags and AugmentFlags
    plus labels, teacher, task, teacher_max_length, label_batch_size, trust_remote_code, no_progress."""
    from distill.data.sources import read_transfer_file

    if args.labels:
        ls = LabelSet.load(args.labels)
    elif getattr(args, "gold_only", False):
        task, splits = args.load_data(args.task)
        print("no teacher: a gold-only baseline on the gold labels of "
              f"{args.data_source} (teacher logits zero; the report has no teacher row)")
        ls = gold_label_set(task, splits, args.data_source or f"glue/{task.name}")
    elif args.teacher:
        task, splits = args.load_data(args.task)
        transfer = read_transfer_file(args.transfer_file, task) if args.transfer_file else None
        augment = args.augment_config(len(splits["train"]), task.pair, len(transfer or ()))
        ls = label(args.teacher, task, splits, None, max_length=args.teacher_max_length,
                   batch_size=args.label_batch_size, device=device, trust_remote_code=args.trust_remote_code,
                   data_source=args.data_source or f"glue/{task.name}", progress=not args.no_progress,
                   augment=augment, transfer=transfer, transfer_source=args.transfer_file or "",
                   contextual_layer="middle" if _wants_contextual(args) else "none")
    else:
        if not (DEFAULT_LABELS / "manifest.json").is_file():
            raise DistillError(f"the shipped label set is missing from {DEFAULT_LABELS}; reinstall "
                               "the package, or pass --teacher or --labels")
        ls = LabelSet.load(DEFAULT_LABELS)
    if args.task and args.task != ls.task.name and glue_key(args.task) != ls.task.name:
        raise DistillError(f"--task {args.task} does not match the label set's task "
                           f"'{ls.task.name}' ({ls.path}); pass --teacher with --task, or other --labels")
    return ls
