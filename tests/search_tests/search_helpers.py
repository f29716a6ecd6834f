"""Shared pieces of the search tests: a tiny label set (made once per test session) and tiny flags.

Not a conftest.py: the tests' top conftest is imported by name (`from conftest import ...`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_CACHE: dict[str, Path] = {}


def make_labels(tmp_path_factory, teacher: Path, data: Path) -> Path:
    """A label set of the tiny SST-2 data by the tiny random teacher (240 train rows and one augmented copy
    of each, 40 dev rows)."""
    if "labels" not in _CACHE:
        from distill.label import main as label_main

        out = tmp_path_factory.mktemp("search-labels") / "labels"
        label_main(["--teacher", str(teacher), "--task", "sst2", "--data", str(data),
                    "--output-dir", str(out), "--augment-copies", "1", "--no-progress"])
        _CACHE["labels"] = out
    return _CACHE["labels"]


def tiny(labels: Path, out: Path, *extra) -> list[str]:
    """search.run flags for a search that takes a second or two per trial on one core. Latency is
    timed in PyTorch (no ONNX export per trial); test_latency.py passes --latency-runtime onnx after
    these (argparse keeps the last)."""
    return [str(a) for a in (
        "--labels", labels, "--output-dir", out, "--max-width", 32, "--max-embed-dim", 16,
        "--max-depth", 2, "--epochs", 2, "--batch-size", 32, "--latency-repeats", 2,
        "--latency-length", 8, "--latency-runtime", "torch", "--retrain", 0, "--no-progress", *extra)]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """`python -m search.run ARGV` in a child process (one thread), output to `log`."""
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    f = open(log, "w")  # noqa: SIM115 (closed by the child's exit; the test reads it afterwards)
    return subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, env=env,
                            stdout=f, stderr=subprocess.STDOUT)


def trials_of(storage: str, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
