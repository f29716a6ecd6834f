"""--latency-runtime: the default times the ONNX bundle (each architecture exported once), torch the
eager student; a searched int8 student's predicted size is its exported bundle's model file size.
No timing assertions: only what was exported, how often, and what the reports say."""

import csv
import importlib.util
import json

import optuna
import pytest
from search_helpers import make_labels, tiny

import search.latency as latency_mod
from distill.train import TrainArgs
from search.args import SearchArgs
from search.budget import Budget, Timing
from search.objective import Objective, TrialSettings, trial_args
from search.retrain import retrain
from search.run import main
from search.space import SpaceLimits, replay

optuna.logging.set_verbosity(optuna.logging.WARNING)
needs_onnx = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in latency_mod.ONNX_MODULES),
                                reason="needs the onnx extra")

BILSTM = {"bilstm.width": 16, "bilstm.depth": 1, "bilstm.embed_dim": 16, "bilstm.mlp_hidden": 32,
          "bilstm.dropout": 0.1, "bilstm.lr": 1e-3, "bilstm.alpha": 0.0}
# the cache test uses the CNN: its ONNX export takes a second, a BiLSTM's about ten (the LSTM's loop)
CNN = {"cnn.width": 16, "cnn.depth": 2, "cnn.first_width": 2, "cnn.embed_dim": 16, "cnn.mlp_hidden": 0,
       "cnn.dropout": 0.1, "cnn.lr": 1e-3, "cnn.alpha": 0.0}


@pytest.fixture(scope="module")
def labels(tmp_path_factory, tiny_teacher, sst_dir):
    return make_labels(tmp_path_factory, tiny_teacher, sst_dir)


TINY = SpaceLimits(max_width=32, max_embed_dim=16)


def _objective(labels, tmp_path, budget, limits=TINY, student="bilstm", **retrain_flags):
    base = TrainArgs(student=student, labels=str(labels), epochs=1, batch_size=32, no_progress=True)
    s = TrialSettings(base=base, students=(student,), budget=budget, limits=limits, output_dir=str(tmp_path),
                      retrain=retrain_flags)
    return Objective(s, device="cpu")


@needs_onnx
def test_onnx_latency_exports_and_quantizes_each_architecture_once(labels, tmp_path, monkeypatch):
    calls = {"export": 0, "quantize": 0}

    def counting(name, real):
        def wrapped(*a, **k):
            calls[name] += 1
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(latency_mod, "export_onnx", counting("export", latency_mod.export_onnx))
    monkeypatch.setattr(latency_mod, "quantize_onnx", counting("quantize", latency_mod.quantize_onnx))
    budget = Budget(max_size_mb=100, precision="int8", timing=Timing(length=8, repeats=2, runtime="onnx"))
    obj = _objective(labels, tmp_path, budget, student="cnn")

    def cost(params):
        cand = replay(params, ("cnn",), limits=obj.s.limits)
        return obj.cost_of(cand, trial_args(obj.s.base, cand))[1]

    first = cost(CNN)
    assert calls == {"export": 1, "quantize": 1} and first.latency_runtime == "ONNX Runtime int8"
    # the same architecture again, and one that differs only in dropout and learning rate: cache hits
    assert cost(CNN).latency_ms == first.latency_ms
    cost(CNN | {"cnn.dropout": 0.3, "cnn.lr": 2e-3})
    assert calls == {"export": 1, "quantize": 1}
    cost(CNN | {"cnn.width": 24})  # another graph: exported and timed
    assert calls == {"export": 2, "quantize": 2} and len(obj.latency_cache) == 2


@needs_onnx
def test_a_searched_int8_students_size_is_its_exported_bundles_model_within_2_percent(labels, tmp_path,
                                                                                      monkeypatch):
    """Searched at --precision int8, retrained, exported with distill.export --quantize int8: the size
    the budget predicted is the model file's size (the BiLSTM's LSTM weights int8 too)."""
    import distill.bundle.build as build
    from distill.export import parse_args as export_args
    from distill.export import run as export

    # a one-epoch student of a random teacher has near-tied logits that int8 may flip: the label
    # agreement gate is not what this test is about
    monkeypatch.setattr(build, "INT8_MIN_AGREEMENT", 0.0)

    # timed in PyTorch: the size does not depend on the latency runtime, and each ONNX export of a BiLSTM
    # takes ~10 s (test_onnx_latency_exports_and_quantizes_each_architecture_once covers that path)
    budget = Budget(max_size_mb=100, precision="int8", timing=Timing(length=8, repeats=2, runtime="torch"))
    limits = SpaceLimits(max_width=256, max_embed_dim=128)
    obj = _objective(labels, tmp_path, budget, limits, epochs=1, no_progress=True)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(BILSTM | {"bilstm.width": 256, "bilstm.embed_dim": 128, "bilstm.mlp_hidden": 128})
    study.optimize(obj, n_trials=1)
    trial = study.trials[0]
    assert "rejected" not in trial.user_attrs
    args = SearchArgs(student="bilstm", labels=str(labels), max_width=256, max_embed_dim=128)
    done = retrain(args, obj.s, obj, [trial])
    meta = export(export_args([done[0]["run_dir"], "--quantize", "int8", "--keep-int8", "always",
                               "--output-dir", str(tmp_path / "bundle")]))
    assert meta["precision"] == "int8"
    predicted = trial.user_attrs["cost"]["size_mb"] * 1e6
    assert predicted == pytest.approx(meta["model_bytes"], rel=0.02)
    assert predicted == pytest.approx((tmp_path / "bundle" / "model.onnx").stat().st_size, rel=0.02)


@pytest.mark.parametrize("runtime, label", [
    ("torch", "PyTorch eager fp32"),
    pytest.param("onnx", "ONNX Runtime fp32", marks=needs_onnx)])
def test_the_reports_say_which_runtime_the_latency_column_comes_from(labels, tmp_path, capsys, runtime, label):
    out = tmp_path / "s"
    argv = tiny(labels, out, "--student", "cnn", "--trials", 2)
    summary = main(argv + ["--latency-runtime", runtime])
    assert summary["timing"]["runtime"] == runtime and summary["latency_text"].startswith(label)
    rows = list(csv.DictReader(open(out / "leaderboard.csv")))
    assert len(rows) == 2 and {r["latency_runtime"] for r in rows} == {label}
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    md = (out / "leaderboard.md").read_text()
    assert f"latency ms ({label})" in md and f"latency column: {label}, batch 1, 8 tokens" in md
    assert json.loads((out / "search.json").read_text())["identity"]["latency_runtime"] == runtime
    # the study remembers it: the same search timed in the other runtime is refused
    other = "onnx" if runtime == "torch" else "torch"
    with pytest.raises(SystemExit):
        main(argv + ["--latency-runtime", other, "--trials", "3"])
    assert f"--latency-runtime: latency_runtime was '{runtime}', now '{other}'" in capsys.readouterr().err


def test_a_bad_latency_runtime_is_one_line(labels, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(tiny(labels, tmp_path / "s", "--latency-runtime", "tflite"))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "Traceback" not in err
    assert "--latency-runtime tflite: choose onnx or torch" in err
    assert not (tmp_path / "s").exists()


def test_help_explains_both_runtimes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--latency-runtime" in text and "onnx (default): the bundle that ships" in text
    assert "torch: the PyTorch eager student" in text
