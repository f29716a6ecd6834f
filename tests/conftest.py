"""Shared fixtures: one CPU thread, fixed seeds, a tiny random teacher and tiny data made on the spot.

Tests never download. Tests that need the real data and teacher in ../shared skip when it is absent.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that reaches for the hub fails fast

import random  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared"
if (SHARED / "data" / "nltk_data").is_dir():
    os.environ.setdefault("NLTK_DATA", str(SHARED / "data" / "nltk_data"))

POSITIVE = ["good", "great", "fun", "moving", "witty", "charming", "superb", "lovely"]
NEGATIVE = ["bad", "dull", "boring", "awful", "flat", "tedious", "weak", "poor"]
FILLER = ["the", "a", "movie", "film", "plot", "was", "is", "very", "and", "story", "acting", "quite"]


@pytest.fixture(scope="session", autouse=True)
def _label_cache(tmp_path_factory):
    """Label sets that `distill.train --teacher` caches go to this test session's (this worker's) own
    folder, not ~/.cache: two workers labelling the same tiny data at once would meet on the cache's
    lock, and tests leave nothing behind. DISTILL_CACHE, if set, is used as it is."""
    if "DISTILL_CACHE" in os.environ:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_CACHE", str(tmp_path_factory.mktemp("label-cache")))
        yield


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def shared() -> Path:
    """../shared, or skip: real data and the real teacher are only there."""
    if not (SHARED / "data" / "glue").is_dir():
        pytest.skip(f"needs the shared real data at {SHARED} (present in CI; absent here)")
    return SHARED


def sentence(rng: random.Random, label: int, n: int | None = None) -> str:
    words = POSITIVE if label else NEGATIVE
    n = n or rng.randint(2, 7)
    toks = [rng.choice(FILLER) for _ in range(n)] + [rng.choice(words)]
    rng.shuffle(toks)
    return " ".join(toks)


def write_tsv(path: Path, header: list[str], rows: list[list]) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def sst_dir(tmp_path_factory) -> Path:
    """A tiny SST-2-shaped folder: train.tsv (240 rows) and dev.tsv (40 rows)."""
    rng = random.Random(1)
    d = tmp_path_factory.mktemp("sst")
    for split, n in (("train", 240), ("dev", 40)):
        rows = [[sentence(rng, i % 2), i % 2] for i in range(n)]
        write_tsv(d / f"{split}.tsv", ["sentence", "label"], rows)
    return d


@pytest.fixture(scope="session")
def rte_dir(tmp_path_factory) -> Path:
    """A tiny RTE-shaped pair folder; some fields hold quotes, as GLUE's RTE does."""
    rng = random.Random(2)
    d = tmp_path_factory.mktemp("rte")
    for split, n in (("train", 120), ("dev", 30)):
        rows = []
        for i in range(n):
            a = sentence(rng, i % 2)
            if i % 5 == 0:
                a = f'he said "{a}" loudly'
            rows.append([a, sentence(rng, i % 2), i % 2, i])
        write_tsv(d / f"{split}.tsv", ["sentence1", "sentence2", "label", "idx"], rows)
    return d


def make_teacher(path: Path, labels=("negative", "positive"), seed: int = 0) -> Path:
    """A tiny random BERT classifier with a WordPiece tokenizer, saved like a hub model."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER
    vocab += ["he", "said", "loudly", '"'] + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab = list(dict.fromkeys(vocab + list("abcdefghijklmnopqrstuvwxyz")))
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty label cache for `distill.train --teacher`."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def rte_teacher(tmp_path_factory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("rte-teacher"), labels=("entailment", "not_entailment"))


def die_at_step(monkeypatch, n: int):
    """Make the n-th optimizer step raise KeyboardInterrupt (a kill); returns a function that undoes it."""
    real_step = torch.optim.AdamW.step
    steps = []

    def step(self, *a, **k):
        steps.append(1)
        if len(steps) == n:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    return lambda: monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
