"""The contextual table: pooled hidden states per token, stored by distill.label, used by --embedding-init."""

import json

import pytest
import torch

from distill.data import load_splits, resolve_task
from distill.errors import DistillError
from distill.teacher import labelling
from distill.teacher.contextual import contextual_table, pool_rows
from distill.teacher.labelset import LabelSet


@pytest.fixture
def sst(sst_dir):
    return load_splits(resolve_task("sst2"), sst_dir)


def _by_hand(model, tok, texts, layer):
    """The same pooling one text at a time, without batching or padding."""
    sums, counts = {}, {}
    with torch.no_grad():
        for (text,) in texts:
            enc = tok(text, return_tensors="pt")
            h = model(**enc, output_hidden_states=True).hidden_states[layer][0]
            for i, t in enumerate(enc["input_ids"][0].tolist()):
                sums[t] = sums.get(t, 0) + h[i]
                counts[t] = counts.get(t, 0) + 1
    return {t: sums[t] / counts[t] for t in sums}


def test_the_table_is_each_tokens_mean_hidden_state_and_unseen_rows_their_own(tiny_teacher, sst):
    task, splits = sst
    model, tok = labelling.load_teacher(str(tiny_teacher), task)
    texts = splits["train"].texts[:30]
    unseen = tok.convert_tokens_to_ids(["zebra"])[0]
    want = _by_hand(model, tok, texts, 1)
    assert unseen not in want
    rows = sorted(want) + [unseen]
    table, seen = contextual_table(model, tok, texts, 1, 128, 7, torch.device("cpu"), rows, progress=False)
    assert seen == len(want)
    for t, v in want.items():  # padding and batches of 7 change nothing
        assert torch.allclose(table[t], v, atol=1e-5)
    with torch.no_grad():  # a token the rows never hold: its hidden state in [CLS] token [SEP]
        alone = model(input_ids=torch.tensor([[tok.cls_token_id, unseen, tok.sep_token_id]]),
                      output_hidden_states=True).hidden_states[1][0, 1]
    assert torch.allclose(table[unseen], alone, atol=1e-5)
    assert not torch.allclose(table[rows[0]], model.get_input_embeddings().weight[rows[0]])


def test_pooled_rows_are_all_or_evenly_spaced():
    assert pool_rows(5, 10).tolist() == [0, 1, 2, 3, 4]
    idx = pool_rows(1000, 10)
    assert len(idx) == 10 and idx[0] == 0 and idx[-1] == 999 and len(set(idx.tolist())) == 10


def test_label_stores_the_middle_layer_when_asked_and_train_starts_from_it(tiny_teacher, sst, tmp_path):
    from distill.train import main as train_main
    from distill.training.embeddings import pca_table

    task, splits = sst
    ls = labelling.label(str(tiny_teacher), task, splits, tmp_path / "ls", progress=False, embedding_rows="used",
                         contextual_layer="middle")
    table, present, layer = ls.teacher_contextual()
    n_layers = ls.teacher["config"]["num_hidden_layers"]
    assert layer == n_layers // 2 and ls.manifest["contextual"]["layer"] == layer
    assert torch.equal(present, ls.teacher_embeddings()[1])  # the same rows as the input table
    assert ls.manifest["contextual"]["tokens_seen"] <= int(present.sum())
    model, tok = labelling.load_teacher(str(tiny_teacher), task)
    want = _by_hand(model, tok, splits["train"].texts, layer)
    t = sorted(want)[5]
    assert torch.allclose(table[t], want[t], atol=table[t].abs().max().item() / 100)  # int8 storage

    out = tmp_path / "run"
    train_main(["--labels", str(ls.path), "--student", "cnn", "--embedding-init", "teacher-contextual",
                "--max-steps", "1", "--output-dir", str(out), "--no-progress", "--latency-repeats", "1",
                "--student-config", '{"num_filters": 4, "filter_widths": [2]}'])
    from safetensors.torch import load_file

    weights = load_file(str(out / "model.safetensors"))
    emb = next(v for k, v in weights.items() if "embedding" in k)
    start = pca_table(table, emb.shape[1], 0, present)
    start[0] = 0  # the pad row
    rows = present.nonzero().squeeze(1)[1:]
    # one optimiser step from the PCA of the contextual table, not of the input table
    assert (emb[rows] - start[rows]).abs().max() < 0.05
    words, words_present = ls.teacher_embeddings()
    assert (emb[rows] - pca_table(words, emb.shape[1], 0, words_present)[rows]).abs().max() > 0.1


def test_by_default_no_table_and_the_old_key(tiny_teacher, sst, tmp_path):
    task, splits = sst
    ls = labelling.label(str(tiny_teacher), task, splits, tmp_path / "none", progress=False)
    assert ls.teacher_contextual() is None and "contextual" not in ls.manifest
    assert ls.key == labelling.compute_key(ls.teacher["fingerprint"], ls.manifest["data"]["hash"], task, 128)
    with pytest.raises(DistillError, match=r"layers 0 \(its embeddings\) to 1"):
        labelling.label(str(tiny_teacher), task, splits, tmp_path / "bad", progress=False, contextual_layer="9")


def test_train_without_a_stored_table_says_how_to_get_one(tiny_teacher, sst, tmp_path, capsys):
    from distill.train import main as train_main

    task, splits = sst
    ls = labelling.label(str(tiny_teacher), task, splits, tmp_path / "none", progress=False, contextual_layer="none")
    with pytest.raises(SystemExit) as e:
        train_main(["--labels", str(ls.path), "--student", "cnn", "--embedding-init", "teacher-contextual",
                    "--max-steps", "1", "--output-dir", str(tmp_path / "run"), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "stores no contextual table" in err[-1] and "--contextual-layer middle" in err[-1]
    assert not (tmp_path / "run").exists()


def test_train_with_a_teacher_labels_the_table_it_was_asked_to_start_from(tiny_teacher, sst_dir, tmp_path):
    from distill.train import main as train_main

    out = tmp_path / "run"
    train_main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir), "--augment", "none",
                "--student", "cnn", "--embedding-init", "teacher-contextual", "--max-steps", "1",
                "--output-dir", str(out), "--no-progress", "--latency-repeats", "1",
                "--student-config", '{"num_filters": 4, "filter_widths": [2]}'])
    made = LabelSet.load(json.loads((out / "config.json").read_text())["label_set"]["path"])
    n_layers = made.teacher["config"]["num_hidden_layers"]
    assert made.teacher_contextual() is not None and made.manifest["contextual"]["layer"] == n_layers // 2


TINY = {"bilstm": '{"hidden": 4, "mlp_hidden": 4}', "cnn": '{"num_filters": 4, "filter_widths": [2]}'}


@pytest.mark.parametrize("student,with_table,want", [
    ("bilstm", True, "teacher-contextual"), ("bilstm", False, "teacher-svd"), ("cnn", True, "teacher-svd")])
def test_auto_starts_each_student_from_its_chosen_table(tiny_teacher, sst, tmp_path, student, with_table, want):
    from distill.train import main as train_main

    task, splits = sst
    ls = labelling.label(str(tiny_teacher), task, splits, tmp_path / "ls", progress=False,
                         contextual_layer="middle" if with_table else "none")
    out = tmp_path / "run"
    train_main(["--labels", str(ls.path), "--student", student, "--student-config", TINY[student], "--embed-dim", "8",
                "--max-steps", "1", "--output-dir", str(out), "--no-progress", "--latency-repeats", "1"])
    assert json.loads((out / "config.json").read_text())["embedding_init"] == want


def test_train_with_a_teacher_labels_the_table_when_auto_wants_it(tiny_teacher, sst_dir, tmp_path):
    from distill.train import main as train_main

    runs = {}
    for student in ("bilstm", "cnn"):
        out = tmp_path / student
        train_main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir), "--augment", "none",
                    "--student", student, "--student-config", TINY[student], "--embed-dim", "8", "--max-steps", "1",
                    "--output-dir", str(out),
                    "--no-progress", "--latency-repeats", "1"])
        runs[student] = LabelSet.load(json.loads((out / "config.json").read_text())["label_set"]["path"])
    assert runs["bilstm"].has_contextual and not runs["cnn"].has_contextual  # the CNN's set: no extra pass


def test_the_label_command_stores_the_layer_it_is_given(tiny_teacher, sst_dir, tmp_path, capsys):
    from distill import label

    label.main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir), "--augment", "none",
                "--contextual-layer", "1", "--output-dir", str(tmp_path / "ls"), "--no-progress"])
    assert LabelSet.load(tmp_path / "ls").teacher_contextual()[2] == 1
    with pytest.raises(SystemExit) as e:
        label.main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir),
                    "--contextual-layer", "top", "--output-dir", str(tmp_path / "bad"), "--no-progress"])
    assert e.value.code == 2 and "--contextual-layer top" in capsys.readouterr().err
