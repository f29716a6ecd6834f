"""distill.augment: each rule's statistics, tags, n-gram spans, pairs, determinism, duplicates; and
augmented / transfer label sets (cache hit, bad input)."""

import random

import numpy as np
import pytest
from conftest import write_tsv

from distill.data import load_splits, read_transfer_file, resolve_task
from distill.data.augment import MASK, AugmentConfig, Augmenter, augment_split
from distill.errors import DistillError
from distill.teacher import labelling as teacher_mod

# a tagged toy corpus: many distinct words per tag, so a replacement rarely draws the same word
NOUNS = [f"noun{i}" for i in range(40)]
ADJS = [f"adj{i}" for i in range(40)]


def toy_corpus(n=400, seed=0):
    rng = random.Random(seed)
    tokens, tags = [], []
    for _ in range(n):
        k = rng.randint(6, 12)
        words = [rng.choice(NOUNS) if j % 2 else rng.choice(ADJS) for j in range(k)]
        tokens.append(words)
        tags.append(["NOUN" if j % 2 else "ADJ" for j in range(k)])
    return tokens, tags


def run_rule(config, n=400):
    tokens, tags = toy_corpus(n)
    aug = Augmenter.fit(tokens, tags, config)
    rng = random.Random(1)
    return tokens, tags, aug, [aug.augment(w, t, rng).split() for w, t in zip(tokens, tags)]


def within(observed, expected, n, sigmas=4.0):
    return abs(observed - expected) <= sigmas * (expected * (1 - expected) / n) ** 0.5


def test_masking_probability_holds():
    tokens, _, _, outs = run_rule(AugmentConfig(p_mask=0.3, p_pos=0.0, p_ng=0.0))
    n = sum(len(o) for o in outs)
    assert all(len(o) == len(w) for o, w in zip(outs, tokens))
    assert within(sum(x == MASK for o in outs for x in o) / n, 0.3, n)


def test_pos_replacement_probability_and_tags_hold():
    tokens, tags, aug, outs = run_rule(AugmentConfig(p_mask=0.0, p_pos=0.3, p_ng=0.0))
    changed = sum(a != b for o, w in zip(outs, tokens) for a, b in zip(o, w))
    n = sum(len(w) for w in tokens)
    # a replacement draws the same word with probability count(w) / count(tag)
    counts = {t: dict(zip(ws, np.diff([0, *cum]))) for t, (ws, cum) in aug.by_tag.items()}
    totals = {t: cum[-1] for t, (_, cum) in aug.by_tag.items()}
    expected = 0.3 * np.mean([1 - counts[t][w] / totals[t] for ws, ts in zip(tokens, tags)
                              for w, t in zip(ws, ts)])
    assert within(changed / n, expected, n)
    # every word, replaced or not, keeps its position's tag
    for o, ts in zip(outs, tags):
        for word, tag in zip(o, ts):
            assert word in counts[tag]


def test_mask_and_pos_are_exclusive_per_word():
    _, _, _, outs = run_rule(AugmentConfig(p_mask=0.5, p_pos=0.5, p_ng=0.0))
    n = sum(len(o) for o in outs)
    assert within(sum(x == MASK for o in outs for x in o) / n, 0.5, n)  # not 0.5 * (1 - 0.5)


def test_ngram_spans_are_contiguous_in_range_and_as_likely_as_asked():
    tokens, _, _, outs = run_rule(AugmentConfig(p_mask=0.0, p_pos=0.0, p_ng=0.25), n=2000)
    cut = 0
    for o, w in zip(outs, tokens):
        if o != w:
            cut += 1
            assert 1 <= len(o) <= 5
            starts = [i for i in range(len(w) - len(o) + 1) if w[i : i + len(o)] == o]
            assert starts, "an n-gram must be a contiguous span of the example"
    assert within(cut / len(tokens), 0.25, len(tokens))  # every toy text has >= 6 words


def test_copies_are_distinct_deterministic_and_pairs_get_both_sides_augmented():
    texts = [("the noun1 was adj2 and adj3 today", "noun4 is adj5 indeed"), ("short one", "x y")]
    cfg = AugmentConfig(copies=8, p_pos=0.0, p_mask=0.3, p_ng=0.25, seed=3)
    rows, source, _ = augment_split(texts, cfg, progress=False)
    assert rows == augment_split(texts, cfg, progress=False)[0]  # same seed, same set
    assert rows != augment_split(texts, AugmentConfig(copies=8, p_pos=0.0, p_mask=0.3, seed=4),
                                 progress=False)[0]
    for i, ex in enumerate(texts):
        mine = [r for r, s in zip(rows, source) if s == i]
        assert len(mine) == len(set(mine)) <= 8 and ex not in mine
        assert all(len(r) == 2 for r in mine)
    first = [r for r, s in zip(rows, source) if s == 0]
    assert any(r[0] != texts[0][0] for r in first) and any(r[1] != texts[0][1] for r in first)


def test_a_text_with_few_variants_gives_fewer_copies():
    rows, _, _ = augment_split([("one",)], AugmentConfig(copies=20, p_pos=0.0), progress=False)
    assert len(rows) <= 1  # "one" can only become "[MASK]"


def test_real_pos_tagger_keeps_tags(shared):
    rows, _, _ = augment_split([("a gorgeous , witty , seductive movie .",), ("it is a bad film",)],
                               AugmentConfig(copies=5, p_mask=0.0, p_pos=1.0, p_ng=0.0), progress=False)
    assert rows and all(len(r[0].split()) == len(s.split()) for r, s in
                        zip(rows, ["a gorgeous , witty , seductive movie ."] * 5 + ["it is a bad film"] * 5))


def test_missing_tagger_data_names_the_download_command(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(DistillError, match="python -m nltk.downloader .*averaged_perceptron_tagger_eng"):
        augment_split([("a text here",)], AugmentConfig(copies=1), progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"p_mask": 1.5}, "--p-mask 1.5 is outside [0, 1]"),
    ({"p_ng": -0.1}, "--p-ng -0.1 is outside [0, 1]"),
    ({"copies": -1}, "--augment-copies -1 is negative"),
])
def test_bad_augment_settings(kwargs, message):
    with pytest.raises(DistillError, match=message.replace("[", r"\[").replace("]", r"\]")):
        AugmentConfig(**kwargs)


def test_augmented_and_transfer_label_set_and_cache_hit(tiny_teacher, sst_dir, tmp_path, capsys):
    task, splits = load_splits(resolve_task("sst2"), sst_dir)
    transfer = tmp_path / "unlabeled.txt"
    transfer.write_text("a good film\n\n   \nthe plot was dull\n", encoding="utf-8")
    cfg = AugmentConfig(copies=3, p_pos=0.0)
    texts = read_transfer_file(transfer, task)
    out = tmp_path / "aug"
    ls = teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False, augment=cfg, transfer=texts)
    rows = ls.manifest["data"]["rows"]
    assert rows["train"] == 240 and rows["transfer"] == 2 and 240 < rows["augmented"] <= 720
    assert ls.num_rows("train") == 240 + rows["augmented"] + 2
    assert (ls.labels["train"][240:] == -1).all() and (ls.origin["train"][-2:] == 2).all()
    assert ls.manifest["augment"]["copies"] == 3 and ls.manifest["augment"]["rows_per_s"] > 0
    assert any(MASK in t[0] for part in ls.iter_texts("train") for t in part)
    capsys.readouterr()
    again = teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False, augment=cfg, transfer=texts)
    assert "reusing" in capsys.readouterr().out and again.key == ls.key
    from distill.train import TRANSFER_EPOCHS, main

    report = main(["--student", "bilstm", "--labels", str(out), "--output-dir", str(tmp_path / "run"),
                   "--width", "8", "--embed-dim", "8", "--no-progress", "--latency-repeats", "1",
                   "--max-steps", "40"])
    t = report["training"]
    assert t["rows_by_origin"] == {"train": 240, "augmented": rows["augmented"], "transfer": 2}
    # with augmented rows: epochs over all of them (dev at each epoch's end) until the step cap
    assert t["epochs"] == TRANSFER_EPOCHS and t["steps"] == 40 > ls.num_rows("train") / 50
    assert [h["step"] for h in t["history"]][-1] == 40 and len(t["history"]) >= 3
    other = teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False,
                              augment=AugmentConfig(copies=2, p_pos=0.0))
    assert other.key != ls.key and other.manifest["data"]["rows"]["transfer"] == 0


def test_student_reads_masked_words_as_unknown(tiny_teacher):
    from distill.data.tokenizer import from_teacher

    tok = from_teacher((tiny_teacher / "tokenizer.json").read_text(), max_length=16)
    ids = tok.encode([f"the {MASK} movie"])[0]
    assert ids[1] == tok.unk_id and len(ids) == 3


def test_bad_transfer_files(tmp_path):
    task = resolve_task("sst2")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DistillError, match="the file is empty"):
        read_transfer_file(tmp_path / "empty.txt", task)
    (tmp_path / "blank.txt").write_text("\n  \n\t\n")
    with pytest.raises(DistillError, match="every text is empty"):
        read_transfer_file(tmp_path / "blank.txt", task)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DistillError, match="not valid UTF-8"):
        read_transfer_file(tmp_path / "latin1.txt", task)
    with pytest.raises(DistillError, match="sentence pairs"):
        read_transfer_file(tmp_path / "latin1.txt", resolve_task("rte"))
    write_tsv(tmp_path / "pairs.tsv", ["sentence1", "sentence2"], [["a b", "c d"]])
    assert read_transfer_file(tmp_path / "pairs.tsv", resolve_task("rte")) == [("a b", "c d")]


def test_train_cli_augment_needs_a_teacher(tmp_path, capsys):
    from distill.train import main

    with pytest.raises(SystemExit):
        main(["--student", "cnn", "--augment", "tang", "--output-dir", str(tmp_path / "o")])
    assert "--augment and --transfer-file need --teacher" in capsys.readouterr().err
