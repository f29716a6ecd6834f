"""The data room: tasks, reading local files and GLUE, batching, augmentation, student tokenizers.

    from distill.data import resolve_task, load_splits
    task, splits = load_splits(resolve_task("sst2"), "../shared/data/glue/sst2")

Modules: `tasks` (Task, GLUE_TASKS, Split), `readers` (files and the hub), `metrics`,
`batching` (Encoded, pad, length-bucketed batches), `augment` (Tang et al.'s rules),
`tokenizer` (the student's tokenizer), `vocab` (vocabulary pruning).
"""

from distill.data.batching import Encoded, length_bucketed_batches, pad, pad_batch
from distill.data.metrics import METRIC_FNS, compute_metric
from distill.data.readers import (
    content_hash,
    find_split_file,
    infer_label_names,
    load_splits,
    read_split,
    read_transfer_file,
)
from distill.data.tasks import GLUE_TASKS, METRICS, Split, Task, default_task_name, resolve_task

__all__ = [
    "GLUE_TASKS", "METRICS", "METRIC_FNS", "Encoded", "Split", "Task", "compute_metric", "content_hash",
    "default_task_name", "find_split_file", "infer_label_names", "length_bucketed_batches", "load_splits",
    "pad", "pad_batch", "read_split", "read_transfer_file", "resolve_task",
]
