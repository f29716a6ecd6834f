"""Student text classifiers distilled from the BERT teacher.

Every student speaks `forward(input_ids, attention_mask) -> logits`, takes (B, T) inputs or
(B, 2, T) sentence pairs when its config says `pair=True`, and maps two shared knobs, `width`
and `depth`, onto its own fields:

    from students import build_student, config_to_dict, student_from_config
    model = build_student("bilstm", vocab_size=30522, num_labels=2, width=300, depth=1)
    same = student_from_config("bilstm", config_to_dict(model))
"""

import dataclasses
from types import MappingProxyType

import torch.nn as nn

from students.bilstm import BiLSTM, BiLSTMConfig
from students.cnn import TextCNN, TextCNNConfig
from students.transformer import TinyTransformer, TinyTransformerConfig

# read-only: a name always means the same class, nothing can be registered over it
STUDENTS = MappingProxyType({"bilstm": BiLSTM, "cnn": TextCNN, "transformer": TinyTransformer})

__all__ = [
    "STUDENTS",
    "BiLSTM",
    "BiLSTMConfig",
    "TextCNN",
    "TextCNNConfig",
    "TinyTransformer",
    "TinyTransformerConfig",
    "build_student",
    "student_from_config",
    "config_to_dict",
]


def _student_class(name: str) -> type[nn.Module]:
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; choose one of: {', '.join(STUDENTS)}")
    return STUDENTS[name]


def _check_fields(cls: type[nn.Module], given: dict) -> None:
    valid = [f.name for f in dataclasses.fields(cls.config_class)]
    unknown = [k for k in given if k not in valid]
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} config field(s) {', '.join(unknown)}; "
            f"valid fields: {', '.join(valid)}"
        )


def build_student(
    name: str,
    *,
    vocab_size: int,
    num_labels: int,
    pair: bool = False,
    pad_id: int = 0,
    width: int | None = None,
    depth: int | None = None,
    **overrides,
) -> nn.Module:
    """Build a student by name; width/depth set its size, overrides set any other config field."""
    cls = _student_class(name)
    _check_fields(cls, overrides)
    for knob, value in (("width", width), ("depth", depth)):
        if value is not None and not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{knob}: must be an int >= 1, got {value!r}")
    from_knobs = cls.config_class.knobs(width, depth)
    clash = [k for k in from_knobs if k in overrides]
    if clash:
        raise ValueError(f"{', '.join(clash)}: set by width/depth and given explicitly; give one")
    config = cls.config_class(
        vocab_size=vocab_size,
        num_labels=num_labels,
        pair=pair,
        pad_id=pad_id,
        **from_knobs,
        **overrides,
    )
    return cls(config)


def student_from_config(name: str, config_dict: dict) -> nn.Module:
    """Rebuild a student from a saved `config_to_dict` dict (e.g. read back from config.json). A field the
    dict lacks takes the value it had before the field existed (`saved_before`), else its default."""
    cls = _student_class(name)
    _check_fields(cls, config_dict)
    return cls(cls.config_class(**{**getattr(cls.config_class, "saved_before", {}), **config_dict}))


def config_to_dict(model: nn.Module) -> dict:
    """The model's config as a plain JSON-ready dict."""
    return dataclasses.asdict(model.config)
