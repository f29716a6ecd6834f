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
                "label, one output line per input line (a blank line gets an empty one; --skip-blank\n"
                "drops them). Texts longer than the bundle's maximum length are truncated, as the\n"
                "tokenizer does in training; the output says so once.",
                formatter_class=HelpFormatter)
    p.add_argument("bundle", help="bundle folder (holds metadata.json)")
    p.add_argument("texts", nargs="*", help="texts to classify; none: read stdin, one per line")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per text and line: text, label, probabilities, truncated")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the runtime's)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per model call")
    p.add_argument("--skip-blank", action="store_true",
                   help="drop blank input lines (and lines that are not UTF-8) instead of giving each an empty "
                   "result line; by default there is one output line per input line")
    return p


def _format(text: str, pred: Prediction, labels: list[str]) -> str:
    probs = "  ".join(f"{name} {pred.probabilities[name]:.3f}" for name in labels)
    return f"{pred.label}\t{probs}\t{text}"


def _stdin_lines(stream=None):
    """(line number, text or None) per line of stdin, read as bytes and decoded line by line: a line that
    is not valid UTF-8 is reported on stderr and gives None, and the stream goes on."""
    stream = stream if stream is not None else sys.stdin.buffer
    for n, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            print(f"line {n}: not valid UTF-8, skipped", file=sys.stderr)
            yield n, None
            continue
        if n == 1:
            text = text.removeprefix("\ufeff")  # a byte-order mark is not text
        yield n, text.rstrip("\r\n")


def _chunks(items, size: int, skip_blank: bool):
    """Lists of (text or None) in input order holding at most `size` texts to classify; None stands for a
    line with no text (blank, or not UTF-8), which gets an empty result line unless `skip_blank`."""
    buf, n_texts = [], 0
    for _, t in items:
        if t is None or not t.strip():
            if not skip_blank:
                buf.append(None)
            continue
        buf.append(t)
        n_texts += 1
        if n_texts == size:
            yield buf
            buf, n_texts = [], 0
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
    source = enumerate(args.texts, start=1) if args.texts else _stdin_lines()
    n = n_truncated = 0
    for chunk in _chunks(source, args.batch_size, args.skip_blank):
        texts = [t for t in chunk if t is not None]
        preds = iter(bundle.predict(texts, args.batch_size) if texts else [])
        for text in chunk:
            if text is None:  # one output line per input line: an empty result
                print(json.dumps({"text": "", "label": None, "probabilities": None, "truncated": False})
                      if args.json else "")
                continue
            pred = next(preds)
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
