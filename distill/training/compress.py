"""Compress a trained student's embedding table offline, with no further training.

    python -m distill.compress runs/sst2-bilstm --embedding-rank 64 --method svd
    python -m distill.compress runs/sst2-bilstm --embedding-rank 32 --method autoencoder --output-dir runs/bilstm-r32

The table E (V, d) becomes two factors, E ~ A B with A (V, r) and B (r, d): by truncated SVD, or
by a direction-loss autoencoder (Bałazy et al. 2021: cosine distance plus squared error) whose
encoder output is A and whose linear decoder is B. The student keeps them as a lookup followed by
a projection, so a rank-r table costs r (V + d) numbers instead of V d, and exports as two
matrices. The output is an ordinary run folder (model.safetensors, config.json, tokenizer.json,
report.md/json): it loads, evaluates, reports and exports like any other.
"""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

import students
from distill.cli import _help, build_parser, check_finite, run_command
from distill.data.metrics import compute_metric
from distill.errors import DistillError
from distill.outputs import check_output, staged
from distill.teacher.labelset import LabelSet
from distill.training.embeddings import METHODS, AutoencoderConfig, autoencoder_factors, fidelity, svd_factors
from distill.training.fit import predict
from distill.training.report import build_report, render_markdown
from distill.training.runfolder import KIND, TOKENIZER, load_run, write_run_files
from distill.training.student import teacher_length


@dataclass
class CompressArgs:
    """Everything `python -m distill.compress` takes (run_dir is positional)."""

    run_dir: str = field(default="", metadata=_help(
        "a trained student: the output folder of `python -m distill.train` (or a search's best/trial-N)"))
    embedding_rank: int = field(default=64, metadata=_help(
        "rank r of the factored table; must be below the student's embedding size"))
    method: str = field(default="svd", metadata=_help(
        "svd (truncated SVD: least squared error) or autoencoder (direction-loss autoencoder)"))
    output_dir: str | None = field(default=None, metadata=_help(
        "the compressed run's folder; default <run_dir>-<method>-r<rank>"))
    labels: str | None = field(default=None, metadata=_help(
        "label set whose dev split scores the result; default: the one the student was trained on"))
    cos_weight: float = field(default=1.0, metadata=_help(
        "autoencoder: weight of the cosine-distance (direction) term; 0 gives a plain squared-error autoencoder"))
    mse_weight: float = field(default=1.0, metadata=_help("autoencoder: weight of the squared-error term"))
    ae_epochs: int = field(default=40, metadata=_help("autoencoder: passes over the table"))
    seed: int = field(default=0, metadata=_help("autoencoder: random seed"))
    threads: int | None = field(default=None, metadata=_help("CPU threads (default: torch's)"))
    latency_repeats: int = field(default=20, metadata=_help(
        "timed forward passes per model at batch 1 for the report"))
    overwrite: bool = field(default=False, metadata=_help("replace an existing --output-dir"))
    no_progress: bool = field(default=False, metadata=_help("no progress bars"))

    def __post_init__(self) -> None:
        check_finite(self)
        if self.method not in METHODS:
            raise DistillError(f"--method {self.method}: choose one of: {', '.join(METHODS)}")
        if self.embedding_rank < 1:
            raise DistillError(f"--embedding-rank {self.embedding_rank} must be >= 1")
        if self.ae_epochs < 1:
            raise DistillError(f"--ae-epochs {self.ae_epochs} must be >= 1")
        try:
            self.autoencoder_config()
        except ValueError as e:
            raise DistillError(f"--cos-weight/--mse-weight: {e}") from None

    def autoencoder_config(self) -> AutoencoderConfig:
        return AutoencoderConfig(cos_weight=self.cos_weight, mse_weight=self.mse_weight,
                                 epochs=self.ae_epochs, seed=self.seed)


def parse_args(argv: list[str] | None = None) -> CompressArgs:
    doc = (__doc__ or "").split("\n\n")
    parser = build_parser(CompressArgs, "python -m distill.compress", "\n\n".join(doc[:2]), positional=("run_dir",))
    return CompressArgs(**vars(parser.parse_args(argv)))


def factor(table: torch.Tensor, rank: int, method: str, pad_id: int, cfg: AutoencoderConfig,
           progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(A (V, r), B (r, d), details) for a student's table; the pad row of A is zero."""
    table = table.detach().float()
    keep = torch.ones(table.shape[0], dtype=torch.bool)
    keep[pad_id] = False  # the pad row is zero and stays zero; it is not fitted
    details: dict = {"method": method, "rank": rank}
    if method == "svd":
        a, b = svd_factors(table, rank)
    else:
        a_fit, b, result = autoencoder_factors(table[keep], rank, cfg, progress)
        a = torch.zeros(table.shape[0], rank)
        a[keep] = a_fit
        details["autoencoder"] = {**asdict(cfg), "seconds": round(result.seconds, 1),
                                  "first_epoch": result.history[0], "last_epoch": result.history[-1]}
    a[pad_id] = 0.0
    details["fidelity"] = fidelity(table, a @ b, keep)
    return a, b, details


def compressed_student(model: torch.nn.Module, name: str, rank: int, a: torch.Tensor, b: torch.Tensor):
    """A copy of `model` whose embedding table is the factors A (V, r), B (r, d)."""
    cfg = {**students.config_to_dict(model), "embedding_rank": rank}
    new = students.student_from_config(name, cfg)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("embedding.")}
    state["embedding.lookup.weight"] = a.contiguous()
    state["embedding.proj.weight"] = b.T.contiguous()  # nn.Linear keeps (out, in)
    new.load_state_dict(state)
    return new.eval()


def run(args: CompressArgs) -> dict:
    """Factor, score and write the compressed run; returns its report."""
    if args.threads:
        torch.set_num_threads(args.threads)
    src = Path(args.run_dir)
    out = Path(args.output_dir or f"{str(src).rstrip('/')}-{args.method}-r{args.embedding_rank}")
    if check_output(out, KIND) == "ours" and not args.overwrite:
        raise DistillError(f"--output-dir {out} already holds a run; pass --overwrite to replace it, or choose "
                           "another folder")
    model, tok, config = load_run(src)
    name, scfg = config["student"], config["student_config"]
    if scfg.get("embedding_rank"):
        raise DistillError(f"{src} is already compressed (rank {scfg['embedding_rank']}); compress the run "
                           f"it came from ({config.get('compression', {}).get('source', 'its source')}) instead")
    table = model.embedding.weight
    vocab, dim = table.shape
    if args.embedding_rank >= min(dim, vocab):
        raise DistillError(f"--embedding-rank {args.embedding_rank} is not below the embedding size of {src} "
                           f"({vocab:,} x {dim}): nothing to compress; choose a rank from 1 to {min(dim, vocab) - 1}")

    path = args.labels or config.get("label_set", {}).get("path")
    if not path or not Path(path).is_dir():
        raise DistillError(f"scoring the compressed student needs the dev set, but the label set ({path}) is "
                           "not there; pass --labels with the label set the student was trained on")
    ls = LabelSet.load(path)
    if ls.task.name != config["task"]["name"]:
        raise DistillError(f"--labels {path} is for task '{ls.task.name}', the student for "
                           f"'{config['task']['name']}'; pass the label set it was trained on")
    dev = ls.encode("dev", tok)
    has = dev.labels >= 0

    def score(m: torch.nn.Module) -> tuple[float, np.ndarray]:
        logits = predict(m, dev)
        return compute_metric(ls.task.metric, logits[has].argmax(1), dev.labels[has]), logits

    source_metric, source_logits = score(model)
    t0 = time.perf_counter()
    print(f"factoring the {vocab:,} x {dim} embedding table of {src} at rank {args.embedding_rank} "
          f"by {args.method} ...")
    a, b, details = factor(table, args.embedding_rank, args.method, tok.pad_id, args.autoencoder_config(),
                           progress=not args.no_progress)
    small = compressed_student(model, name, args.embedding_rank, a, b)
    metric, logits = score(small)
    fid = details["fidelity"]
    print(f"done in {time.perf_counter() - t0:.1f} s: relative error {fid['relative_error']:.4f}, mean cosine "
          f"{fid['mean_cosine']:.4f}; dev {ls.task.metric} {100 * metric:.2f} (was {100 * source_metric:.2f})")
    emb_before = vocab * dim
    emb_after = sum(p.numel() for p in small.embedding.parameters())
    compression = {
        **details, "source": str(src), "table": [vocab, dim],
        "embedding_params": {"before": emb_before, "after": emb_after},
        "source_dev_metric": source_metric, "dev_metric": metric,
        "drop_from_source": round(source_metric - metric, 6),
        "agreement_with_source": float((logits.argmax(1) == source_logits.argmax(1)).mean()),
    }
    print("measuring sizes and speeds of teacher, student and reference ...")
    report = build_report(
        task=ls.task, teacher=ls.teacher, student_name=f"{name} (rank-{args.embedding_rank} {args.method})",
        student=small, student_vocab=vocab, teacher_length=teacher_length(ls),
        student_length=max(1, int(np.median(dev.lengths))), student_metric=metric,
        agreement=float((logits.argmax(1) == dev.teacher_logits.argmax(1)).mean()),
        repeats=args.latency_repeats, extra={"compression": compression},
    )
    md = render_markdown(report) + (
        f"\nCompressed from {src} with no training: the {vocab:,} x {dim} embedding table "
        f"({emb_before / 1e6:.2f}M parameters) became rank-{args.embedding_rank} factors by {args.method} "
        f"({emb_after / 1e6:.3f}M; relative error {fid['relative_error']:.3f}, mean cosine "
        f"{fid['mean_cosine']:.3f}). Dev {ls.task.metric} {100 * metric:.2f} against {100 * source_metric:.2f} "
        f"before: a drop of {100 * (source_metric - metric):+.2f} points; "
        f"{100 * compression['agreement_with_source']:.1f}% of dev predictions unchanged.\n")

    with staged(out, KIND) as tmp:  # the compressed run appears whole or not at all
        new_config = {**config, "student_config": students.config_to_dict(small), "compression": compression}
        write_run_files(tmp, config=new_config, model=small, report=report, markdown=md)
        shutil.copy2(src / TOKENIZER, tmp / TOKENIZER)
    print()
    print(md)
    print(f"saved the compressed student to {out}/; export it with:")
    print(f"  python -m distill.export {shlex.quote(str(out))}")
    return report


def main(argv: list[str] | None = None) -> dict | None:
    """`python -m distill.compress`: parse argv and run; bad input exits with one line."""
    return run_command(lambda: run(parse_args(argv)), "nothing was written")


if __name__ == "__main__":
    main()
