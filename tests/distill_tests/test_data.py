"""distill.data: GLUE tasks, local files in every format, and the one-line errors for bad input."""

import json

import numpy as np
import pytest
from conftest import write_tsv

from distill.data import (
    GLUE_TASKS,
    content_hash,
    length_bucketed_batches,
    load_splits,
    pad_batch,
    resolve_task,
)
from distill.errors import DistillError


def test_glue_tasks_have_columns_labels_and_metric():
    assert set(GLUE_TASKS) == {"sst2", "cola", "mrpc", "qqp", "mnli", "qnli", "rte"}
    assert GLUE_TASKS["cola"].metric == "mcc"
    assert GLUE_TASKS["mrpc"].metric == GLUE_TASKS["qqp"].metric == "f1"
    assert GLUE_TASKS["mnli"].num_labels == 3
    assert not GLUE_TASKS["sst2"].pair and GLUE_TASKS["rte"].pair


def test_single_sentence_tsv(sst_dir):
    task, splits = load_splits(resolve_task("sst2"), sst_dir)
    assert len(splits["train"]) == 240 and len(splits["dev"]) == 40
    assert splits["train"].labels.dtype == np.int64
    assert set(splits["train"].labels.tolist()) == {0, 1}
    assert len(splits["train"].texts[0]) == 1


def test_pair_tsv_with_csv_quoting(rte_dir):
    task, splits = load_splits(resolve_task("rte"), rte_dir)
    assert task.pair
    first = splits["train"].texts[0]
    assert len(first) == 2 and first[0].startswith('he said "')  # quotes undone, not kept doubled


def test_tsv_quote_in_plain_text_is_text(tmp_path):
    # SUBJ and CR start sentences with a bare '"'; a CSV reader took it for quoting and ran rows together
    (tmp_path / "train.tsv").write_text('sentence\tlabel\n" auto focus " works well\t1\nplain one\t0\n'
                                        'she said " no\t0\n"fully ""quoted"" field"\t1\n', encoding="utf-8")
    write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], [["fine", 1]])
    _, splits = load_splits(resolve_task("t", ("sentence",), "label"), tmp_path)
    assert [t for (t,) in splits["train"].texts] == ['" auto focus " works well', "plain one", 'she said " no',
                                                     'fully "quoted" field']


def test_real_subj_and_cr_keep_every_row(shared):
    for name, n in (("subj", 8000), ("cr", 3016)):
        _, s = load_splits(resolve_task(name, ("sentence",), "label"), shared / "data" / name)
        assert len(s["train"]) == n
        assert not any("\n" in t or "\t" in t for (t,) in s["train"].texts)


def test_real_glue_files(shared):
    _, sst = load_splits(resolve_task("sst2"), shared / "data/glue/sst2")
    assert (len(sst["train"]), len(sst["dev"])) == (67349, 872)
    _, rte = load_splits(resolve_task("rte"), shared / "data/glue/rte")
    assert (len(rte["train"]), len(rte["dev"])) == (2490, 277)
    assert not any('""' in a for a, _ in rte["train"].texts)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_custom_columns_in_other_formats(tmp_path, fmt):
    rows = [{"body": f"ticket number {i}", "queue": ["billing", "tech", "sales"][i % 3]} for i in range(9)]
    for split in ("train", "validation"):
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "csv":
            import csv

            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, ["body", "queue"])
                w.writeheader()
                w.writerows(rows)
        elif fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), path)
    task = resolve_task("tickets", ("body",), "queue")
    task, splits = load_splits(task, tmp_path)
    assert task.label_names == ("billing", "sales", "tech")  # from the data, sorted
    assert splits["dev"].labels.tolist()[:3] == [0, 2, 1]


def test_content_hash_tracks_content(sst_dir, rte_dir):
    _, a = load_splits(resolve_task("sst2"), sst_dir)
    _, b = load_splits(resolve_task("sst2"), sst_dir)
    assert content_hash(a) == content_hash(b)
    b["train"].labels[0] = 1 - b["train"].labels[0]
    assert content_hash(a) != content_hash(b)


def _err(task, path) -> str:
    with pytest.raises(DistillError) as e:
        load_splits(task, path)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_inputs_give_one_line_errors(tmp_path):
    sst = resolve_task("sst2")
    assert "no such folder" in _err(sst, tmp_path / "nope")
    assert "no train file" in _err(sst, tmp_path)
    (tmp_path / "train.tsv").write_text("")
    write_tsv(tmp_path / "dev.tsv", ["sentence", "label"], [["fine", 1]])
    assert "train.tsv: the file is empty" in _err(sst, tmp_path)
    write_tsv(tmp_path / "train.tsv", ["sentence", "label"], [])
    assert "no data rows" in _err(sst, tmp_path)
    write_tsv(tmp_path / "train.tsv", ["text", "label"], [["fine", 1]])
    msg = _err(sst, tmp_path)
    assert "no column 'sentence'" in msg and "--text-column" in msg
    write_tsv(tmp_path / "train.tsv", ["sentence", "label"], [["fine", 1], ["odd", 7]])
    msg = _err(sst, tmp_path)
    assert "row 3" in msg and "'7'" in msg
    write_tsv(tmp_path / "train.tsv", ["sentence", "label"], [["fine", 1], ["   ", 0]])
    assert "row 3 has an empty 'sentence'" in _err(sst, tmp_path)
    (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\ncaf\xe9\t1\n")
    assert "not valid UTF-8" in _err(sst, tmp_path)
    with pytest.raises(DistillError, match="unknown task 'nope'"):
        resolve_task("nope")


def test_single_class_custom_data_is_rejected(tmp_path):
    for split in ("train", "dev"):
        write_tsv(tmp_path / f"{split}.tsv", ["t", "y"], [["a", "x"], ["b", "x"]])
    with pytest.raises(DistillError, match="at least two"):
        load_splits(resolve_task("mine", ("t",), "y"), tmp_path)


def test_pad_batch_shapes():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, pair=False)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[[5], [6, 7]], [[8, 9, 1], [2]]], pad_id=0, pair=True)
    assert ids.shape == (2, 2, 3) and mask[0].tolist() == [[1, 0, 0], [1, 1, 0]]


def test_bucketed_batches_cover_every_row_once():
    lengths = np.random.default_rng(0).integers(1, 50, size=1003)
    for rng in (None, np.random.default_rng(1)):
        batches = length_bucketed_batches(lengths, 32, rng)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1003))


def test_a_custom_task_keeps_its_folders_name_and_glue_names_match_in_any_case(tmp_path, capsys):
    from distill.data.tasks import default_task_name, safe_name

    assert resolve_task("SST-2").name == "sst2" and resolve_task("Rte").name == "rte"
    assert resolve_task("trec-tsv", ("text",), "label").name == "trec-tsv"
    name = default_task_name(None, str(tmp_path / "trec-tsv"), ("text",))
    assert name == "trec-tsv"
    assert capsys.readouterr().out == "task trec-tsv (from the --data folder's name; --task to change it)\n"
    default_task_name(None, str(tmp_path / "trec-tsv"), ("text",))
    assert capsys.readouterr().out == ""  # said once
    assert default_task_name("mine", str(tmp_path / "trec-tsv"), ("text",)) == "mine"
    assert safe_name("my tickets/v2") == "my_tickets_v2" and safe_name("trec-tsv") == "trec-tsv"


def test_a_model_that_learned_nothing_is_flagged():
    from distill.data.metrics import learned_nothing, majority_baseline

    gold = np.array([0] * 70 + [1] * 30)
    assert majority_baseline("accuracy", gold) == pytest.approx(0.7)
    assert majority_baseline("mcc", gold) == 0.0
    same = np.zeros(100, dtype=np.int64)
    why = learned_nothing("accuracy", 0.7, same, gold, label_names=("neg", "pos"))
    assert "majority class (70.00%)" in why and "predicts 'neg' for 100.0% of the dev rows" in why
    good = gold.copy()
    good[:5] = 1
    assert learned_nothing("accuracy", 0.95, good, gold) is None
    assert "0.05 above" in learned_nothing("mcc", 0.04, good, gold)


@pytest.mark.parametrize("prefix", ["__label__", ""])
def test_fasttext_files_are_read_with_or_without_the_label_prefix(tmp_path, prefix, capsys):
    from distill.cli import DataFlags

    d = tmp_path / "ft-data"
    d.mkdir()
    for split, n in (("train", 12), ("dev", 4)):
        lines = [f"{prefix}{'pos' if i % 2 else 'neg'} {'a good film' if i % 2 else 'a dull plot'} {i}"
                 for i in range(n)]
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
    for flags in (DataFlags(data=str(d)), DataFlags(data=str(d), format="fasttext")):
        task, splits = flags.load_data(None)
        assert task.name == "ft-data" and task.label_names == ("neg", "pos") and task.text_columns == ("text",)
        assert splits["train"].texts[1] == ("a good film 1",) and splits["train"].labels.tolist()[:2] == [0, 1]
        assert len(splits["dev"]) == 4


def test_no_train_file_lists_the_files_and_the_closest_layout(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "training.csv").write_text("text,label\na,1\n")
    (d / "notes.md").write_text("x")
    with pytest.raises(DistillError) as e:
        load_splits(resolve_task("x", ("text",), "label"), d)
    msg = str(e.value)
    assert "found: notes.md, training.csv" in msg and "rename training.csv to train.csv" in msg


def test_a_dataset_saved_to_disk_loads_with_named_columns(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    from distill.cli import DataFlags

    def part(n):
        return datasets.Dataset.from_dict({"body": [f"text number {i}" for i in range(n)],
                                           "tag": ["a" if i % 2 else "b" for i in range(n)]})

    saved = tmp_path / "my-set"
    datasets.DatasetDict({"train": part(10), "validation": part(4)}).save_to_disk(str(saved))
    task, splits = DataFlags(dataset=str(saved), text_column="body", label_column="tag").load_data(None)
    assert task.name == "my-set" and task.label_names == ("a", "b")
    assert len(splits["train"]) == 10 and len(splits["dev"]) == 4 and splits["train"].labels.tolist()[:2] == [1, 0]
    files = tmp_path / "csvs"  # a builder over local files
    files.mkdir()
    (files / "train.csv").write_text("body,tag\n" + "".join(f"row {i},{'xy'[i % 2]}\n" for i in range(8)))
    (files / "validation.csv").write_text("body,tag\nrow 1,y\nrow 2,x\n")
    task, splits = DataFlags(dataset=str(files), text_column="body", label_column="tag").load_data("mine")
    assert task.name == "mine" and task.label_names == ("x", "y") and len(splits["dev"]) == 2


def test_a_folder_with_dev_and_validation_files_says_which_it_used(tmp_path, capsys):
    for name in ("train.tsv", "dev.tsv", "validation.tsv"):
        write_tsv(tmp_path / name, ["sentence", "label"], [["good", 1], ["bad", 0]])
    _, splits = load_splits(resolve_task("sst2"), tmp_path)
    assert splits["dev"].source.endswith("dev.tsv")
    assert "dev split from dev.tsv (also there: validation.tsv)" in capsys.readouterr().out
