"""python -m search.run end to end on tiny data: outputs, Pareto front, seeds, reruns, bad input."""

import csv
import json

import pytest
from search_helpers import make_labels, tiny, trials_of

from search.run import main


@pytest.fixture(scope="module")
def labels(tmp_path_factory, tiny_teacher, sst_dir):
    return make_labels(tmp_path_factory, tiny_teacher, sst_dir)


def test_metric_search_writes_leaderboard_plot_and_retrained_student(labels, tmp_path, capsys):
    out = tmp_path / "s"
    argv = tiny(labels, out, "--student", "cnn,bilstm", "--max-params", 12000, "--trials", 6,
                "--retrain", 1, "--retrain-epochs", 1)
    summary = main(argv)
    text = capsys.readouterr().out
    assert summary["trials"] == 6 and summary["trained"] + summary["pruned"] + summary["rejected"] == 6
    for name in ("leaderboard.md", "leaderboard.csv", "plot.png", "summary.json", "study.db", "search.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "leaderboard.csv")))
    assert len(rows) == 6 and {r["status"] for r in rows} <= {"trained", "pruned", "rejected"}
    for r in rows:
        if r["status"] == "rejected":
            assert int(r["params"]) > 12000 and not r["tb"] and not r["dev_metric"]
        else:
            assert int(r["params"]) <= 12000 and (out / "trials" / f"{int(r['trial']):04d}" / "tb").is_dir()
            assert not (out / "trials" / f"{int(r['trial']):04d}" / "checkpoint").exists()
    md = (out / "leaderboard.md").read_text()
    assert "rejected by the budget before training" in md and "[tb](trials/" in md
    best = summary["best"][0]
    assert best["params"] <= 12000 and f"best feasible: trial {best['trial']}" in text
    # the best student, retrained on every row, saved like a distill.train run with its report
    run_dir = out / "best" / f"trial-{best['trial']:04d}"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "report.md", "report.json"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["student"] == best["student"]
    retrained = summary["retrained"][0]
    assert retrained["params"] == best["params"] and "(teacher) |" in (run_dir / "report.md").read_text()
    # the same command again: nothing new to run, nothing retrained twice, every trial kept
    again = main(argv)
    text = capsys.readouterr().out
    assert again["trials"] == 6 and "6 of 6 trials done" in text and "already retrained" in text


def test_the_printed_command_retrains_a_trial_to_the_same_weights(labels, tmp_path, capsys):
    import shlex

    import torch
    from safetensors.torch import load_file

    from distill.train import main as train_main

    out = tmp_path / "s"
    summary = main(tiny(labels, out, "--student", "cnn", "--trials", 2, "--retrain", 1, "--retrain-epochs", 1))
    best = summary["best"][0]
    command = best["command"]
    assert command.startswith("python -m distill.train --student cnn ") and "--student-config" in command
    assert f"`{command}`" in (out / "leaderboard.md").read_text()
    assert f"retrain it yourself with: {command}" in capsys.readouterr().out
    argv = shlex.split(command)[3:]
    argv[argv.index("--output-dir") + 1] = str(tmp_path / "by-hand")
    train_main(argv)
    retrained = load_file(str(out / "best" / f"trial-{best['trial']:04d}" / "model.safetensors"))
    by_hand = load_file(str(tmp_path / "by-hand" / "model.safetensors"))
    assert retrained.keys() == by_hand.keys()
    assert all(torch.equal(retrained[k], by_hand[k]) for k in retrained)


def test_pareto_search_reports_the_front(labels, tmp_path):
    out = tmp_path / "p"
    summary = main(tiny(labels, out, "--student", "cnn,transformer", "--objective", "pareto",
                        "--max-latency-ms", 1000, "--trials", 5))
    front = summary["pareto_front"]
    assert front and summary["rejected"] == 0 and summary["pruned"] == 0  # no pruner for pareto
    rows = {int(r["trial"]): r for r in csv.DictReader(open(out / "leaderboard.csv"))}
    assert {n for n, r in rows.items() if r["pareto"] == "1"} == set(front)
    # no front member is dominated by another trained trial
    pts = {n: (float(r["dev_metric"]), float(r["latency_ms"])) for n, r in rows.items() if r["status"] == "trained"}
    for n in front:
        m, lat = pts[n]
        assert not any(m2 >= m and l2 <= lat and (m2, l2) != (m, lat) for m2, l2 in pts.values())
    assert "| Pareto |" in (out / "leaderboard.md").read_text()


def test_the_same_seed_gives_the_same_trials(labels, tmp_path):
    def params(out, seed):
        main(tiny(labels, out, "--student", "cnn,bilstm", "--trials", 4, "--seed", seed,
                  "--max-params", 9000))
        return [t.params for t in trials_of(f"sqlite:///{out}/study.db", "sst2-cnn+bilstm-metric")]

    first = params(tmp_path / "a", 5)
    assert params(tmp_path / "b", 5) == first
    assert params(tmp_path / "c", 6) != first


@pytest.mark.parametrize("extra, message", [
    (["--student", "cnn,gru"], "--student cnn,gru: unknown student gru; choose from: bilstm, cnn, transformer"),
    (["--objective", "pareto", "--pruner", "median"], "--pruner median works with --objective metric only"),
    (["--storage", "postgresql://nobody@127.0.0.1:9/nothing"],
     "--storage postgresql://nobody@127.0.0.1:9/nothing: cannot open it"),
    (["--storage", "not-a-url"], "--storage not-a-url: not a storage URL"),
    (["--storage", "journal:/nonexistent/dir/j.log"], "the folder /nonexistent/dir does not exist"),
    (["--trials", "0"], "--trials 0 must be >= 1"),
    (["--labels", "/nonexistent"], "not a label set"),
    (["--max-size-mb", "x"], "invalid float value"),
])
def test_bad_input_is_a_one_line_error_before_any_trial(labels, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    argv = tiny(labels, out, "--trials", 2)
    if "--labels" in extra:
        argv[argv.index("--labels") + 1] = extra[1]
        extra = []
    with pytest.raises(SystemExit) as e:
        main(argv + extra)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err, err
    assert "\n" not in err and "Traceback" not in err
    assert not (out / "trials").exists()


def test_a_study_of_another_search_is_refused(labels, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    main(tiny(labels, tmp_path / "a", "--student", "cnn", "--trials", 1, "--storage", storage,
              "--study-name", "sst2"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(tiny(labels, tmp_path / "b", "--student", "bilstm", "--trials", 1, "--storage", storage,
                  "--study-name", "sst2"))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err
    assert "--study-name sst2 in" in err and "belongs to a different search (--student: students was ['cnn']" in err
    assert not (tmp_path / "b" / "trials").exists()


def test_a_recipe_search_trains_the_default_architecture_and_prints_its_recipe(labels, tmp_path, capsys):
    import shlex

    from distill.train import parse_args as train_args

    out = tmp_path / "r"
    summary = main(tiny(labels, out, "--student", "cnn", "--space", "recipe", "--trials", 3, "--sampler", "random"))
    rows = list(csv.DictReader(open(out / "leaderboard.csv")))
    assert len(rows) == 3 and all("default-arch" in r["config"] for r in rows)
    # the first trial is today's default recipe, so the leaderboard shows where it stands
    first = min(rows, key=lambda r: int(r["trial"]))
    assert first["config"].endswith("(the default)")
    assert "lr=1.0e-03 drop=0.20 alpha=0.00 mse batch=50" in first["config"]
    assert sum("(the default)" in r["config"] for r in rows) == 1
    assert len({r["params"] for r in rows}) == 1  # every trial is the default CNN, whatever its recipe
    best = summary["best"][0]
    # the printed command runs the recipe: its flags parse to the trial's knobs, no architecture flag
    args = train_args(shlex.split(best["command"])[3:])
    assert args.width is None and args.embed_dim is None and args.student_config is None
    assert f"lr={args.lr:.1e}" in best["config"] and f"batch={args.batch_size}" in best["config"]
    assert json.loads((out / "search.json").read_text())["identity"]["space_kind"] == "recipe"
    capsys.readouterr()
    # the same study name for an architecture search is another search: refused in one line
    with pytest.raises(SystemExit) as e:
        main(tiny(labels, out, "--student", "cnn", "--trials", 3, "--study-name", summary["study_name"]))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "(--space: space_kind was 'recipe', now 'arch')" in err and "\n" not in err


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--student", "--max-size-mb", "--max-latency-ms", "--objective", "--storage", "--workers",
                 "--study-name", "--train-rows", "--retrain", "--pruner", "--precision", "--latency-threads"):
        assert flag in text, flag


def test_failing_trials_stop_the_search_with_one_line(labels, tmp_path, monkeypatch, capsys):
    import search.objective as objective_mod

    def broken(*a, **k):
        raise RuntimeError("out of memory\nmore detail")

    monkeypatch.setattr(objective_mod, "fit", broken)
    with pytest.raises(SystemExit) as e:
        main(tiny(labels, tmp_path / "f", "--student", "cnn", "--trials", 5))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "Traceback" not in err
    assert "three trials in a row failed" in err and "out of memory" in err


@pytest.mark.parametrize("extra", [["--pruner", "hyperband"], ["--sampler", "random", "--pruner", "none"]])
def test_other_pruners_and_samplers_run(labels, tmp_path, extra):
    summary = main(tiny(labels, tmp_path / "h", "--student", "cnn,bilstm", "--trials", 3, "--epochs", 3, *extra))
    assert summary["trials"] == 3 and summary["failed"] == 0


def test_prune_vocab_prunes_the_trials_and_the_retrain_so_the_size_budget_sees_it(labels, tmp_path):
    plain = main(tiny(labels, tmp_path / "plain", "--student", "cnn", "--trials", 1, "--epochs", 1))
    pruned = main(tiny(labels, tmp_path / "pruned", "--student", "cnn", "--trials", 1, "--epochs", 1,
                       "--prune-vocab", "--retrain", 1, "--retrain-epochs", 1))
    a, b = plain["best"][0], pruned["best"][0]
    assert a["config"] == b["config"] and b["params"] < a["params"]  # same trial, a smaller table
    config = json.loads((tmp_path / "pruned" / "best" / f"trial-{b['trial']:04d}" / "config.json").read_text())
    assert config["vocabulary"]["pruned"] is True and pruned["retrained"][0]["params"] == b["params"]
    assert "--prune-vocab" in b["command"] and "--prune-vocab" not in a["command"]


def test_a_4_bit_table_budget_trains_every_trial_and_the_retrain_for_that_table(labels, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from distill.training import table4

    attached = []
    real = table4.attach
    monkeypatch.setattr(table4, "attach", lambda model: attached.append(real(model)) or attached[-1])
    summary = main(tiny(labels, tmp_path / "t4", "--student", "bilstm", "--trials", 1, "--epochs", 1,
                        "--precision", "int8-table4", "--retrain", 1, "--retrain-epochs", 1))
    best = summary["best"][0]
    assert "--table-bits 4" in best["command"]
    assert len(attached) == 2  # the trial, then the retrain (distill.train --table-bits 4)
    weights = load_file(str(tmp_path / "t4" / "best" / f"trial-{best['trial']:04d}" / "model.safetensors"))
    table = weights["embedding.weight"]
    assert torch.equal(table4.on_grid(table), table)  # saved on the 4-bit export's grid
