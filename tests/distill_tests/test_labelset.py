"""Label sets: a labelled test split scored once, each copy's source row, augmentation on by default
(capped, degrading without NLTK's tagger), and a dev split held out of train before augmentation."""

import random

import numpy as np
import pytest
from conftest import sentence, write_tsv

from distill.cli import DEFAULT_MAX_TRANSFER_ROWS
from distill.data import augment as augment_mod
from distill.label import main as label_main
from distill.train import main as train_main

TINY = ["--width", "8", "--embed-dim", "8", "--max-steps", "4", "--batch-size", "16", "--no-progress",
        "--latency-repeats", "1"]


@pytest.fixture(scope="module")
def three_splits(tmp_path_factory):
    """train / dev / test TSVs, all labelled (as SUBJ and CR are)."""
    rng = random.Random(5)
    d = tmp_path_factory.mktemp("three")
    for split, n in (("train", 60), ("dev", 20), ("test", 24)):
        write_tsv(d / f"{split}.tsv", ["sentence", "label"], [[sentence(rng, i % 2), i % 2] for i in range(n)])
    return d


def _label(teacher, data, out, *extra):
    return label_main(["--teacher", str(teacher), "--task", "sst2", "--data", str(data), "--output-dir", str(out),
                       "--no-progress", *map(str, extra)])


def test_test_split_is_labelled_and_copies_know_their_source(tiny_teacher, three_splits, tmp_path):
    ls = _label(tiny_teacher, three_splits, tmp_path / "ls", "--augment-copies", 3)
    assert ls.split_names == ("train", "dev", "test") and ls.num_rows("test") == 24
    assert ls.teacher["test_metric"] == pytest.approx(
        (ls.logits["test"].argmax(1) == ls.labels["test"]).mean())
    aug = ls.origin["train"] == 1
    assert aug.sum() > 60 and (ls.source["train"][~aug] == np.arange(60)).all()
    texts = ls.splits["train"].texts
    for i in np.flatnonzero(aug)[:40]:  # a copy's words come from its source row (or are masked)
        src = set(texts[ls.source["train"][i]][0].split()) | {augment_mod.MASK}
        assert set(texts[i][0].split()) <= src | set(w for t in texts[:60] for w in t[0].split())
    assert ls.manifest["augment"]["rules"] == ["mask", "pos", "ngram"]


def test_augmentation_is_on_by_default_capped_and_degrades_without_the_tagger(tiny_teacher, three_splits,
                                                                             tmp_path, monkeypatch, capsys):
    ls = _label(tiny_teacher, three_splits, tmp_path / "a")
    assert ls.manifest["augment"]["copies"] == 20  # Tang et al.'s count, for single texts
    capped = _label(tiny_teacher, three_splits, tmp_path / "b", "--max-transfer-rows", 200)
    assert capped.manifest["augment"]["copies"] == 2 and capped.num_rows("train") <= 200
    assert "would pass --max-transfer-rows 200; making 2 per row" in capsys.readouterr().out
    monkeypatch.setattr(augment_mod, "tagger_problem", lambda: "NLTK's tagger data is missing; run: ...")
    plain = _label(tiny_teacher, three_splits, tmp_path / "c", "--augment-copies", 2)
    out = capsys.readouterr().out
    assert "warning: augmenting with masking and n-gram sampling only: NLTK's tagger data is missing" in out
    assert plain.manifest["augment"]["rules"] == ["mask", "ngram"] and plain.manifest["augment"]["p_pos"] == 0
    none = _label(tiny_teacher, three_splits, tmp_path / "d", "--augment", "none")
    assert none.manifest["augment"] is None and none.num_rows("train") == 60
    assert DEFAULT_MAX_TRANSFER_ROWS >= 100_000


def test_train_reports_the_test_split_once_with_the_kept_weights(tiny_teacher, three_splits, tmp_path, cache):
    report = train_main(["--student", "cnn", "--teacher", str(tiny_teacher), "--task", "sst2", "--data",
                         str(three_splits), "--augment-copies", "1", "--output-dir", str(tmp_path / "run"), *TINY])
    t = report["test"]
    assert t["rows"] == 24 and 0 <= t["student_metric"] <= 1
    assert t["student_minus_teacher"] == pytest.approx(t["student_metric"] - t["teacher_metric"])
    assert "**Test** (24 labelled rows" in (tmp_path / "run" / "report.md").read_text()


def test_without_a_dev_split_a_fraction_of_train_is_held_out_before_augmentation(tiny_teacher, tmp_path, capsys):
    rng = random.Random(6)
    d = tmp_path / "nodev"
    write_tsv(d / "train.tsv", ["sentence", "label"], [[sentence(rng, i % 2), i % 2] for i in range(50)])
    with pytest.raises(SystemExit) as e:
        _label(tiny_teacher, d, tmp_path / "x")
    assert e.value.code == 2 and "--validation-fraction 0.1" in capsys.readouterr().err
    ls = _label(tiny_teacher, d, tmp_path / "y", "--validation-fraction", 0.2, "--augment-copies", 2)
    assert ls.num_rows("dev") == 10 and (ls.origin["train"] == 0).sum() == 40
    dev = set(ls.splits["dev"].texts)
    originals = [t for t, o in zip(ls.splits["train"].texts, ls.origin["train"]) if o == 0]
    assert not dev & set(originals)  # held out before the copies were made: no copy comes from a dev row
    assert ls.source["train"].max() < 40
