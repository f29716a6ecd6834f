"""distill.export and distill.predict on tiny trained students: parity in each format, int8 kept or
refused, bundles that still work after a move, and one-line errors for bad input."""

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.bundle import build as export
from distill.bundle.files import JS_PACKAGES
from distill.bundle.onnx import onnx_shapes
from distill.bundle.policy import TABLE4_BLOCK
from distill.bundle.runtime import Bundle
from distill.data import pad_batch
from distill.predict import main as predict_main
from distill.train import main as train_main
from distill.training.runfolder import load_run

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
HAS_ET = importlib.util.find_spec("executorch") is not None
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra (pip install -e '.[onnx]'); "
                                "CI installs it")
needs_et = pytest.mark.skipif(not HAS_ET, reason="needs the executorch extra (pip install -e "
                              "'.[executorch]'); CI installs it")
STUDENTS = ("bilstm", "cnn", "transformer")
TEXTS = ["good", "the plot was dull and the acting flat", "a witty and charming film",
         "boring " * 30 + "movie"]  # a one-token text (below the CNN's filter width) and a long one


# a tiny student on gold labels (so its margins are clear; Tang copies would add nothing to the gold loss)
TINY_RUN = ["--tokenizer", "word", "--embedding-init", "random", "--alpha", "1", "--lr", "0.01", "--epochs", "4",
            "--width", "16", "--embed-dim", "16", "--depth", "1", "--max-length", "16", "--batch-size", "16",
            "--no-progress", "--latency-repeats", "1", "--augment", "none"]


@pytest.fixture(scope="module")
def runs(tiny_teacher, sst_dir, tmp_path_factory) -> dict[str, Path]:
    """One trained tiny student per architecture (gold labels, so its margins are clear)."""
    root = tmp_path_factory.mktemp("export-runs")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_CACHE", str(root / "cache"))
        for s in STUDENTS:
            train_main(["--student", s, "--teacher", str(tiny_teacher), "--data", str(sst_dir),
                        "--output-dir", str(root / s), *TINY_RUN])
            out[s] = root / s
    return out


def _export(run_dir: Path, out: Path, *flags) -> dict:
    meta = export.main([str(run_dir), "--output-dir", str(out), *flags])
    assert json.loads((out / "metadata.json").read_text()) == meta
    return meta


@pytest.fixture(scope="module")
def onnx_bundles(runs, tmp_path_factory) -> dict[str, Path]:
    if not HAS_ONNX:
        pytest.skip("needs the onnx extra (pip install -e '.[onnx]'); CI installs it")
    root = tmp_path_factory.mktemp("onnx")
    return {s: (_export(runs[s], root / s), root / s)[1] for s in STUDENTS}


def student_logits(run_dir: Path, texts: list[str]) -> np.ndarray:
    model, tok, _ = load_run(run_dir)
    ids, mask = pad_batch(tok.encode(texts), tok.pad_id, pair=False)
    with torch.inference_mode():
        return model(ids, mask).numpy()


# ----------------------------------------------------------------------------- ONNX


def _reuse_onnx(monkeypatch, src: Path):
    """Skip the slow export step: copy an already exported model.onnx."""
    def fake(model, path, **kwargs):
        shutil.copy(src / "model.onnx", path)
        return onnx_shapes(path)
    monkeypatch.setattr(export, "export_onnx", fake)


@needs_onnx
@pytest.mark.parametrize("student", STUDENTS)
def test_onnx_bundle_has_dynamic_shapes_and_matches_the_student(student, onnx_bundles, runs):
    out = onnx_bundles[student]
    meta = json.loads((out / "metadata.json").read_text())
    for name in ("model.onnx", "tokenizer.json", "vocab.txt", "labels.txt", "README.md"):
        assert (out / name).is_file(), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary folder left"
    assert meta["format"] == "onnx" and meta["precision"] == "fp32" and meta["student"] == student
    assert meta["batch"]["dynamic"] and meta["length"]["dynamic"]  # the BiLSTM's too (ONNX LSTM op)
    assert meta["inputs"][0] == {"name": "input_ids", "dtype": "int64", "shape": ["batch", "length"]}
    assert meta["labels"] == ["negative", "positive"] == (out / "labels.txt").read_text().split()
    p = meta["parity"]
    assert p["rows"] == 40 and p["max_abs_logit_diff"] <= export.FP32_MAX_DIFF
    assert p["label_agreement"] == 1.0 and p["bundle_metric"] == p["pytorch_metric"]
    assert set(meta["latency_ms"]) == {"b1", "b32"}
    assert "onnxruntime" in (out / "README.md").read_text() and "Kotlin" in (out / "README.md").read_text()
    # any batch, any length up to the maximum, a single token included
    bundle = Bundle(out)
    ids, mask, truncated = bundle.encode(TEXTS)
    assert ids.shape == (4, 16) and truncated.tolist() == [False, False, False, True]
    np.testing.assert_allclose(bundle.logits(ids, mask), student_logits(runs[student], TEXTS), atol=1e-4)
    np.testing.assert_allclose(bundle.logits(ids[:1, :1], mask[:1, :1]),
                               student_logits(runs[student], TEXTS[:1]), atol=1e-4)


@needs_onnx
def test_int8_is_kept_only_when_it_agrees_and_is_not_slower(runs, onnx_bundles, tmp_path, monkeypatch):
    _reuse_onnx(monkeypatch, onnx_bundles["bilstm"])  # the fp32 export itself is tested above
    meta = _export(runs["bilstm"], tmp_path / "q", "--quantize", "int8")
    q = meta["quantization"]
    assert q["requested"] == "int8" and {"Gather", "LSTM"} <= set(q["op_types"])
    assert q["int8_bytes"] < q["fp32_bytes"] and q["int8_parity"]["label_agreement"] >= 0.99
    if q["kept"]:
        assert meta["precision"] == "int8" and meta["model_bytes"] == q["int8_bytes"]
    else:  # slower on this machine: fp32 shipped, and the reason says so
        assert meta["precision"] == "fp32" and "slower" in q["reason"]
    assert meta["model_bytes"] == (tmp_path / "q" / "model.onnx").stat().st_size
    assert sorted(p.name for p in (tmp_path / "q").glob("*.onnx")) == ["model.onnx"]


@needs_onnx
def test_a_4_bit_table_is_smaller_still_and_labels_as_int8_does(runs, onnx_bundles, tmp_path, monkeypatch):
    import onnx

    _reuse_onnx(monkeypatch, onnx_bundles["bilstm"])
    int8 = _export(runs["bilstm"], tmp_path / "q8", "--quantize", "int8", "--keep-int8", "always")
    meta = _export(runs["bilstm"], tmp_path / "q4", "--quantize", "int8", "--keep-int8", "always",
                   "--table-bits", "4")
    q = meta["quantization"]
    assert meta["precision"] == "int8" and q["kept"] and q["table_bits"] == 4 and "LSTM" in q["op_types"]
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q4" / "model.onnx")).graph.node]
    assert "GatherBlockQuantized" in ops and "DynamicQuantizeLSTM" in ops
    # the table is 16 x vocabulary here: half a byte per weight plus a scale per row beats one byte
    assert meta["model_bytes"] < int8["model_bytes"]
    assert q["int8_parity"]["label_agreement"] >= 0.99
    assert "GatherBlockQuantized" in (tmp_path / "q4" / "README.md").read_text()
    assert Bundle(tmp_path / "q4").predict(TEXTS)[0].label in ("negative", "positive")


def test_on_grid_rounds_like_the_export_is_idempotent_and_passes_gradients():
    from distill.training import table4

    torch.manual_seed(0)
    w = torch.randn(20, 100)  # two blocks a row: 64 values and 36
    g = table4.on_grid(w)
    assert torch.equal(table4.on_grid(g), g) and not torch.equal(g, w)
    for start in (0, 64):  # each block: at most 16 levels, the largest magnitude kept exactly
        block, orig = g[:, start:start + 64], w[:, start:start + 64]
        assert all(len(set(row.tolist())) <= 16 for row in block)
        assert torch.equal(block.abs().amax(1), orig.abs().amax(1))
    emb = torch.nn.Embedding(20, 100)
    table4.attach(emb)
    emb(torch.tensor([[1, 2]])).sum().backward()
    assert emb.weight.grad[1].abs().sum() > 0 and emb.weight.grad[3].abs().sum() == 0


@needs_onnx
def test_a_table_trained_for_4_bits_is_exported_without_rounding_anything(tiny_teacher, sst_dir, tmp_path, capsys):
    import onnx
    from onnx import numpy_helper
    from safetensors.torch import load_file

    from distill.training import table4

    run = tmp_path / "run"
    train_main(["--student", "bilstm", "--teacher", str(tiny_teacher), "--data", str(sst_dir),
                "--output-dir", str(run), "--tokenizer", "word", "--embedding-init", "random",
                "--alpha", "1", "--lr", "0.01", "--epochs", "2", "--width", "16", "--embed-dim", "80",
                "--depth", "1", "--max-length", "16", "--batch-size", "16", "--no-progress",
                "--latency-repeats", "1", "--table-bits", "4", "--augment", "none"])
    table = load_file(str(run / "model.safetensors"))["embedding.weight"]
    assert torch.equal(table4.on_grid(table), table)  # saved on the export's grid
    meta = _export(run, tmp_path / "b", "--quantize", "int8", "--keep-int8", "always")  # 4 bits: from the run
    assert meta["quantization"]["table_bits"] == 4
    assert "trained for a 4-bit table" in capsys.readouterr().out
    graph = onnx.load(str(tmp_path / "b" / "model.onnx")).graph
    node = next(n for n in graph.node if n.op_type == "GatherBlockQuantized")
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    q, scales = inits[node.input[0]].astype(np.float32), inits[node.input[2]]
    stored = q * np.repeat(scales, TABLE4_BLOCK, axis=1)[:, :q.shape[1]]
    np.testing.assert_array_equal(stored, table.numpy())  # the export rounded nothing away


def test_the_table_bits_default_to_what_the_run_was_trained_for():
    trained_4, trained_8, before_the_flag = ({"args": {"table_bits": 4}}, {"args": {"table_bits": 8}}, {"args": {}})
    assert export.default_table_bits(trained_4, "int8") == 4
    assert export.default_table_bits(trained_4, "none") == 8  # an fp32 export: the table stays fp32
    assert export.default_table_bits(trained_8, "int8") == export.default_table_bits(before_the_flag, "int8") == 8
    assert export.parse_args(["run", "--quantize", "int8", "--table-bits", "8"]).table_bits == 8  # given: kept


def _is_int8(path: Path) -> bool:
    import onnx

    return any(n.op_type.startswith("DynamicQuantize") for n in onnx.load(str(path)).graph.node)


@needs_onnx
def test_a_slower_int8_model_is_never_kept(runs, onnx_bundles, tmp_path, monkeypatch, capsys):
    _reuse_onnx(monkeypatch, onnx_bundles["bilstm"])
    monkeypatch.setattr(export, "time_bundle", lambda bundle, length, **k: {
        "b1": 2.0 if _is_int8(bundle.model_path) else 1.0, "b32": 1.0})
    meta = _export(runs["bilstm"], tmp_path / "q", "--quantize", "int8")
    assert meta["precision"] == "fp32" and not meta["quantization"]["kept"]
    assert "int8 is more than 3% slower than fp32" in capsys.readouterr().out
    assert not _is_int8(tmp_path / "q" / "model.onnx")
    assert "int8 was requested and not kept" in (tmp_path / "q" / "README.md").read_text()


@needs_onnx
def test_int8_much_faster_on_one_text_and_a_little_slower_at_batch_32_is_kept(runs, onnx_bundles, tmp_path,
                                                                                monkeypatch):
    _reuse_onnx(monkeypatch, onnx_bundles["bilstm"])
    monkeypatch.setattr(export, "time_bundle", lambda bundle, length, **k: (
        {"b1": 1.0, "b32": 31.0} if _is_int8(bundle.model_path) else {"b1": 3.0, "b32": 30.0}))
    meta = _export(runs["bilstm"], tmp_path / "q", "--quantize", "int8")
    q = meta["quantization"]
    assert meta["precision"] == "int8" and q["kept"] and _is_int8(tmp_path / "q" / "model.onnx")
    assert q["int8_time_ratio"] == pytest.approx((1 / 3 * 31 / 30) ** 0.5, abs=1e-4)


@needs_onnx
def test_an_int8_bundle_labels_a_text_alone_as_in_a_mixed_batch(runs, onnx_bundles, tmp_path, monkeypatch, capsys):
    _reuse_onnx(monkeypatch, onnx_bundles["transformer"])
    monkeypatch.setattr(export, "time_bundle", lambda bundle, length, **k: {  # int8 slower: kept only with always
        "b1": 2.0 if _is_int8(bundle.model_path) else 1.0, "b32": 1.0})
    # the batch policy is what is tested here, not the 99% gate (its own test): this tiny random student's int8
    # graph flips 1 of its 40 dev labels on some CPUs and none on others
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 0.0)
    out = tmp_path / "q"
    meta = _export(runs["transformer"], out, "--quantize", "int8", "--keep-int8", "always")
    assert meta["precision"] == "int8" and _is_int8(out / "model.onnx") and meta["batch_policy"] == "row"
    assert "kept with --keep-int8 always although" in meta["quantization"]["reason"]
    b = meta["bundle_bytes"]  # where the folder's bytes go, metadata.json included
    assert b["model"] == (out / "model.onnx").stat().st_size and b["vocab.txt"] == (out / "vocab.txt").stat().st_size
    assert b["total"] == b["model"] + b["tokenizer.json"] + b["vocab.txt"] + b["other"]
    assert b["total"] == sum(f.stat().st_size for f in out.iterdir())
    assert "bundle " in capsys.readouterr().out and '"row"' in (out / "README.md").read_text()
    bundle = Bundle(out)
    mixed = TEXTS + ["the movie was good", "dull", "a witty and charming film " * 3]
    together = bundle.predict(mixed, batch_size=len(mixed))
    for text, pred in zip(mixed, together):
        alone = bundle.predict([text])[0]
        assert alone.label == pred.label and alone.probabilities == pred.probabilities


@needs_onnx
def test_a_static_int8_cnn_runs_a_batch_in_one_call_and_gives_each_text_what_it_gets_alone(runs, onnx_bundles,
                                                                                          tmp_path, monkeypatch):
    """The CNN is quantized statically (fixed activation scales calibrated on training rows): its convolutions are
    int8, and a padded batch gives each text exactly the logits it gets alone, so it runs batches in one call."""
    import onnx

    _reuse_onnx(monkeypatch, onnx_bundles["cnn"])
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 0.0)  # a tiny random student's near-ties: not the subject
    out = tmp_path / "static"
    meta = _export(runs["cnn"], out, "--quantize", "int8", "--keep-int8", "always")
    assert meta["precision"] == "int8" and meta["batch_policy"] == "batch"
    assert "quantize_static" in meta["quantization"]["method"] and "training rows" in meta["quantization"]["method"]
    graph = onnx.load(str(out / "model.onnx")).graph
    int8_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    conv_inputs = [n.input[1] for n in graph.node if n.op_type == "Conv"]
    producers = {o: n for n in graph.node for o in n.output}
    assert conv_inputs and all(producers[w].op_type == "DequantizeLinear" and producers[w].input[0] in int8_weights
                               for w in conv_inputs)  # every convolution reads int8 weights
    bundle = Bundle(out)
    mixed = TEXTS + ["the movie was good", "dull", "a witty and charming film " * 3]
    ids, mask, _ = bundle.encode(mixed)  # padded to the longest
    together = bundle.logits(ids, mask)
    for i, text in enumerate(mixed):
        alone_ids, alone_mask, _ = bundle.encode([text])
        np.testing.assert_array_equal(bundle.logits(alone_ids, alone_mask)[0], together[i])


@needs_onnx
def test_a_static_int8_export_without_training_rows_is_a_one_line_error(runs, onnx_bundles, tmp_path, monkeypatch,
                                                                        capsys):
    from distill.bundle.check import dev_rows

    _reuse_onnx(monkeypatch, onnx_bundles["cnn"])
    monkeypatch.setattr(export, "dev_rows", lambda *a: dataclasses.replace(dev_rows(*a), calibration=[]))
    with pytest.raises(SystemExit) as e:
        export.main([str(runs["cnn"]), "--output-dir", str(tmp_path / "b"), "--quantize", "int8"])
    assert e.value.code == 2 and not (tmp_path / "b").exists()
    err = capsys.readouterr().err
    assert "calibrated on training rows" in err and "export without --quantize" in err and "Traceback" not in err


@needs_onnx
@pytest.mark.parametrize("knob, flags, message", [
    ("INT8_MIN_AGREEMENT", ["--quantize", "int8"], "int8 parity check failed"),
    ("FP32_MAX_DIFF", [], "parity check failed"),
])
def test_failed_parity_fails_loudly_and_writes_nothing(knob, flags, message, runs, onnx_bundles,
                                                       tmp_path, monkeypatch, capsys):
    _reuse_onnx(monkeypatch, onnx_bundles["cnn"])
    monkeypatch.setattr(export, knob, 1.01 if knob == "INT8_MIN_AGREEMENT" else -1.0)
    with pytest.raises(SystemExit) as e:
        export.main([str(runs["cnn"]), "--output-dir", str(tmp_path / "b"), *flags])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # no bundle, no temporary folder


# ----------------------------------------------------------------------------- ExecuTorch


@needs_et
@pytest.mark.parametrize("student", [  # the transformer's lowering takes ~10 s: slow
    "bilstm", "cnn", pytest.param("transformer", marks=pytest.mark.slow)])
def test_executorch_bundle_matches_the_student(student, runs, tmp_path):
    # the BiLSTM unrolls over a fixed length in ExecuTorch: keep it short so the test is quick
    flags = ["--max-length", "3"] if student == "bilstm" else ["--batch-size", "3"]
    meta = _export(runs[student], tmp_path / "b", "--format", "executorch", *flags)
    assert meta["format"] == "executorch" and meta["backend"] == "XNNPACK"
    assert (tmp_path / "b" / "model.pte").is_file() and not meta["batch"]["dynamic"]
    assert meta["parity"]["max_abs_logit_diff"] <= export.FP32_MAX_DIFF
    assert meta["parity"]["label_agreement"] == 1.0
    bundle = Bundle(tmp_path / "b")
    ids, mask, truncated = bundle.encode(TEXTS)
    if student == "bilstm":
        assert meta["length"] == {"dynamic": False, "min": 1, "max": 3,
                                  "why_fixed": "ExecuTorch cannot take a dynamic length through an LSTM today"}
        assert meta["inputs"][0]["shape"] == [1, 3] and ids.shape == (4, 3)
        assert truncated.tolist() == [False, True, True, True]
        expected = student_logits(runs[student], [" ".join(t.split()[:3]) for t in TEXTS])
    else:
        assert meta["length"]["dynamic"] and meta["inputs"][0]["shape"] == [3, "length"]
        expected = student_logits(runs[student], TEXTS)
    # 4 rows through a batch-1 or batch-3 program: chunks, the last one padded with empty rows
    np.testing.assert_allclose(bundle.logits(ids, mask), expected, atol=1e-4)


# ----------------------------------------------------------------------------- distill.predict


@needs_onnx
def test_predict_gives_the_students_labels_and_notes_truncation_once(runs, onnx_bundles, capsys):
    predict_main([str(onnx_bundles["bilstm"]), *TEXTS, "--json"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    labels = ["negative", "positive"]
    expected = [labels[i] for i in student_logits(runs["bilstm"], TEXTS).argmax(1)]
    assert [r["label"] for r in rows] == expected and [r["text"] for r in rows] == TEXTS
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)
    assert [r["truncated"] for r in rows] == [False, False, False, True]
    assert err.count("truncated") == 1 and "1 of 4 text(s) had more than 16 tokens" in err
    predict_main([str(onnx_bundles["bilstm"]), TEXTS[2]])
    assert capsys.readouterr().out.startswith(expected[2] + "\t")


@needs_onnx
def test_predict_reads_stdin_and_runs_an_onnx_bundle_without_torch(onnx_bundles):
    # torch made unimportable: the ONNX path must not need it
    code = ("import sys; sys.modules['torch'] = None; from distill.predict import main; "
            f"main([{str(onnx_bundles['cnn'])!r}])")
    res = subprocess.run([sys.executable, "-c", code], input="a witty film\n\ndull plot\n",
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == "" and lines[2].endswith("dull plot")  # one line per input line


@needs_onnx
def test_a_moved_bundle_still_works(runs, onnx_bundles, tmp_path):
    moved = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(onnx_bundles["transformer"], moved)
    text = (moved / "metadata.json").read_text()
    assert str(onnx_bundles["transformer"]) not in text  # every path in it is relative
    bundle = Bundle(moved)
    ids, mask, _ = bundle.encode(TEXTS)
    np.testing.assert_allclose(bundle.logits(ids, mask), student_logits(runs["transformer"], TEXTS), atol=1e-4)


@needs_onnx
def test_no_vocab_txt_ships_the_vocabulary_once_and_predicts_the_same(runs, onnx_bundles, tmp_path, monkeypatch):
    _reuse_onnx(monkeypatch, onnx_bundles["cnn"])
    out = tmp_path / "slim"
    meta = _export(runs["cnn"], out, "--no-vocab-txt")
    full = json.loads((onnx_bundles["cnn"] / "metadata.json").read_text())
    assert not (out / "vocab.txt").exists() and meta["tokenizer"]["vocab_file"] is None
    assert meta["bundle_bytes"]["vocab.txt"] == 0 < full["bundle_bytes"]["vocab.txt"]
    assert meta["bundle_bytes"]["total"] == sum(f.stat().st_size for f in out.iterdir())
    readme = (out / "README.md").read_text()
    assert "vocab.txt" not in readme and "`model.vocab`" in readme
    # every id the client needs is in tokenizer.json, in the order vocab.txt would list them
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert sorted(vocab, key=vocab.get) == (onnx_bundles["cnn"] / "vocab.txt").read_text().splitlines()
    assert Bundle(out).predict(TEXTS) == Bundle(onnx_bundles["cnn"]).predict(TEXTS)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("flags, message", [
    (["--format", "tflite"], "--format tflite: unknown format; choose one of: onnx, executorch"),
    (["--format", "executorch", "--quantize", "int8"], "use --format onnx"),
    (["--batch-size", "4"], "--batch-size is for --format executorch"),
    (["--max-length", "0"], "--max-length 0 must be >= 1"),
    (["--quantize", "int4"], "--quantize int4: choose none or int8"),
    (["--table-bits", "4"], "--table-bits 4 quantizes the int8 model's embedding table further: add --quantize int8"),
    (["--quantize", "int8", "--table-bits", "6"], "--table-bits 6: choose 8 or 4"),
])
def test_bad_flags_give_one_line_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        export.main([str(tmp_path), "--output-dir", str(tmp_path / "b"), *flags])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err and "\n" not in err and "Traceback" not in err


@needs_onnx
def test_bad_inputs_name_the_problem_and_the_fix(runs, tmp_path, capsys, monkeypatch):
    def error(argv, main=export.main) -> str:
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in argv])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and "\n" not in err and "Traceback" not in err, err
        return err

    assert "is not a trained student" in error([tmp_path, "--output-dir", tmp_path / "b"])
    assert "has 512 positions" in error([runs["transformer"], "--max-length", "600",
                                         "--output-dir", tmp_path / "b"])
    assert "--labels" in error([runs["cnn"], "--labels", tmp_path / "nope", "--output-dir", tmp_path / "b"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    relabelled = tmp_path / "relabelled"  # its label set's folder now holds other data than it was trained on
    shutil.copytree(runs["cnn"], relabelled)
    config = json.loads((relabelled / "config.json").read_text())
    config["label_set"]["key"] = "0" * 64
    (relabelled / "config.json").write_text(json.dumps(config))
    assert "holds other data than the student was trained on" in error([relabelled, "--output-dir", tmp_path / "b"])
    for flags in ([], ["--overwrite"]):  # a folder the tool did not make is never replaced
        assert "not made by distill-workbench" in error([runs["cnn"], "--output-dir", tmp_path / "full", *flags])
    assert (tmp_path / "full" / "x").read_text() == "x"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    err = error([runs["cnn"], "--output-dir", tmp_path / "b"])
    assert "needs the 'onnx' extra" in err and "pip install" in err
    monkeypatch.delitem(sys.modules, "onnxruntime")
    monkeypatch.setitem(sys.modules, "executorch.exir", None)
    err = error([runs["cnn"], "--format", "executorch", "--output-dir", tmp_path / "b"])
    assert "needs the 'executorch' extra" in err and "[executorch]" in err
    monkeypatch.delitem(sys.modules, "executorch.exir")
    monkeypatch.setattr(export, "export_onnx", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no")))
    assert "cannot be exported to onnx (RuntimeError: no); --format executorch" in error(
        [runs["cnn"], "--output-dir", tmp_path / "b"])
    assert "is not an export bundle" in error([tmp_path, "x"], predict_main)
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------- JavaScript


def _js_modules() -> Path | None:
    """A folder with @huggingface/transformers and onnxruntime-node installed ($DISTILL_JS_DIR, else the
    workbench cache), installing them there once if npm can; None where node or the packages are missing."""
    import os

    if not (shutil.which("node") and shutil.which("npm")):
        return None
    d = Path(os.environ.get("DISTILL_JS_DIR") or Path.home() / ".cache" / "distill-workbench" / "js")

    def installed() -> bool:  # exactly the versions the bundle's README names, and one onnxruntime-node
        for spec in JS_PACKAGES:
            name, version = spec.rsplit("@", 1)
            versions = {json.loads(f.read_text())["version"] for f in d.glob(f"**/node_modules/{name}/package.json")}
            if versions != {version}:
                return False
        return True

    if not installed():
        d.mkdir(parents=True, exist_ok=True)
        try:
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *JS_PACKAGES],
                               cwd=d, capture_output=True, env={**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"},
                               timeout=600)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode or not installed():
            return None
    return d


@needs_onnx
@pytest.mark.parametrize("student, kind", [("cnn", "fp32"), ("cnn", "4-bit table, no vocab.txt"),
                                           ("bilstm", "fp32")])  # the BiLSTM: its graph written from its weights
def test_the_readmes_javascript_runs_and_matches_python(student, kind, runs, onnx_bundles, tmp_path, monkeypatch):
    """The README's JavaScript snippet, run by node on the bundle: same ids (an empty text included) and
    labels as the Python runtime; also for the smallest bundle (GatherBlockQuantized, tokenizer.json alone)."""
    if not shutil.which("node"):
        pytest.skip("needs node")
    modules = _js_modules()
    if modules is None:
        pytest.skip("needs npm packages @huggingface/transformers and onnxruntime-node (npm install failed)")
    bundle_dir = onnx_bundles[student]
    if kind != "fp32":
        _reuse_onnx(monkeypatch, bundle_dir)
        # a tiny student's near-tied logits may flip under a 4-bit table: the gate is not this test's subject
        monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 0.0)
        bundle_dir = tmp_path / "small" / "cnn"
        _export(runs["cnn"], bundle_dir, "--quantize", "int8", "--keep-int8", "always", "--table-bits", "4",
                "--no-vocab-txt")
        assert not (bundle_dir / "vocab.txt").exists()
    assert json.loads((bundle_dir / "tokenizer_config.json").read_text())["model_max_length"] > 0
    readme = (bundle_dir / "README.md").read_text()
    snippet = readme.split("```javascript\n", 1)[1].split("```", 1)[0]
    snippet = snippet.replace("/path/to/", f"{bundle_dir.parent}/")
    texts = ["a witty and charming film", "", "boring " * 30 + "movie", "the plot was dull"]
    meta = json.loads((bundle_dir / "metadata.json").read_text())
    script = modules / f"client-{bundle_dir.parent.name}.mjs"
    script.write_text(snippet + f"""
const texts = {json.dumps(texts)};
const out = [];
for (const text of texts) {{
  let {{ input_ids: ids }} = tokenizer(text, {{ add_special_tokens: false, truncation: true,
                                              max_length: {meta["max_length"]},
                                              return_tensor: false }});
  if (ids.length === 0) ids = [{meta["tokenizer"]["unk_id"]}];
  out.push({{ ids, label: await classify(text) }});
}}
console.log(JSON.stringify(out));
""")
    try:
        r = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=120)
    finally:
        script.unlink()
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    bundle = Bundle(bundle_dir)
    ids, mask, _ = bundle.encode(texts)
    want_ids = [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)]
    assert [g["ids"] for g in got] == want_ids
    assert [g["label"] for g in got] == [p.label for p in bundle.predict(texts)]


@needs_onnx
def test_a_cnn_with_context_layers_exports_at_any_length_and_matches_the_student(tiny_teacher, sst_dir, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "cnn-context"
    train_main(["--student", "cnn", "--teacher", str(tiny_teacher), "--data", str(sst_dir), "--output-dir", str(run),
                *TINY_RUN, "--student-config", '{"context_layers": 2}'])
    meta = _export(run, tmp_path / "bundle")  # the export's own parity check: fp32 logits within 1e-4
    assert meta["parity"]["label_agreement"] == 1.0 and meta["length"]["dynamic"]
    bundle = Bundle(tmp_path / "bundle")
    ids, mask, _ = bundle.encode(TEXTS)
    np.testing.assert_allclose(bundle.logits(ids, mask), student_logits(run, TEXTS), atol=1e-4)
