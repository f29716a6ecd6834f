"""The data room: tasks, reading local files and GLUE, batching, augmentation, student tokenizers.

    from distill.data import resolve_task, load_splits
    task, splits = load_splits(resolve_task("sst2"), "../shared/data/glue/sst2")

Modules: `tasks` (Task, GLUE_TASKS, Split), `readers` (local file formats), `sources` (a task's splits:
files, GLUE or any dataset, held-out dev), `metrics`,
`batching` (Encoded, pad, length-bucketed batches), `augment` (Tang et al.'s rules),
`tokenizer` (the student's tokenizer), `vocab` (vocabulary pruning).
"""

from distill.data.batching import Encoded, length_bucketed_batches, pad, pad_batch
from distill.data.metrics import METRIC_FNS, compute_metric
from distill.data.readers import find_split_file, infer_label_names, read_split
from distill.data.sources import content_hash, load_splits, read_transfer_file
from distill.data.tasks import GLUE_TASKS, METRICS, Split, Task, default_task_name, resolve_task

__all__ = [
    "GLUE_TASKS", "METRICS", "METRIC_FNS", "Encoded", "Split", "Task", "compute_metric", "content_hash",
    "default_task_name", "find_split_file", "infer_label_names", "length_bucketed_batches", "load_splits",
    "pad", "pad_batch", "read_split", "read_transfer_file", "resolve_task",
]
