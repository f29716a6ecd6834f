"""Classify texts with an exported bundle (made by `python -m distill.export`).

    python -m distill.predict exports/sst2-bilstm "a gorgeous, witty, seductive movie"
    cat reviews.txt | python -m distill.predict exports/sst2-bilstm --json
    python -m distill.predict exports/rte-cnn "A man sleeps.<TAB>Nobody is asleep."    # sentence pairs

The bundle runtime (distill.bundle.runtime) runs ONNX bundles with onnxruntime, tokenizers and
numpy alone, never torch; ExecuTorch bundles need the executorch runtime.
"""

from __future__ import annotations

import argparse
import json
import sys

from distill.bundle.runtime import Bundle, Prediction
from distill.cli import HelpFormatter, Parser, run_command
from distill.errors import DistillError


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m distill.predict",
                description="\n\n".join((__doc__ or "").split("\n\n")[:2]),
                epilog="Texts come as arguments, or one per line on stdin; a sentence-pair bundle\n"
                "takes 'first<TAB>second'. Each text gets its label and the probability of every\n"
                "label. Texts longer than the bundle's maximum length are truncated, as the\n"
                "tokenizer does in training; the output says so once.",
                formatter_class=HelpFormatter)
    p.add_argument("bundle", help="bundle folder (holds metadata.json)")
    p.add_argument("texts", nargs="*", help="texts to classify; none: read stdin, one per line")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per text and line: text, label, probabilities, truncated")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the runtime's)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per model call")
    return p


def _format(text: str, pred: Prediction, labels: list[str]) -> str:
    probs = "  ".join(f"{name} {pred.probabilities[name]:.3f}" for name in labels)
    return f"{pred.label}\t{probs}\t{text}"


def _chunks(texts, size: int):
    buf = []
    for t in texts:
        t = t.rstrip("\r\n")
        if not t.strip():
            continue  # blank lines on stdin carry no text
        buf.append(t)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise DistillError(f"--batch-size {args.batch_size} must be >= 1")
    if args.threads is not None and args.threads < 1:
        raise DistillError(f"--threads {args.threads} must be >= 1")
    if not args.texts and sys.stdin.isatty():
        raise DistillError("no texts: give them as arguments, or one per line on stdin")
    bundle = Bundle(args.bundle, threads=args.threads)
    source = args.texts if args.texts else sys.stdin
    n = n_truncated = 0
    for chunk in _chunks(source, args.batch_size):
        for text, pred in zip(chunk, bundle.predict(chunk, args.batch_size)):
            n += 1
            n_truncated += pred.truncated
            if args.json:
                print(json.dumps({"text": text, "label": pred.label,
                                  "probabilities": pred.probabilities, "truncated": pred.truncated},
                                 ensure_ascii=False))
            else:
                print(_format(text, pred, bundle.labels))
        sys.stdout.flush()
    if n_truncated:
        print(f"note: {n_truncated} of {n} text(s) had more than {bundle.max_length} tokens and were "
              f"truncated to the first {bundle.max_length}, as the tokenizer does", file=sys.stderr)
    return n


def main(argv: list[str] | None = None) -> None:
    """`python -m distill.predict`; bad input exits with one line."""
    run_command(lambda: run(argv), on_interrupt=None)


if __name__ == "__main__":
    main()
