"""Label a dataset with a teacher's logits once, so students train without the teacher in memory.

    python -m distill.label --teacher ./my-teacher --task sst2 --data ./glue/SST-2 --output-dir runs/sst2-labels
    python -m distill.label --teacher textattack/bert-base-uncased-SST-2 --task sst2 --output-dir runs/sst2-labels
    python -m distill.label --teacher ./t --task sst2 --augment none --output-dir runs/sst2-plain    # no copies
    python -m distill.label --teacher ./t --task sst2 --transfer-file unlabeled.txt --output-dir runs/sst2-transfer

The teacher labels the training rows, augmented copies of them (Tang et al.'s rules, on by default:
20 copies per text, 10 per pair, capped by --max-transfer-rows), dev, and a labelled test split if
the data has one. A second run with the same teacher, data and settings reuses the label set; a changed input
relabels it. A killed run resumes from the chunks it had finished.

    python -m distill.label ... --runtime onnx                  # the teacher on ONNX Runtime (CPU)
    python -m distill.label ... --shard 2/4                     # a quarter of the chunks (one of 4 jobs)
    python -m distill.label ... --merge                         # then: the 4 shards as one label set
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from distill.cli import AugmentFlags, DataFlags, _help, build_parser, quiet_progress, run_command
from distill.data.sources import read_transfer_file
from distill.errors import DistillError
from distill.outputs import check_output


@dataclass
class LabelArgs(AugmentFlags, DataFlags):
    """Everything `python -m distill.label` takes; each field is one dashed flag."""

    teacher: str | None = field(default=None, metadata=_help(
        "teacher: hub id or local folder of an AutoModelForSequenceClassification (required)"))
    output_dir: str | None = field(default=None, metadata=_help("where the label set goes (required)"))
    task: str | None = field(default=None, metadata=_help(
        "GLUE task (sst2, cola, mrpc, qqp, mnli, qnli, rte) or a custom name with --text-column; "
        "default: the --data folder's name for custom data (with --text-column), else sst2"))
    max_length: int = field(default=128, metadata=_help("teacher tokens per example (truncation)"))
    batch_size: int = field(default=64, metadata=_help("teacher batch size"))
    device: str | None = field(default=None, metadata=_help("cpu or cuda (default: cuda if present)"))
    threads: int | None = field(default=None, metadata=_help("CPU threads (default: torch's)"))
    trust_remote_code: bool = field(default=False, metadata=_help(
        "allow a hub teacher to run its own code (off: only trust code you have read)"))
    no_progress: bool = field(default=False, metadata=_help("no progress bar"))
    runtime: str = field(default="torch", metadata=_help(
        "what runs the teacher: torch; onnx (exported once with torch.onnx.export into the work folder, run by "
        "ONNX Runtime on the CPU with --threads, checked to within 1e-3 of PyTorch on the first chunk; it gives "
        "the same labels, so it shares torch's label sets); onnx-int8 (ONNX Runtime dynamic int8: its dev metric "
        "and agreement with the fp32 teacher go in the manifest, refused below 99% agreement)"))
    shard: str | None = field(default=None, metadata=_help(
        "K/N: label only chunk i with i % N == K-1 (a deterministic 1/N of the rows) into the work folder "
        "beside --output-dir, then stop; join the shards with --merge"))
    merge: list[str] | None = field(default=None, metadata={**_help(
        "join finished shards into one label set (identical to an unsharded run): the shards' --output-dir "
        "folders, or none when they all used this --output-dir; same teacher, data and settings as the shards"),
        "nargs": "*"})
    embedding_rows: str = field(default="all", metadata=_help(
        "teacher embedding rows to store for student initialisation: 'all', or 'used' (only the "
        "tokens the texts contain: a much smaller label set; unseen tokens start random)"))
    contextual_layer: str = field(default="none", metadata=_help(
        "also store, for the same rows, the teacher's hidden states after this layer pooled per token over the "
        "original training rows (at most 100,000), for --embedding-init teacher-contextual (the BiLSTM's "
        "default start when the label set has it): 'none' (the default; one more teacher pass over the rows), "
        "'middle' (half the teacher's depth: layer 3 of MiniLM-L6's 6), or a number from 0 (the embedding "
        "layer) to the teacher's depth"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.teacher:
            raise DistillError("--teacher is required: a hub id or a local model folder")
        if not self.output_dir:
            raise DistillError("--output-dir is required: the folder for the label set")
        if self.max_length < 8:
            raise DistillError(f"--max-length {self.max_length} is too short; use at least 8")
        if self.embedding_rows not in ("all", "used"):
            raise DistillError(f"--embedding-rows {self.embedding_rows}: choose 'all' or 'used'")
        if self.contextual_layer not in ("middle", "none") and not self.contextual_layer.isdigit():
            raise DistillError(f"--contextual-layer {self.contextual_layer}: write middle, none or a layer number")
        if self.batch_size < 1:
            raise DistillError(f"--batch-size {self.batch_size} must be >= 1")
        from distill.teacher.onnx_teacher import RUNTIMES

        if self.runtime not in RUNTIMES:
            raise DistillError(f"--runtime {self.runtime}: choose one of {', '.join(RUNTIMES)}")
        if self.shard is not None and self.merge is not None:
            raise DistillError("--shard and --merge: a command labels one shard or merges them, not both")
        self.shard_k_n()

    def shard_k_n(self) -> tuple[int, int] | None:
        """(K, N) of --shard K/N, checked; None without --shard."""
        if self.shard is None:
            return None
        try:
            k, n = (int(x) for x in self.shard.split("/"))
        except ValueError:
            raise DistillError(f"--shard {self.shard}: write K/N, e.g. --shard 2/4 (shard 2 of 4)") from None
        if not 1 <= k <= n:
            raise DistillError(f"--shard {self.shard}: K must be between 1 and N")
        return k, n


def label_main(argv: list[str] | None = None):
    """Parse argv, load the data, label it (or reuse a finished label set)."""
    from distill.teacher import labelling, load

    ns = build_parser(LabelArgs, "python -m distill.label", __doc__.split("\n\n")[0]).parse_args(argv)
    args = LabelArgs(**vars(ns))
    quiet_progress(args.no_progress)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_output(Path(args.output_dir), "label-set")  # a file or a foreign folder in the way: before any work
    task, splits = args.load_data(args.task)
    transfer = read_transfer_file(args.transfer_file, task) if args.transfer_file else None
    device = torch.device(args.device) if args.device else load.default_device()
    augment = args.augment_config(len(splits["train"]), task.pair, len(transfer or ()))
    return labelling.label(
        args.teacher, task, splits, args.output_dir, max_length=args.max_length,
        batch_size=args.batch_size, device=device, trust_remote_code=args.trust_remote_code,
        data_source=args.data_source or f"glue/{task.name}", progress=not args.no_progress,
        augment=augment, transfer=transfer, transfer_source=args.transfer_file or "",
        embedding_rows=args.embedding_rows, runtime=args.runtime, threads=args.threads,
        shard=args.shard_k_n(), merge=args.merge, contextual_layer=args.contextual_layer)


def main(argv: list[str] | None = None):
    """`python -m distill.label`; bad input exits with one line."""
    return run_command(lambda: label_main(argv))


if __name__ == "__main__":
    main()
