"""Embedding tables without fine-tuning: SVD and direction-loss autoencoder factors, teacher
initialisation, vocabulary pruning, and `distill.compress` runs that load, score and export."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import students
from distill import compress
from distill.data import read_split, resolve_task
from distill.data.tokenizer import from_teacher
from distill.data.vocab import prune_tokenizer, token_counts
from distill.errors import DistillError
from distill.train import main as train_main
from distill.training.embeddings import (
    AutoencoderConfig,
    autoencoder_table,
    fidelity,
    svd_factors,
    train_autoencoder,
)
from distill.training.runfolder import load_run

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


def low_rank_table(n=400, d=24, rank=6, seed=0, spread=True) -> torch.Tensor:
    """Rows of a rank-`rank` table plus noise; with `spread`, row norms span three decades."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, rank, generator=g) @ torch.randn(rank, d, generator=g) + 0.3 * torch.randn(n, d, generator=g)
    if spread:
        x = x * torch.logspace(-1.5, 1.5, n)[torch.randperm(n, generator=g)].unsqueeze(1)
    return x


# ----------------------------------------------------------------------------- factors


def test_svd_at_full_rank_reconstructs_exactly():
    e = low_rank_table()
    a, b = svd_factors(e, e.shape[1])
    assert a.shape == (400, 24) and b.shape == (24, 24)
    torch.testing.assert_close(a @ b, e, rtol=0, atol=1e-4)


def test_svd_is_the_best_rank_r_fit():
    e = low_rank_table()
    s = torch.linalg.svdvals(e.double())
    for r in (1, 4, 12):
        a, b = svd_factors(e, r)
        err = (a @ b - e).double().norm()
        assert err == pytest.approx(float(s[r:].pow(2).sum().sqrt()), rel=1e-4)


def test_autoencoder_loss_goes_down_and_is_the_weighted_sum_of_its_terms():
    e = low_rank_table()
    cfg = AutoencoderConfig(cos_weight=1.0, mse_weight=0.5, epochs=15, batch_size=64, hidden=32)
    result = train_autoencoder(e, 6, cfg, progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < 0.5 * first["loss"]
    assert last["cosine"] < first["cosine"] and last["mse"] < first["mse"]
    for h in result.history:
        assert h["loss"] == pytest.approx(h["cosine"] + 0.5 * h["mse"], rel=1e-4)
    assert result.codes.shape == (400, 6) and result.decoder.shape == (6, 24)
    # the decoder is linear and bias-free: codes @ decoder is the reconstruction, at the table's scale
    rel = fidelity(e, result.codes @ result.decoder)["relative_error"]
    assert rel**2 == pytest.approx(last["mse"], rel=0.2)  # mse is measured on the table scaled to unit RMS


def test_the_cosine_term_is_used_it_fits_the_direction_of_short_rows():
    """Long rows live in one 3-d subspace, short rows (60x shorter) in another, and the code has
    4 dimensions: squared error alone spends them on the long rows; the cosine term weighs every
    row's direction equally, so the short rows keep theirs too."""
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(24, 24, generator=g))
    long = torch.randn(200, 3, generator=g) @ q[:3] * 3.0
    short = torch.randn(200, 3, generator=g) @ q[3:6] * 0.05
    e = torch.cat([long, short]) + 0.01 * torch.randn(400, 24, generator=g)
    is_short = torch.arange(400) >= 200

    def short_row_cosine(cos_weight: float) -> float:
        cfg = AutoencoderConfig(cos_weight=cos_weight, mse_weight=1.0, epochs=60, batch_size=64, hidden=64)
        r = train_autoencoder(e, 4, cfg, progress=False)
        return fidelity(e, r.codes @ r.decoder, is_short)["mean_cosine"]

    assert short_row_cosine(1.0) > short_row_cosine(0.0) + 0.2


def test_autoencoder_weights_must_not_both_be_zero():
    with pytest.raises(ValueError, match="not both 0"):
        AutoencoderConfig(cos_weight=0, mse_weight=0)


def test_teacher_autoencoder_table_is_cached_and_fills_absent_rows(cache, capsys):
    e = low_rank_table(n=120, spread=False)
    present = torch.ones(120, dtype=torch.bool)
    present[100:] = False
    cfg = AutoencoderConfig(epochs=3, hidden=16)
    first = autoencoder_table(e, 8, present=present, cfg=cfg, progress=False)
    again = autoencoder_table(e, 8, present=present, cfg=cfg, progress=False)
    assert "reusing" in capsys.readouterr().out
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert first.shape == (120, 8)
    assert first[:100].pow(2).mean().sqrt() == pytest.approx(1.0, rel=1e-3)  # unit RMS, like PCA
    assert len(list((cache / "autoencoders").iterdir())) == 1


# ----------------------------------------------------------------------------- pruning


@pytest.fixture(scope="module")
def teacher_tokenizer(tiny_teacher):
    from transformers import AutoTokenizer

    return from_teacher(AutoTokenizer.from_pretrained(tiny_teacher).backend_tokenizer.to_str(), 32)


@pytest.fixture(scope="module")
def train_texts(sst_dir) -> list[str]:
    task = resolve_task("sst2")
    return [row[0] for row in read_split(task, sst_dir / "train.tsv").texts]


def test_pruning_keeps_every_training_token_and_predictions_match(teacher_tokenizer, train_texts):
    tok = teacher_tokenizer
    old = tok.encode(train_texts)
    flat = np.fromiter((i for ids in old for i in ids), dtype=np.int32)
    pruned = prune_tokenizer(tok, token_counts(flat, tok.vocab_size))
    assert pruned.new_size < pruned.old_size == tok.vocab_size
    assert set(flat.tolist()) <= set(pruned.kept.tolist())  # every token the texts use is kept
    assert {tok.pad_id, tok.unk_id} <= set(pruned.kept.tolist())
    assert (np.diff(pruned.kept) > 0).all()  # old order kept
    new = pruned.tokenizer.encode(train_texts)
    assert [[int(pruned.kept[i]) for i in ids] for ids in new] == old  # same tokens, renumbered
    assert pruned.tokenizer.vocab_size == pruned.new_size
    assert pruned.tokenizer.pad_id == int(np.flatnonzero(pruned.kept == tok.pad_id)[0])

    torch.manual_seed(0)
    full = students.build_student("cnn", vocab_size=tok.vocab_size, num_labels=2, pad_id=tok.pad_id,
                                  embed_dim=8, width=8).eval()
    small = students.build_student("cnn", vocab_size=pruned.new_size, num_labels=2,
                                   pad_id=pruned.tokenizer.pad_id, embed_dim=8, width=8).eval()
    state = full.state_dict()
    state["embedding.weight"] = state["embedding.weight"][torch.as_tensor(pruned.kept)]
    small.load_state_dict(state)

    def logits(model, seqs, pad):
        width = max(map(len, seqs))
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        with torch.no_grad():
            return model(ids, mask)

    torch.testing.assert_close(logits(small, new[:64], pruned.tokenizer.pad_id), logits(full, old[:64], tok.pad_id),
                               rtol=0, atol=0)


def test_pruning_maps_dropped_tokens_to_kept_pieces_or_unknown(teacher_tokenizer, train_texts):
    tok = teacher_tokenizer
    flat = np.fromiter((i for ids in tok.encode(train_texts) for i in ids), dtype=np.int32)
    pruned = prune_tokenizer(tok, token_counts(flat, tok.vocab_size)).tokenizer
    ids = pruned.encode(["he said good zzz"])[0]  # "he", "said" and "z" never occur in training
    assert all(0 <= i < pruned.vocab_size for i in ids)
    assert pruned.unk_id in ids


def test_pruning_that_leaves_nothing_is_an_error(teacher_tokenizer, train_texts):
    tok = teacher_tokenizer
    flat = np.fromiter((i for ids in tok.encode(train_texts) for i in ids), dtype=np.int32)
    with pytest.raises(DistillError, match="would leave no tokens.*lower --prune-min-count"):
        prune_tokenizer(tok, token_counts(flat, tok.vocab_size), min_count=10**9)


# ----------------------------------------------------------------------------- train + compress


@pytest.fixture(scope="module")
def runs(tiny_teacher, sst_dir, tmp_path_factory) -> dict[str, Path]:
    """Tiny BiLSTMs with teacher-autoencoder embeddings: the full teacher vocabulary, and pruned."""
    root = tmp_path_factory.mktemp("emb-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_CACHE", str(root / "cache"))
        for name, extra in (("full", []), ("pruned", ["--prune-vocab"])):
            train_main(["--student", "bilstm", "--teacher", str(tiny_teacher), "--data", str(sst_dir),
                        "--output-dir", str(root / name), "--embedding-init", "teacher-autoencoder", *extra,
                        "--alpha", "1", "--lr", "0.01", "--epochs", "2", "--width", "8", "--embed-dim", "12",
                        "--max-length", "16", "--batch-size", "16", "--no-progress", "--latency-repeats", "1"])
    return {"full": root / "full", "pruned": root / "pruned"}


@pytest.fixture(scope="module")
def pruned_run(runs) -> Path:
    return runs["pruned"]


def test_a_pruned_student_trains_to_the_same_weights_on_the_tokens_it_keeps(runs, train_texts):
    """Same seed, same rows: pruning only drops table rows no training row reaches, so training
    follows the same path and the two students predict alike on any text made of kept tokens."""
    full, full_tok, _ = load_run(runs["full"])
    small, small_tok, config = load_run(runs["pruned"])
    kept = torch.as_tensor([full_tok.tokenizer.token_to_id(small_tok.tokenizer.id_to_token(i))
                            for i in range(small_tok.vocab_size)])
    a, b = full.state_dict(), small.state_dict()
    torch.testing.assert_close(b.pop("embedding.weight"), a.pop("embedding.weight")[kept], rtol=0, atol=1e-5)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=k)
    texts = train_texts[:50]
    assert [[int(kept[i]) for i in ids] for ids in small_tok.encode(texts)] == full_tok.encode(texts)


def test_train_with_a_pruned_vocabulary_saves_a_consistent_run(pruned_run, tiny_teacher):
    config = json.loads((pruned_run / "config.json").read_text())
    vocab = config["vocabulary"]
    assert vocab["pruned"] and vocab["new_size"] < vocab["old_size"]
    assert config["embedding_init"] == "teacher-autoencoder"
    model, tok, _ = load_run(pruned_run)
    assert tok.vocab_size == vocab["new_size"] == model.embedding.weight.shape[0]
    report = json.loads((pruned_run / "report.json").read_text())
    assert report["training"]["vocabulary"] == vocab


@pytest.fixture(scope="module")
def compressed(pruned_run) -> dict:
    """The pruned run compressed to rank 4 by each method: method -> (folder, report)."""
    out = {}
    for method in ("svd", "autoencoder"):
        folder = pruned_run.with_name(f"r4-{method}")
        out[method] = folder, compress.main([str(pruned_run), "--embedding-rank", "4", "--method", method,
                                             "--output-dir", str(folder), "--no-progress", "--latency-repeats", "1",
                                             "--ae-epochs", "3"])
    return out


@pytest.mark.parametrize("method", ["svd", "autoencoder"])
def test_a_compressed_run_loads_evaluates_and_exports(method, compressed, pruned_run, tmp_path):
    out, report = compressed[method]
    model, tok, config = load_run(out)
    source, _, _ = load_run(pruned_run)
    assert config["student_config"]["embedding_rank"] == 4
    assert model.embedding.lookup.weight.shape == (tok.vocab_size, 4)
    assert model.embedding.proj.weight.shape == (12, 4)
    assert model.embedding.lookup.weight[tok.pad_id].abs().sum() == 0
    c = report["compression"]
    assert c["method"] == method and c["rank"] == 4 and c["source"] == str(pruned_run)
    assert c["embedding_params"]["after"] == 4 * (tok.vocab_size + 12) < c["embedding_params"]["before"]
    assert report["student"]["params_without_embeddings"] == source.num_parameters(exclude_embeddings=True)
    assert report["student"]["params"] < source.num_parameters()
    assert 0 <= report["student"]["dev_metric"] <= 1
    assert c["drop_from_source"] == pytest.approx(c["source_dev_metric"] - c["dev_metric"], abs=1e-6)
    assert "drop of" in (out / "report.md").read_text()
    if not HAS_ONNX:
        pytest.skip("export needs the onnx extra (pip install -e '.[onnx]'); CI installs it")
    from distill.bundle import build as export

    meta = export.main([str(out), "--output-dir", str(tmp_path / "bundle")])
    assert meta["parity"]["max_abs_logit_diff"] < 1e-4
    import onnx

    inits = {i.name: tuple(i.dims) for i in onnx.load(str(tmp_path / "bundle" / "model.onnx")).graph.initializer}
    assert (tok.vocab_size, 4) in inits.values()  # the factors, not a re-multiplied (V, 12) table
    assert (tok.vocab_size, 12) not in inits.values()


@pytest.mark.parametrize("argv,message", [
    (["--embedding-rank", "12"], "--embedding-rank 12 is not below the embedding size of .* rank from 1 to 11"),
    (["--embedding-rank", "0"], "--embedding-rank 0 must be >= 1"),
    (["--method", "pca"], "--method pca: choose one of: svd, autoencoder"),
    (["--cos-weight", "0", "--mse-weight", "0"], "not both 0"),
])
def test_bad_compress_flags_are_one_line_errors(argv, message, pruned_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        compress.main([str(pruned_run), "--output-dir", str(tmp_path / "x"), *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "x").exists()


def test_compressing_a_compressed_run_is_refused(compressed, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compress.main([str(compressed["svd"][0]), "--embedding-rank", "2", "--output-dir", str(tmp_path / "r2")])
    assert "already compressed (rank 4); compress the run it came from" in capsys.readouterr().err


@pytest.mark.parametrize("init", ["teacher-svd", "teacher-autoencoder"])
def test_teacher_init_with_a_word_vocabulary_explains_it_needs_the_teachers_tokenizer(init, capsys):
    with pytest.raises(SystemExit):
        train_main(["--student", "cnn", "--tokenizer", "word", "--embedding-init", init])
    err = capsys.readouterr().err
    assert f"--embedding-init {init} needs the teacher's tokenizer" in err and err.count("\n") == 1
