"""Tang et al. 2019's data augmentation: more sentences for the teacher to label.

Three rules, applied word by word to a whitespace-tokenized text with an explicit `random.Random`:
- masking (p_mask): the word becomes MASK, which the teacher reads as its mask token and the
  student as its unknown token;
- POS-guided replacement (p_pos): the word becomes another word of the same universal POS tag,
  drawn from the training corpus's unigram distribution for that tag (exclusive with masking:
  one draw u ~ U(0, 1) per word, mask if u < p_mask, replace if u < p_mask + p_pos);
- n-gram sampling (p_ng): with probability p_ng the result is cut down to a random contiguous
  n-gram, n uniform in 1..5.

The corpus is POS-tagged once (NLTK's averaged perceptron tagger, universal tagset), in batches.

    from distill.data.augment import AugmentConfig, augment_split
    rows, source, rows_per_s = augment_split(train_texts, AugmentConfig(copies=10))
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from distill.cli import progress_bar
from distill.errors import DistillError

MASK = "[MASK]"  # placeholder in augmented text; tokenizers map it to their mask / unknown token
MAX_NGRAM = 5


@dataclass(frozen=True)
class AugmentConfig:
    """The rules' probabilities and how many distinct copies to make per example."""

    copies: int = 10
    p_mask: float = 0.1
    p_pos: float = 0.1
    p_ng: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("p_mask", "p_pos", "p_ng"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise DistillError(f"--{name.replace('_', '-')} {v} is outside [0, 1]")
        if self.p_mask + self.p_pos > 1.0:
            raise DistillError(f"--p-mask + --p-pos = {self.p_mask + self.p_pos} exceeds 1; "
                               "they share one draw per word")
        if self.copies < 0:
            raise DistillError(f"--augment-copies {self.copies} is negative; use 0 or more")


def tokenize(text: str) -> list[str]:
    """Whitespace words; GLUE text is already tokenized or close to it."""
    return text.split()


_TAGGERS: dict = {}  # NLTK's data path -> (tagger, map_tag): loading takes about 2 s, once per process


def load_tagger():
    """(NLTK's averaged perceptron tagger, map_tag); a DistillError saying how to get what is missing."""
    try:
        import nltk
        from nltk.tag import PerceptronTagger
        from nltk.tag.mapping import map_tag

        key = tuple(nltk.data.path)
        if key not in _TAGGERS:
            tagger = PerceptronTagger()
            map_tag("en-ptb", "universal", "NN")  # loads the tagset map, so a missing one fails here
            _TAGGERS[key] = (tagger, map_tag)
    except ImportError:
        raise DistillError("POS-guided replacement needs NLTK: pip install 'distill-workbench[augment]'") from None
    except LookupError:
        where = os.environ.get("NLTK_DATA", "~/nltk_data")
        raise DistillError(
            "NLTK's tagger data is missing; run: python -m nltk.downloader -d "
            f"{where} averaged_perceptron_tagger_eng universal_tagset "
            "(and set NLTK_DATA to that folder)") from None
    return _TAGGERS[key]


def tagger_problem() -> str | None:
    """Why POS-guided replacement cannot run here (NLTK or its data missing), or None when it can."""
    try:
        load_tagger()
    except DistillError as e:
        return str(e)
    return None


def rules(config: AugmentConfig) -> list[str]:
    """The rules a config applies, by name: mask, pos, ngram."""
    return [name for name, p in (("mask", config.p_mask), ("pos", config.p_pos), ("ngram", config.p_ng)) if p > 0]


def pos_tag_corpus(texts: list[list[str]], batch_size: int = 2048, progress: bool = True) -> list[list[str]]:
    """Universal POS tags for each tokenized text, tagged once, in batches."""
    tagger, map_tag = load_tagger()
    tags: list[list[str]] = []
    with progress_bar(total=len(texts), desc="POS tagging", unit="text", disable=not progress, mininterval=1.0) as bar:
        for i in range(0, len(texts), batch_size):
            batch = texts[i : i + batch_size]
            for sent in tagger.tag_sents(batch):
                tags.append([map_tag("en-ptb", "universal", t) for _, t in sent])
            bar.update(len(batch))
    return tags


class Augmenter:
    """Applies the three rules with a per-tag unigram table built from the training corpus."""

    def __init__(self, config: AugmentConfig, by_tag: dict[str, tuple[list[str], list[int]]]):
        self.config = config
        self.by_tag = by_tag  # tag -> (words, cumulative counts) for sampling

    @classmethod
    def fit(cls, tokens: list[list[str]], tags: list[list[str]], config: AugmentConfig) -> Augmenter:
        """Count words per tag in the tagged corpus."""
        counts: dict[str, Counter] = defaultdict(Counter)
        for words, ts in zip(tokens, tags):
            for w, t in zip(words, ts):
                counts[t][w] += 1
        by_tag = {}
        for t, c in counts.items():
            words = sorted(c)  # a fixed order: sampling depends on the seed only
            cum, total = [], 0
            for w in words:
                total += c[w]
                cum.append(total)
            by_tag[t] = (words, cum)
        return cls(config, by_tag)

    def sample(self, tag: str, rng: random.Random) -> str:
        """A word drawn from the unigram distribution of words tagged `tag`."""
        words, cum = self.by_tag[tag]
        return rng.choices(words, cum_weights=cum, k=1)[0]

    def augment(self, words: list[str], tags: list[str], rng: random.Random) -> str:
        """One augmented version of a tokenized text whose words carry POS tags."""
        cfg = self.config
        out = []
        for w, t in zip(words, tags or [None] * len(words)):
            u = rng.random()
            if u < cfg.p_mask:
                out.append(MASK)
            elif u < cfg.p_mask + cfg.p_pos and t in self.by_tag:
                out.append(self.sample(t, rng))
            else:
                out.append(w)
        if out and rng.random() < cfg.p_ng:
            n = rng.randint(1, MAX_NGRAM)
            if n < len(out):
                start = rng.randint(0, len(out) - n)
                out = out[start : start + n]
        return " ".join(out)

    def copies(self, words: list[list[str]], tags: list[list[str]], index: int) -> list[tuple[str, ...]]:
        """Up to `copies` distinct augmented versions of one example (each side of a pair too)."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}-{index}")  # per example: same set whatever the order
        seen = {tuple(" ".join(w) for w in words)}
        out = []
        for _ in range(cfg.copies * 3):  # short texts have few distinct variants: stop trying
            if len(out) >= cfg.copies:
                break
            new = tuple(self.augment(w, t, rng) for w, t in zip(words, tags))
            if new not in seen and all(s.strip() for s in new):
                seen.add(new)
                out.append(new)
        return out


def augment_split(texts: list[tuple[str, ...]], config: AugmentConfig, progress: bool = True
                  ) -> tuple[list[tuple[str, ...]], list[int], float]:
    """Augmented rows for every example: (rows, index of each row's source example, rows/s).

    Rows are made example by example from a per-example seed, so the result depends only on the
    texts and the config."""
    sides = len(texts[0])
    tokens = [tokenize(t) for ex in texts for t in ex]  # flattened: example i's sides at i*sides
    tags = pos_tag_corpus(tokens, progress=progress) if config.p_pos > 0 else [[] for _ in tokens]
    aug = Augmenter.fit(tokens, tags, config)
    rows, source = [], []
    t0 = time.perf_counter()
    for i in progress_bar(range(len(texts)), desc="augmenting", unit="text", disable=not progress, mininterval=1.0):
        k = i * sides
        for c in aug.copies(tokens[k : k + sides], tags[k : k + sides], i):
            rows.append(c)
            source.append(i)
    rate = len(rows) / max(time.perf_counter() - t0, 1e-9)
    return rows, source, rate
