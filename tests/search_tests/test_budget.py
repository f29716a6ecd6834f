"""Budgets: an over-budget trial is measured and recorded as infeasible, never trained; sizes and
latencies order as the models do; a budget nothing fits is an error before any trial."""

import importlib.util

import optuna
import pytest
import torch
from search_helpers import make_labels, tiny

import search.objective as objective_mod
import students
from distill.train import TrainArgs
from search.budget import Budget, Cost, Timing, measure
from search.objective import Objective, TrialSettings
from search.run import main
from search.space import SpaceLimits

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def labels(tmp_path_factory, tiny_teacher, sst_dir):
    return make_labels(tmp_path_factory, tiny_teacher, sst_dir)


def test_violations_are_relative_excess_per_budget():
    b = Budget(max_params=1000, max_size_mb=0.004, max_latency_ms=2.0, precision="fp32")
    cost = Cost(params=1500, params_without_embeddings=500, size_mb=0.006, latency_ms=1.0)
    v = b.violations(cost)
    assert v["params"] == pytest.approx(0.5) and v["size_mb"] == pytest.approx(0.5)
    assert v["latency_ms"] == pytest.approx(-0.5)
    assert not b.fits(cost) and "params 1,500 > 1,000" in b.over(cost) and "latency" not in b.over(cost)
    assert Budget().violations(cost) == {} and not Budget().active


def _objective(labels, tmp_path, budget, objective="metric"):
    base = TrainArgs(student="bilstm", labels=str(labels), epochs=1, batch_size=32, no_progress=True)
    s = TrialSettings(base=base, students=("bilstm",), budget=budget, objective=objective,
                      limits=SpaceLimits(max_width=32, max_embed_dim=16), output_dir=str(tmp_path))
    return Objective(s, device="cpu")


BIG = {"bilstm.width": 32, "bilstm.depth": 2, "bilstm.embed_dim": 16, "bilstm.mlp_hidden": 512,
       "bilstm.dropout": 0.1, "bilstm.lr": 1e-3, "bilstm.alpha": 0.0}
SMALL = BIG | {"bilstm.width": 16, "bilstm.depth": 1, "bilstm.mlp_hidden": 32}


@pytest.mark.parametrize("objective, directions", [("metric", ["maximize"]),
                                                    ("pareto", ["maximize", "minimize"])])
def test_over_budget_trial_is_infeasible_and_never_trains(labels, tmp_path, monkeypatch, objective, directions):
    budget = Budget(max_params=8_000, timing=Timing(length=8, repeats=2, runtime="torch"))
    obj = _objective(labels, tmp_path, budget, objective)
    calls = []
    real_fit = objective_mod.fit
    monkeypatch.setattr(objective_mod, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    study = optuna.create_study(directions=directions)
    study.enqueue_trial(BIG)
    study.enqueue_trial(SMALL)
    study.optimize(obj, n_trials=2)
    big, small = study.trials
    assert big.state == small.state == optuna.trial.TrialState.COMPLETE
    assert big.user_attrs["cost"]["params"] > 8_000 and big.constraints["params"] > 0
    assert "rejected" in big.user_attrs and not (tmp_path / "trials" / "0000").exists()
    assert small.constraints["params"] <= 0 and "rejected" not in small.user_attrs
    assert (tmp_path / "trials" / "0001" / "tb").is_dir()
    assert len(calls) == 1  # only the feasible trial trained
    best = study.best_trials if objective == "pareto" else [study.best_trial]
    assert [t.number for t in best] == [1]  # the infeasible trial is never "best"
    if objective == "pareto":
        assert big.values[1] == pytest.approx(big.user_attrs["cost"]["latency_ms"])


def test_size_and_latency_follow_the_model_size():
    timing = Timing(batch=1, length=32, threads=1, repeats=5, runtime="torch")

    def cost(width, depth, embed, precision="fp32"):
        torch.manual_seed(0)
        m = students.build_student("bilstm", vocab_size=1000, num_labels=2, width=width, depth=depth,
                                   embed_dim=embed)
        return measure(m, 1000, False, timing, precision)

    small, big = cost(16, 1, 16), cost(384, 2, 256)
    assert small.params < big.params and small.size_mb < big.size_mb
    # ~100x the multiply-adds: a wide margin, no absolute timing
    assert big.latency_ms > 3 * small.latency_ms
    assert cost(16, 1, 16, "int8").size_mb < small.size_mb / 3  # nearly all weights int8 (biases stay fp32)
    assert small.size_mb == pytest.approx(small.params * 4 / 1e6)


def test_a_budget_nothing_fits_is_an_error_before_any_trial(labels, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(tiny(labels, out, "--student", "cnn,bilstm", "--max-params", 100))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "Traceback" not in err
    assert "--max-params 100: no configuration in the search space fits" in err
    assert "raise --max-params to at least" in err and "--tokenizer word" in err
    assert not out.exists()  # no study, no trial
    with pytest.raises(SystemExit):
        main(tiny(labels, out, "--student", "cnn", "--max-latency-ms", 1e-6))
    assert "--max-latency-ms 1e-06: no configuration" in capsys.readouterr().err
    assert not out.exists()


def test_timing_threads_are_restored():
    before = torch.get_num_threads()
    m = students.build_student("cnn", vocab_size=100, num_labels=2, width=8, embed_dim=8)
    measure(m, 100, False, Timing(threads=2, repeats=1, length=4, runtime="torch"))
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
                    reason="needs the onnx extra")
@pytest.mark.parametrize("precision, embed_dim", [("int8", 64), ("int8-table4", 100)])
def test_the_int8_size_budget_predicts_the_exported_model_within_2_percent(tmp_path, precision, embed_dim):
    """The CNN's int8 export is static: its convolutions go int8 with a scale per output channel, its biases stay
    fp32, its table gets a scale per row, and the budget counts them so; a 4-bit table's rows of 100 take two
    blocks of scales."""
    import numpy as np

    from distill.bundle.onnx import export_onnx, quantize_onnx

    torch.manual_seed(0)
    m = students.build_student("cnn", vocab_size=30_000, num_labels=2, width=64, depth=2,
                               embed_dim=embed_dim).eval()
    export_onnx(m, tmp_path / "fp32.onnx", pair=False, max_length=16)
    rng = np.random.default_rng(0)
    feeds = [(rng.integers(1, 30_000, (1, n)), np.ones((1, n), np.int64)) for n in (3, 8, 16)]
    quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", "cnn", table_bits=4 if "table4" in precision else 8,
                  calibration=feeds)
    cost = measure(m, 30_000, False, Timing(batch=1, length=8, threads=1, repeats=1, runtime="torch"), precision)
    assert cost.size_mb * 1e6 == pytest.approx((tmp_path / "int8.onnx").stat().st_size, rel=0.02)
    if precision == "int8":  # about a byte a weight (the convolutions are int8 too) and 4 more a table row
        assert cost.size_mb < (m.num_parameters() + 4 * 30_000) * 1.01 / 1e6
    else:  # the table at 4 bits: (50 + 2 x 4) bytes a row against 100 at int8
        assert cost.size_mb < measure(m, 30_000, False, Timing(repeats=1, length=8, runtime="torch"), "int8").size_mb
