"""Training only the table rows the training data uses (distill.training.rows) trains the same weights."""

import json

import numpy as np
import pytest
import torch
from conftest import die_at_step

import students
from distill.data.batching import encode_sequences
from distill.errors import DistillError
from distill.training import rows as rows_mod
from distill.training import table4
from distill.training.fit import FitConfig, fit, predict

VOCAB = 600
USED = np.arange(40, 120)  # the training rows' tokens; 0 is the pad


def _data(seed: int, tokens: np.ndarray, n: int, labelled: bool):
    rng = np.random.default_rng(seed)
    seqs = [list(rng.choice(tokens, rng.integers(1, 12))) for _ in range(n)]
    labels = rng.integers(0, 2, n) if labelled else np.full(n, -1)
    return encode_sequences([seqs], labels, rng.normal(size=(n, 2)).astype(np.float32), False, 0)


TRAIN = _data(0, USED, 160, labelled=False)
DEV = _data(1, np.arange(1, VOCAB), 40, labelled=True)  # mostly tokens that training never sees
SIZES = {"bilstm": {"width": 8, "embed_dim": 8}, "cnn": {"width": 8, "embed_dim": 8},
         "transformer": {"width": 16, "depth": 1, "embed_dim": 8}}


def _student(name):
    torch.manual_seed(0)
    return students.build_student(name, vocab_size=VOCAB, num_labels=2, pad_id=0, **SIZES[name])


def _count_compactions(monkeypatch) -> list:
    made = []
    real = rows_mod.UsedRows

    def spy(*a, **k):
        made.append(1)
        return real(*a, **k)

    monkeypatch.setattr(rows_mod, "UsedRows", spy)
    return made


@pytest.mark.parametrize("name", ["bilstm", "cnn", "transformer"])
def test_training_only_the_used_rows_gives_the_same_weights(name, monkeypatch):
    cfg = FitConfig(epochs=2, batch_size=16, eval_every=5, patience=99, progress=False, grad_clip=0.5)
    made = _count_compactions(monkeypatch)

    def train(model):
        dev_logits = []

        def look(epoch, metric):  # what evaluation sees, mid-training
            dev_logits.append(predict(model, DEV))
            model.train()

        return fit(model, TRAIN, DEV, cfg, "accuracy", on_epoch=look), np.stack(dev_logits)

    compact = _student(name)
    r_compact, seen_compact = train(compact)
    assert made == [1]
    assert type(compact.embedding) is torch.nn.Embedding and compact.embedding.weight.requires_grad

    monkeypatch.setattr(rows_mod, "MAX_USED_SHARE", 0.0)  # every table "mostly used": dense training
    dense = _student(name)
    r_dense, seen_dense = train(dense)
    assert made == [1]
    # the same up to rounding: the clipping norm adds the same squares in another order
    assert np.allclose(seen_compact, seen_dense, atol=1e-5)  # evaluation read the trained rows
    a, b = compact.state_dict(), dense.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    unused = np.setdiff1d(np.arange(1, VOCAB), USED)
    assert torch.equal(a["embedding.weight"][unused], _student(name).embedding.weight.detach()[unused])


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cfg = FitConfig(epochs=3, batch_size=16, progress=False, checkpoint_every_s=0.0, patience=9)
    clean = _student("bilstm")
    fit(clean, TRAIN, DEV, cfg, "accuracy", tmp_path / "clean")

    made = _count_compactions(monkeypatch)
    killed = _student("bilstm")
    revive = die_at_step(monkeypatch, 14)  # mid-epoch 2 (10 batches an epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(killed, TRAIN, DEV, cfg, "accuracy", tmp_path / "killed")
    revive()
    assert type(killed.embedding) is torch.nn.Embedding  # the model got its table back
    assert json.loads((tmp_path / "killed/checkpoint/progress.json").read_text())["step"] == 13
    resumed = _student("bilstm")
    assert fit(resumed, TRAIN, DEV, cfg, "accuracy", tmp_path / "killed").steps == 30
    assert made == [1, 1]
    for (k, a), b in zip(clean.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_a_checkpoint_from_dense_training_is_refused_not_misread(tmp_path, monkeypatch):
    cfg = FitConfig(epochs=2, batch_size=16, progress=False, checkpoint_every_s=0.0)
    monkeypatch.setattr(rows_mod, "MAX_USED_SHARE", 0.0)  # as a version before used-rows training
    revive = die_at_step(monkeypatch, 14)
    with pytest.raises(KeyboardInterrupt):
        fit(_student("bilstm"), TRAIN, DEV, cfg, "accuracy", tmp_path / "run")
    revive()
    monkeypatch.setattr(rows_mod, "MAX_USED_SHARE", 0.8)
    with pytest.raises(DistillError, match="remove that folder"):
        fit(_student("bilstm"), TRAIN, DEV, cfg, "accuracy", tmp_path / "run")


def test_tables_that_cannot_shrink_exactly_are_left_alone(monkeypatch):
    made = _count_compactions(monkeypatch)
    cfg = FitConfig(epochs=1, batch_size=16, progress=False)
    fit(_student("cnn"), TRAIN, DEV, FitConfig(epochs=1, batch_size=16, progress=False, weight_decay=0.01),
        "accuracy")  # decay moves every row
    four_bit = _student("cnn")
    table4.attach(four_bit)
    fit(four_bit, TRAIN, DEV, cfg, "accuracy")
    most = _data(2, np.arange(1, VOCAB), 400, labelled=False)
    fit(_student("cnn"), most, DEV, cfg, "accuracy")  # nearly every row is used: nothing to gain
    assert made == []


def test_used_rows_include_the_pad_and_check_the_range():
    assert rows_mod.used_rows(np.array([5, 3, 5]), 10, 0).tolist() == [0, 3, 5]
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        rows_mod.used_rows(np.array([3, 10]), 10, 0)
