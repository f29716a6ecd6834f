"""Vocabulary pruning: keep the tokens the training texts use, drop the rest of the table.

A teacher's WordPiece vocabulary has ~30k tokens; SST-2 uses ~12k of them, so most of a student's
embedding table is rows no training example ever reaches. `prune_tokenizer` keeps the special
tokens and every token that occurs in the training (and transfer) texts at least `min_count`
times, renumbers them in their old order, and returns a tokenizer over only those tokens, plus
the old id of each new id so that tables can be gathered (`table[kept]`).

The pruned tokenizer is an ordinary `tokenizer.json` (and `vocab.txt` in an export), so a phone
that implements WordPiece from `vocab.txt` tokenizes exactly as the student was trained.
A word made only of kept tokens is tokenized exactly as before (WordPiece's greedy longest match
over a subset of the vocabulary finds the same pieces when they are all still there); any other
word is split into the kept pieces that cover it, or becomes the unknown token when none do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from distill.data.tokenizer import StudentTokenizer
from distill.errors import DistillError

PRUNABLE = ("WordPiece", "WordLevel")  # models whose vocabulary is a plain token -> id map


@dataclass
class Pruned:
    tokenizer: StudentTokenizer
    kept: np.ndarray  # (V_new,) old id of each new id, increasing
    old_size: int
    min_count: int
    dropped_below_min_count: int  # tokens the texts use fewer than min_count times

    @property
    def new_size(self) -> int:
        return len(self.kept)

    def summary(self) -> dict:
        return {"pruned": True, "min_count": self.min_count, "old_size": self.old_size,
                "new_size": self.new_size, "dropped_below_min_count": self.dropped_below_min_count}


def prune_tokenizer(tok: StudentTokenizer, counts: np.ndarray, min_count: int = 1) -> Pruned:
    """Keep special tokens and tokens with counts[id] >= min_count; counts is (V_old,) per token id."""
    if min_count < 1:
        raise DistillError(f"--prune-min-count {min_count} must be >= 1")
    data = json.loads(tok.tokenizer.to_str())
    kind = data["model"]["type"]
    if kind not in PRUNABLE:
        raise DistillError(f"--prune-vocab works on WordPiece and word-level vocabularies; this "
                           f"tokenizer is {kind}. Drop --prune-vocab, or use --tokenizer word")
    vocab: dict[str, int] = data["model"]["vocab"]
    old_size = tok.vocab_size
    counts = np.pad(np.asarray(counts), (0, max(0, old_size - len(counts))))[:old_size]
    special = {a["id"] for a in data.get("added_tokens", []) if a.get("special")} | {tok.pad_id, tok.unk_id}
    used = counts >= min_count
    if not used.any():
        raise DistillError(f"--prune-vocab would leave no tokens: none occurs {min_count} or more times in "
                           "the training texts; lower --prune-min-count")
    keep = np.flatnonzero(used | np.isin(np.arange(old_size), list(special)))
    new_id = {int(o): n for n, o in enumerate(keep)}
    data["model"]["vocab"] = {t: new_id[i] for t, i in sorted(vocab.items(), key=lambda kv: kv[1]) if i in new_id}
    data["added_tokens"] = [{**a, "id": new_id[a["id"]]} for a in data.get("added_tokens", [])
                            if a["id"] in new_id]
    pruned = StudentTokenizer(Tokenizer.from_str(json.dumps(data)), tok.kind, tok.max_length)
    if pruned.vocab_size != len(keep):
        raise DistillError(f"pruning the vocabulary gave {pruned.vocab_size} tokens, expected {len(keep)}; "
                           "the tokenizer has tokens outside its model's vocabulary. Drop --prune-vocab")
    dropped = int(((counts > 0) & (counts < min_count)).sum())
    return Pruned(pruned, keep.astype(np.int64), old_size, min_count, dropped)


def token_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """(V,) how often each id occurs in a flat array of token ids."""
    return np.bincount(tokens.astype(np.int64), minlength=vocab_size)
