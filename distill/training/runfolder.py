"""A run folder: what a trained student's folder holds, how it is written, and how it is read back.

    runs/sst2-bilstm/
        .distill-workbench.json   the marker: {"kind": "run"}; only such a folder is ever replaced
        config.json               student name and config, task, tokenizer, embedding init,
                                  vocabulary, label set (path and key), and every training flag ("args")
        model.safetensors         the weights (never a pickle)
        tokenizer.json            exactly what the student reads (HF tokenizers format)
        report.md, report.json    the comparison with the teacher (distill.training.report)
        tb/                       TensorBoard logs
        checkpoint/               only while training: what --resume continues from

`distill.train` writes one in place (it resumes), `distill.compress` builds one in a temporary folder
(`distill.outputs.staged`); `load_run` reads either, for export, compress, predict-side checks and the search.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

import students
from distill.data.tokenizer import StudentTokenizer
from distill.errors import DistillError
from distill.io import atomic_write_json, atomic_write_text, save_tensors

KIND = "run"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
CONFIG_KEYS = ("student", "student_config", "task", "tokenizer")


def run_config(args, model: torch.nn.Module, ls, tok: StudentTokenizer, init: str, vocabulary: dict) -> dict:
    """config.json of a run: what was built, from what, and every flag that made it."""
    return {
        "student": args.student,
        "student_config": students.config_to_dict(model),
        "task": ls.task.to_dict(),
        "tokenizer": {"kind": tok.kind, "max_length": tok.max_length, "vocab_size": tok.vocab_size,
                      "pad_id": tok.pad_id, "unk_id": tok.unk_id},
        "embedding_init": init,
        "vocabulary": vocabulary,
        "label_set": {"path": str(ls.path), "key": ls.key, "teacher": ls.teacher.get("id")},
        "args": args.identity(),
    }


def write_run_files(directory: Path, *, config: dict | None = None, tok: StudentTokenizer | None = None,
                    model: torch.nn.Module | None = None, report: dict | None = None,
                    markdown: str | None = None) -> None:
    """Write the given parts of a run folder, each file atomically (the weights need the config)."""
    if config is not None:
        atomic_write_json(directory / CONFIG, config)
    if tok is not None:
        tok.save(directory)
    if model is not None:
        save_tensors(directory / WEIGHTS, model.state_dict(), metadata={"student": config["student"]})
    if report is not None:
        atomic_write_json(directory / "report.json", report)
    if markdown is not None:
        atomic_write_text(directory / "report.md", markdown)


def finish_run(directory: Path) -> None:
    """The run is complete: its checkpoint is no longer needed."""
    shutil.rmtree(directory / "checkpoint", ignore_errors=True)


def load_run(run_dir: str | Path) -> tuple[torch.nn.Module, StudentTokenizer, dict]:
    """A trained student from its folder: (model in eval mode, tokenizer, config.json)."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    missing = [n for n in (CONFIG, WEIGHTS, TOKENIZER) if not (run_dir / n).is_file()]
    if missing:
        raise DistillError(f"{run_dir} is not a trained student (no {', '.join(missing)}); "
                           "train one with `python -m distill.train`")
    try:
        config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DistillError(f"{run_dir / CONFIG} is not valid JSON ({e}); train the run again") from None
    absent = [k for k in CONFIG_KEYS if not isinstance(config, dict) or k not in config]
    if absent:
        raise DistillError(f"{run_dir / CONFIG} lacks {', '.join(absent)}; it was not written by "
                           "`python -m distill.train`: train the run again")
    try:
        model = students.student_from_config(config["student"], config["student_config"])
        model.load_state_dict(load_file(str(run_dir / WEIGHTS)))
        tok = StudentTokenizer.load(run_dir, config["tokenizer"]["kind"], config["tokenizer"]["max_length"])
    except DistillError:
        raise
    except Exception as e:  # truncated weights, a config that does not match them, a broken tokenizer
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DistillError(f"{run_dir} cannot be loaded ({type(e).__name__}: {first}); the folder is damaged or "
                           "incomplete: train the run again") from None
    return model.eval(), tok, config
