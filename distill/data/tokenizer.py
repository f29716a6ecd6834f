"""The student's tokenizer: the teacher's (WordPiece/BPE, the default) or a word-level vocabulary.

Either way it is one HF `tokenizers.Tokenizer` saved as `tokenizer.json` beside the student, with
no special tokens added around the text and truncation at the student's maximum length, so that
`Tokenizer.from_file("tokenizer.json").encode(text).ids` is exactly what the student was fed.

Word-level vocabularies follow Tang et al. 2019: lowercased words from the training text, with a
minimum frequency and a maximum size; every other word maps to the unknown token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

from distill.data.augment import MASK
from distill.data.batching import Encoded, encode_sequences
from distill.data.tasks import Split
from distill.errors import DistillError

PAD, UNK = "[PAD]", "[UNK]"
_PAD_CANDIDATES = ("[PAD]", "<pad>", "<PAD>")
_UNK_CANDIDATES = ("[UNK]", "<unk>", "<UNK>")


@dataclass
class StudentTokenizer:
    """A `tokenizers.Tokenizer` plus the ids the student needs: pad and unknown."""

    tokenizer: Tokenizer
    kind: str  # "teacher" | "word"
    max_length: int

    def __post_init__(self) -> None:
        tok = self.tokenizer
        tok.no_padding()
        tok.enable_truncation(self.max_length)
        self.pad_id = _first_id(tok, _PAD_CANDIDATES, "padding")
        self.unk_id = _first_id(tok, _UNK_CANDIDATES, "unknown")
        self.unk_token = tok.id_to_token(self.unk_id)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids for each text; a text with no known token becomes [unknown].

        Words masked by augmentation (the MASK placeholder) become the unknown token: the
        student has no mask token (Tang et al. 2019)."""
        texts = [t.replace(MASK, f" {self.unk_token} ") if MASK in t else t for t in texts]
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [e.ids or [self.unk_id] for e in encs]

    def save(self, directory: Path) -> Path:
        """Write `tokenizer.json` into `directory` (atomically) and return its path."""
        from distill.io import atomic_write_text

        path = Path(directory) / "tokenizer.json"
        atomic_write_text(path, self.tokenizer.to_str(pretty=False))
        return path

    @classmethod
    def load(cls, directory: Path, kind: str, max_length: int) -> StudentTokenizer:
        return cls(Tokenizer.from_file(str(Path(directory) / "tokenizer.json")), kind, max_length)


def _first_id(tok: Tokenizer, candidates: tuple[str, ...], what: str) -> int:
    for token in candidates:
        i = tok.token_to_id(token)
        if i is not None:
            return i
    raise DistillError(f"the tokenizer has no {what} token (looked for {', '.join(candidates)}); "
                       "use --tokenizer word to build a word-level vocabulary instead")


def from_teacher(tokenizer_json: str, max_length: int) -> StudentTokenizer:
    """The teacher's tokenizer without its [CLS]/[SEP] template (students need none)."""
    tok = Tokenizer.from_str(tokenizer_json)
    data = json.loads(tokenizer_json)
    if data.get("post_processor") is not None:
        tok.post_processor = None
    return StudentTokenizer(tok, "teacher", max_length)


def train_word_level(
    texts: Iterable[str], max_length: int, min_frequency: int = 1, max_size: int = 50_000
) -> StudentTokenizer:
    """A lowercased word-level vocabulary built from `texts` (Tang et al. 2019)."""
    if max_size < 3:
        raise DistillError(f"--vocab-max-size {max_size} is too small; it must hold at least "
                           "[PAD], [UNK] and one word")
    tok = Tokenizer(WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # Whitespace then punctuation: "movie," -> "movie" ","; SST-2 is already tokenized this way.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    trainer = WordLevelTrainer(
        vocab_size=max_size, min_frequency=min_frequency, special_tokens=[PAD, UNK],
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size() <= 2:
        raise DistillError(f"no word occurs at least {min_frequency} times in the training text; "
                           "lower --vocab-min-freq")
    return StudentTokenizer(tok, "word", max_length)


def encode_chunks(chunks, tok: StudentTokenizer, labels: np.ndarray, logits: np.ndarray | None,
                  pair: bool) -> Encoded:
    """Tokenize texts arriving in chunks (lists of tuples of sides) into one Encoded split."""
    def sequences():
        for chunk in chunks:
            sides = [tok.encode([row[i] for row in chunk]) for i in range(2 if pair else 1)]
            yield [ids for row in zip(*sides) for ids in row]  # row-major: row0 a, row0 b, row1 a, ...

    return encode_sequences(sequences(), labels, logits, pair, tok.pad_id)


def encode(split: Split, logits: np.ndarray | None, tok: StudentTokenizer) -> Encoded:
    """Tokenize every row of an in-memory split with the student's tokenizer."""
    return encode_chunks([split.texts], tok, split.labels, logits, pair=len(split.texts[0]) == 2)
