"""Tasks: which text columns, labels and metric a classification task has.

GLUE tasks are known by name; a custom task names its own columns (`--text-column`, ...) and takes
its label names from the training data.

    from distill.data import resolve_task
    task = resolve_task("rte")                                  # GLUE: columns, labels, metric
    task = resolve_task("tickets", ("body",), "queue")          # custom: labels come from the data
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from distill.errors import DistillError

METRICS = ("accuracy", "f1", "mcc")


@dataclass(frozen=True)
class Task:
    """A classification task: its text column(s), label names and dev metric."""

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    metric: str = "accuracy"
    label_column: str = "label"
    hub_dev_split: str = "validation"
    # Column names that raw GLUE files use for the same fields (e.g. MRPC's "#1 String").
    local_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "text_columns": list(self.text_columns),
            "label_names": list(self.label_names),
            "metric": self.metric,
            "label_column": self.label_column,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        return cls(
            name=d["name"],
            text_columns=tuple(d["text_columns"]),
            label_names=tuple(d["label_names"]),
            metric=d["metric"],
            label_column=d.get("label_column", "label"),
        )


GLUE_TASKS: dict[str, Task] = {
    "sst2": Task("sst2", ("sentence",), ("negative", "positive")),
    "cola": Task("cola", ("sentence",), ("unacceptable", "acceptable"), metric="mcc"),
    "mrpc": Task(
        "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), metric="f1",
        local_aliases={"sentence1": ("#1 String",), "sentence2": ("#2 String",),
                       "label": ("Quality",)},
    ),
    "qqp": Task(
        "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), metric="f1",
        local_aliases={"label": ("is_duplicate",)},
    ),
    "mnli": Task(
        "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
        hub_dev_split="validation_matched",
        local_aliases={"premise": ("sentence1",), "hypothesis": ("sentence2",),
                       "label": ("gold_label",)},
    ),
    "qnli": Task("qnli", ("question", "sentence"), ("entailment", "not_entailment")),
    "rte": Task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment")),
}


@dataclass
class Split:
    """One split in memory: the text column(s) and integer labels (-1 where there is none)."""

    texts: list[tuple[str, ...]]
    labels: np.ndarray  # (N,) int64
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def column(self, i: int) -> list[str]:
        return [t[i] for t in self.texts]


_ANNOUNCED: set[str] = set()


def glue_key(name: str) -> str:
    """The GLUE spelling of a task name: GLUE names match case-insensitively, with or without '-' (SST-2)."""
    return name.lower().replace("-", "")


def safe_name(name: str) -> str:
    """A task name as one path component (default output folders): anything but letters, digits, '.', '_'
    and '-' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "task"


def default_task_name(task: str | None, data: str | None, text_columns) -> str:
    """--task if given; for custom data (--data with --text-column) the data folder's name, as it is
    (said once per process); else sst2."""
    if task:
        return task
    if not (data and text_columns):
        return "sst2"
    name = Path(data).resolve().name
    if name not in _ANNOUNCED:
        _ANNOUNCED.add(name)
        print(f"task {name} (from the --data folder's name; --task to change it)")
    return name


def resolve_task(
    name: str,
    text_columns: tuple[str, ...] | None = None,
    label_column: str | None = None,
    label_names: tuple[str, ...] | None = None,
    metric: str | None = None,
) -> Task:
    """The task for a GLUE name (any case, '-' ignored), or a custom task whose columns the user names;
    a custom task keeps its name as given."""
    if glue_key(name) in GLUE_TASKS:
        name = glue_key(name)
        task = GLUE_TASKS[name]
        if text_columns:
            if len(text_columns) != len(task.text_columns):
                raise DistillError(
                    f"task {name} has {len(task.text_columns)} text column(s), "
                    f"but {len(text_columns)} were named; drop --text-pair-column or add it"
                )
            task = replace(task, text_columns=tuple(text_columns), local_aliases={})
        if label_column:
            task = replace(task, label_column=label_column)
        if metric:
            task = replace(task, metric=metric)
        return task
    if not text_columns:
        raise DistillError(
            f"unknown task '{name}'; choose one of: {', '.join(GLUE_TASKS)}, or name a custom "
            "task's columns with --text-column (and --text-pair-column, --label-column) and --data"
        )
    if metric and metric not in METRICS:
        raise DistillError(f"unknown metric '{metric}'; choose one of: {', '.join(METRICS)}")
    return Task(
        name=name,
        text_columns=tuple(text_columns),
        label_names=tuple(label_names or ()),  # filled from the training data when empty
        metric=metric or "accuracy",
        label_column=label_column or "label",
    )
