"""Teacher labelling: the label set's contents, reuse, recompute, resume after a kill, bad teachers."""

import json

import numpy as np
import pytest
from conftest import make_teacher

from distill.data import load_splits, resolve_task
from distill.errors import DistillError
from distill.teacher import labelling as teacher_mod
from distill.teacher.labelset import LabelSet


@pytest.fixture
def sst(sst_dir):
    return load_splits(resolve_task("sst2"), sst_dir)


def test_label_set_holds_texts_gold_logits_and_manifest(tiny_teacher, sst, tmp_path):
    task, splits = sst
    ls = teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "ls", progress=False)
    assert ls.logits["train"].shape == (240, 2) and ls.logits["dev"].shape == (40, 2)
    assert ls.splits["train"].texts == splits["train"].texts
    assert (ls.splits["dev"].labels == splits["dev"].labels).all()
    m = ls.manifest
    assert m["teacher"]["id"] == str(tiny_teacher) and m["teacher"]["config"]["hidden_size"] == 16
    assert 0.0 <= m["teacher"]["dev_metric"] <= 1.0
    assert m["data"]["rows"] == {"train": 240, "augmented": 0, "transfer": 0, "dev": 40}
    assert m["data"]["hash"] and m["settings"]["max_length"] == 128
    table, present = ls.teacher_embeddings()
    assert table.shape == (m["teacher"]["config"]["vocab_size"], 16) and present.all()
    assert ls.tokenizer_json() is not None
    # the stored logits are what the teacher predicts (length-sorted batching changes nothing)
    model, tok = teacher_mod.load_teacher(str(tiny_teacher), task)
    direct = teacher_mod.predict_logits(model, tok, splits["dev"].texts[:5], 128, 1, model.device)
    assert np.allclose(direct, ls.logits["dev"][:5], atol=1e-5)


def test_second_run_reuses_and_changed_input_recomputes(tiny_teacher, sst, tmp_path, monkeypatch, capsys):
    task, splits = sst
    out = tmp_path / "ls"
    first = teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False)
    calls = []
    real = teacher_mod.predict_logits
    monkeypatch.setattr(teacher_mod, "predict_logits", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False)
    assert not calls and again.key == first.key and "reusing" in capsys.readouterr().out
    splits["train"].texts[0] = ("a different first sentence",)
    changed = teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False)
    assert calls and changed.key != first.key
    assert LabelSet.load(out).splits["train"].texts[0] == ("a different first sentence",)
    other = make_teacher(tmp_path / "other", seed=1)
    assert teacher_mod.label(str(other), task, splits, out, progress=False).key != changed.key


def test_killed_run_resumes_from_finished_chunks(tiny_teacher, sst, tmp_path, monkeypatch):
    task, splits = sst
    monkeypatch.setattr(teacher_mod, "CHUNK_ROWS", 32)  # 2 dev chunks + 8 train chunks
    clean = teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "clean", progress=False)

    real, calls = teacher_mod.predict_logits, []

    def dies_on_the_fifth_chunk(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(teacher_mod, "predict_logits", dies_on_the_fifth_chunk)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False)
    assert not out.exists()  # nothing half-written where the label set goes
    calls.clear()
    monkeypatch.setattr(teacher_mod, "predict_logits", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = teacher_mod.label(str(tiny_teacher), task, splits, out, progress=False)
    assert len(calls) == 10 - 4  # only the chunks that had not finished
    assert np.allclose(resumed.logits["train"], clean.logits["train"], atol=1e-6)
    assert not list(tmp_path.glob(".killed.partial-*"))  # work files cleaned up


def test_teacher_with_wrong_label_count_is_rejected(tmp_path, sst):
    task, _ = sst
    bad = make_teacher(tmp_path / "three", labels=("a", "b", "c"))
    with pytest.raises(DistillError, match="has 3 labels but task sst2 has 2"):
        teacher_mod.load_teacher(str(bad), task)


def test_teacher_with_other_label_names_is_rejected(tmp_path, sst):
    task, _ = sst
    bad = make_teacher(tmp_path / "swapped", labels=("positive", "negative"))
    with pytest.raises(DistillError, match="do not match"):
        teacher_mod.load_teacher(str(bad), task)


def test_missing_local_teacher_folder(sst):
    with pytest.raises(DistillError, match="no such folder"):
        teacher_mod.load_teacher("./no/such/teacher", sst[0])


def test_label_cli_writes_a_label_set(tiny_teacher, sst_dir, tmp_path):
    from distill.label import main

    out = tmp_path / "cli"
    main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir),
          "--output-dir", str(out), "--no-progress"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["task"]["name"] == "sst2" and m["data"]["source"] == str(sst_dir)


def test_label_set_can_store_only_the_embedding_rows_its_texts_use(tiny_teacher, sst, tmp_path):
    import torch

    from distill.training.embeddings import pca_table

    task, splits = sst
    ls = teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "used", progress=False,
                           embedding_rows="used")
    table, present = ls.teacher_embeddings()
    model, _ = teacher_mod.load_teacher(str(tiny_teacher), task)
    full = model.get_input_embeddings().weight.detach()
    assert 10 < present.sum() < len(present) and (table[~present] == 0).all()
    assert torch.allclose(table[present], full[present], atol=full.abs().max().item() / 100)
    init = pca_table(table, 8, present=present)
    assert init.shape == (len(present), 8) and torch.isfinite(init).all()


def test_onnx_runtime_gives_the_torch_logits_within_1e3_and_shares_their_key(tiny_teacher, sst, tmp_path):
    task, splits = sst
    torch_ls = teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "pt", progress=False)
    onnx_ls = teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "ort", progress=False,
                                runtime="onnx", threads=1)
    for split in ("train", "dev"):
        assert np.abs(onnx_ls.logits[split] - torch_ls.logits[split]).max() <= 1e-3
    assert onnx_ls.key == torch_ls.key  # same labels within 1e-3: one key, reusable either way
    rt = onnx_ls.manifest["runtime"]
    assert rt["name"] == "onnx" and rt["threads"] == 1 and rt["onnx_check"]["max_abs_logit_diff"] <= 1e-3


def test_onnx_int8_records_its_dev_metric_and_agreement_or_refuses(tiny_teacher, sst, sst_dir, tmp_path,
                                                                   monkeypatch, capsys):
    from distill.label import main
    from distill.teacher import onnx_teacher

    task, splits = sst
    monkeypatch.setattr(onnx_teacher, "INT8_MIN_AGREEMENT", 0.0)  # a random tiny teacher's logits are near ties
    ls = teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "q", progress=False, runtime="onnx-int8")
    q = ls.manifest["runtime"]["int8"]
    assert q["rows"] == 40 and 0 <= q["agreement_with_fp32"] <= 1 and 0 <= q["dev_metric"] <= 1
    fp32 = teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "f", progress=False)
    assert q["fp32_dev_metric"] == pytest.approx(fp32.teacher["dev_metric"])
    assert ls.teacher["dev_metric"] == q["dev_metric"]  # the stored labels are the int8 teacher's
    assert ls.key != fp32.key  # int8 labels differ: the runtime enters the key
    monkeypatch.setattr(onnx_teacher, "INT8_MIN_AGREEMENT", 1.01)
    with pytest.raises(SystemExit) as e:
        main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir), "--augment",
              "none", "--output-dir", str(tmp_path / "refused"), "--no-progress", "--runtime", "onnx-int8"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and last.startswith("error: the int8 teacher agrees with the fp32 teacher on only")


def test_onnx_logits_far_from_torch_stop_with_one_line(tiny_teacher, sst, tmp_path, monkeypatch):
    from distill.teacher import onnx_teacher

    task, splits = sst
    real = onnx_teacher.OnnxTeacher.__call__
    monkeypatch.setattr(onnx_teacher.OnnxTeacher, "__call__", lambda self, enc: real(self, enc) + 0.01)
    with pytest.raises(DistillError) as e:
        teacher_mod.label(str(tiny_teacher), task, splits, tmp_path / "bad", progress=False, runtime="onnx")
    assert "differ from PyTorch's by up to 1.00e-02" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "bad").exists()


def test_two_shards_merged_equal_one_run_byte_for_byte(tiny_teacher, sst_dir, tmp_path, capsys):
    from distill.label import main

    common = ["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir), "--augment-copies", "2",
              "--no-progress"]
    teacher_mod.CHUNK_ROWS, saved = 64, teacher_mod.CHUNK_ROWS  # several chunks per shard
    try:
        whole = main([*common, "--output-dir", str(tmp_path / "whole2")])
        assert main([*common, "--output-dir", str(tmp_path / "s1"), "--shard", "1/2"]) is None
        with pytest.raises(SystemExit):  # shard 2 has not run: nothing to merge yet
            main([*common, "--output-dir", str(tmp_path / "merged"), "--merge", str(tmp_path / "s1")])
        assert "chunks are not labelled yet" in capsys.readouterr().err
        assert main([*common, "--output-dir", str(tmp_path / "s2"), "--shard", "2/2"]) is None
        merged = main([*common, "--output-dir", str(tmp_path / "merged"), "--merge", str(tmp_path / "s1"),
                       str(tmp_path / "s2")])
        # or both shards in one shared work folder, merged in place
        main([*common, "--output-dir", str(tmp_path / "shared"), "--shard", "2/2"])
        main([*common, "--output-dir", str(tmp_path / "shared"), "--shard", "1/2"])
        in_place = main([*common, "--output-dir", str(tmp_path / "shared"), "--merge"])
    finally:
        teacher_mod.CHUNK_ROWS = saved
    for ls in (merged, in_place):
        assert ls.key == whole.key
        for split in whole.split_names:
            assert ls.logits[split].tobytes() == whole.logits[split].tobytes()
            assert ls.splits[split].texts == whole.splits[split].texts
