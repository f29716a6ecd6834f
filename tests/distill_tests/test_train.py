"""distill.train end to end on tiny data with a tiny random teacher, plus resume and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import die_at_step

import students
from distill.data import Split, load_splits, resolve_task
from distill.data.tokenizer import encode, train_word_level
from distill.teacher import labelling as teacher_mod
from distill.teacher.labelset import DEFAULT_LABELS, LabelSet
from distill.train import main
from distill.training.fit import FitConfig, fit, predict
from distill.training.runfolder import load_run

TINY = ["--width", "16", "--embed-dim", "16", "--epochs", "2", "--batch-size", "16", "--no-progress",
        "--latency-repeats", "1"]


def run_main(argv, capsys=None):
    return main([str(a) for a in argv])


def test_tiny_run_writes_student_tokenizer_and_report(tiny_teacher, sst_dir, tmp_path, cache):
    out = tmp_path / "run"
    report = run_main(["--student", "bilstm", "--teacher", tiny_teacher, "--task", "sst2",
                       "--data", sst_dir, "--output-dir", out, *TINY])
    for name in ("config.json", "model.safetensors", "tokenizer.json", "report.md", "report.json"):
        assert (out / name).is_file(), name
    assert list((out / "tb").iterdir()), "TensorBoard logs"
    assert not (out / "checkpoint").exists()
    saved = json.loads((out / "report.json").read_text())
    assert saved["task"] == "sst2" and saved["metric"] == "accuracy"
    for role in ("teacher", "student"):
        for key in ("params", "params_without_embeddings", "dev_metric", "latency_ms"):
            assert key in saved[role], (role, key)
        assert "cpu_b1" in saved[role]["latency_ms"] and "cpu_b32" in saved[role]["latency_ms"]
    s = saved["student"]
    assert s["speedup_cpu_b1"] > 0 and s["drop"] == pytest.approx(saved["teacher"]["dev_metric"] - s["dev_metric"])
    assert "reference" in saved  # the tiny teacher is not BERT-base
    assert "| bilstm (student) |" in (out / "report.md").read_text()
    # the saved student reloads and predicts what the report says
    model, tok, config = load_run(out)
    ls = LabelSet.load(config["label_set"]["path"])
    dev = encode(ls.splits["dev"], ls.logits["dev"], tok)
    acc = (predict(model, dev).argmax(1) == dev.labels).mean()
    assert acc == pytest.approx(s["dev_metric"]) and report["student"]["dev_metric"] == s["dev_metric"]


def test_pair_task_with_word_vocabulary_and_labels_reused_from_disk(rte_teacher, rte_dir, tmp_path, cache, monkeypatch):
    from distill.label import main as label_main

    labels = tmp_path / "rte-labels"
    label_main(["--teacher", str(rte_teacher), "--task", "rte", "--data", str(rte_dir),
                "--output-dir", str(labels), "--no-progress"])
    # training from a label set never loads the teacher
    monkeypatch.setattr(teacher_mod, "load_teacher", lambda *a, **k: pytest.fail("teacher loaded"))
    monkeypatch.setattr(LabelSet, "teacher_embeddings", lambda self: pytest.fail("not needed"))
    report = run_main(["--student", "transformer", "--labels", labels, "--tokenizer", "word",
                       "--output-dir", tmp_path / "rte-run", "--loss", "kl", "--alpha", "0.5", *TINY,
                       "--rows", "original"])
    assert report["task"] == "rte" and report["training"]["tokenizer"] == "word"
    assert report["training"]["rows_by_origin"] == {"train": 120, "augmented": 0, "transfer": 0}
    model, tok, config = load_run(tmp_path / "rte-run")
    assert config["student_config"]["pair"] and tok.kind == "word"


def test_existing_output_folder_needs_resume_or_overwrite(tiny_teacher, sst_dir, tmp_path, cache, capsys):
    out = tmp_path / "run"
    base = ["--student", "cnn", "--teacher", tiny_teacher, "--data", sst_dir, "--output-dir", out,
            *TINY, "--max-steps", "3"]
    run_main(base)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(base)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "already holds a run" in err and "--resume" in err and "\n" not in err
    with pytest.raises(SystemExit):
        run_main([*base, "--lr", "0.01", "--resume"])
    assert "holds a different run (--lr" in capsys.readouterr().err
    # a run made before a flag existed resumes when the flag is left at its default
    config = json.loads((out / "config.json").read_text())
    del config["args"]["table_bits"]
    (out / "config.json").write_text(json.dumps(config))
    run_main([*base, "--resume"])
    with pytest.raises(SystemExit):
        run_main([*base, "--resume", "--table-bits", "4"])
    assert "holds a different run (--table-bits was 8, now 4)" in capsys.readouterr().err
    report = run_main([*base, "--overwrite"])
    assert report["student"]["name"] == "cnn"


@pytest.mark.parametrize("student, flags, init", [
    ("cnn", [], "teacher-svd"),
    ("transformer", ["--encoder-init", "random"], "teacher-svd"),
    ("transformer", [], "teacher-layers"),  # with --teacher it starts from the teacher's layers
])
def test_a_frozen_table_stays_as_initialised_while_the_rest_trains(student, flags, init, tiny_teacher, sst_dir,
                                                                   tmp_path, cache, capsys):
    from safetensors.torch import load_file

    from distill.train import parse_args, student_length
    from distill.training.student import build_model, encoder_teacher, make_tokenizer

    base = ["--student", student, "--teacher", tiny_teacher, "--data", sst_dir, *TINY, "--max-steps", "6", *flags]
    frozen = [*base, "--output-dir", tmp_path / "static", "--freeze-embeddings"]
    report = run_main(frozen)
    assert report["training"]["embeddings_frozen"] is True
    assert f"embeddings {init} (frozen)" in capsys.readouterr().out
    run_main([*base, "--output-dir", tmp_path / "tuned"])
    args = parse_args([str(a) for a in frozen])
    ls = LabelSet.load(report["label_set"]["path"])
    teacher = encoder_teacher(args, ls)
    tok = make_tokenizer(args, ls, student_length(args, teacher))
    start = build_model(args, ls, tok, None, teacher)[0].state_dict()
    static, tuned = load_file(tmp_path / "static/model.safetensors"), load_file(tmp_path / "tuned/model.safetensors")
    table = "embedding.weight"
    assert torch.equal(static[table], start[table]) and not torch.equal(tuned[table], start[table])
    assert any(not torch.equal(static[k], start[k]) for k in start if k != table), "the rest trained"
    with pytest.raises(SystemExit):  # the flag is part of what makes a run the same run
        run_main([*base, "--output-dir", tmp_path / "static", "--resume"])
    assert "holds a different run (--freeze-embeddings was True, now False)" in capsys.readouterr().err


def test_a_frozen_low_rank_table_freezes_both_factors():
    from distill.train import parse_args
    from distill.training.student import build_model, make_tokenizer

    args = parse_args(["--student", "cnn", "--student-config", '{"embedding_rank": 4}', "--embedding-init", "random",
                       "--embed-dim", "8", "--width", "8", "--freeze-embeddings"])
    ls = LabelSet.load(DEFAULT_LABELS)
    model = build_model(args, ls, make_tokenizer(args, ls))[0]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"embedding.lookup.weight", "embedding.proj.weight"}


@pytest.mark.parametrize("argv, message", [
    (["--student", "gru"], "--student gru: unknown student; choose one of: bilstm, cnn, transformer"),
    (["--student", "cnn", "--alpha", "1.5"], "--alpha 1.5 is outside [0, 1]"),
    (["--student", "cnn", "--data", "x"], "--data needs --teacher"),
    (["--student", "cnn", "--task", "rte"], "does not match the label set's task 'sst2'"),
    (["--student", "cnn", "--labels", "/nonexistent"], "not a label set"),
    (["--student", "cnn", "--tokenizer", "word", "--embedding-init", "teacher-svd"], "needs the teacher's tokenizer"),
    (["--student", "cnn", "--epochs", "x"], "invalid int value"),
])
def test_bad_arguments_give_one_line_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_main([*argv, "--output-dir", tmp_path / "out"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_teacher_with_wrong_label_count_stops_the_run(tmp_path, sst_dir, cache, capsys):
    from conftest import make_teacher

    bad = make_teacher(tmp_path / "t3", labels=("a", "b", "c"))
    with pytest.raises(SystemExit):
        run_main(["--student", "cnn", "--teacher", bad, "--data", sst_dir, "--output-dir", tmp_path / "o"])
    assert "has 3 labels but task sst2 has 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _tiny_problem(sst_dir):
    task, splits = load_splits(resolve_task("sst2"), sst_dir)
    tok = train_word_level([t[0] for t in splits["train"].texts], max_length=32)
    rng = np.random.default_rng(0)
    data = {k: encode(s, rng.normal(size=(len(s), 2)).astype(np.float32), tok) for k, s in splits.items()}
    return tok, data


def _student(tok):
    torch.manual_seed(0)
    return students.build_student("bilstm", vocab_size=tok.vocab_size, num_labels=2, pad_id=tok.pad_id,
                                  width=8, embed_dim=8)


def test_killed_training_resumes_to_the_same_weights(sst_dir, tmp_path, monkeypatch):
    tok, data = _tiny_problem(sst_dir)
    cfg = FitConfig(epochs=3, batch_size=16, progress=False, checkpoint_every_s=0.0, patience=9)
    clean = _student(tok)
    fit(clean, data["train"], data["dev"], cfg, "accuracy", tmp_path / "clean")

    killed = _student(tok)
    revive = die_at_step(monkeypatch, 25)  # mid-epoch 2 (15 batches an epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data["train"], data["dev"], cfg, "accuracy", tmp_path / "killed")
    revive()
    progress = json.loads((tmp_path / "killed/checkpoint/progress.json").read_text())
    assert progress["step"] == 24 and progress["epoch"] == 1
    resumed = _student(tok)
    result = fit(resumed, data["train"], data["dev"], cfg, "accuracy", tmp_path / "killed")
    assert result.steps == 45
    for (k, a), b in zip(clean.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_same_seed_same_result_and_early_stopping(sst_dir):
    tok, data = _tiny_problem(sst_dir)
    cfg = FitConfig(epochs=2, batch_size=16, progress=False)
    a, b = _student(tok), _student(tok)
    ra = fit(a, data["train"], data["dev"], cfg, "accuracy")
    rb = fit(b, data["train"], data["dev"], cfg, "accuracy")
    assert ra.history == rb.history
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    stopped = fit(_student(tok), data["train"], data["dev"],
                  FitConfig(epochs=50, batch_size=16, lr=1e-9, patience=1, progress=False), "accuracy")
    assert len(stopped.history) == 2  # no improvement after epoch 1 -> stop after epoch 2


def test_shipped_label_set_is_real_sst2_from_the_minilm_teacher():
    ls = LabelSet.load(DEFAULT_LABELS)
    m = ls.manifest
    assert m["teacher"]["name"] == "minilm-sst2" and m["teacher"]["config"]["num_hidden_layers"] == 6
    rows = m["data"]["rows"]
    assert (rows["train"], rows["dev"], rows["transfer"]) == (67349, 872, 0)
    assert m["augment"]["copies"] == 2 and 100_000 < rows["augmented"] <= 2 * 67349
    assert ls.num_rows("train") == rows["train"] + rows["augmented"]
    assert (ls.labels["train"][ls.origin["train"] == 1] == -1).all()
    assert m["teacher"]["dev_metric"] == pytest.approx(0.8922, abs=1e-4)
    agree = (ls.logits["dev"].argmax(1) == ls.splits["dev"].labels).mean()
    assert agree == pytest.approx(m["teacher"]["dev_metric"])
    table, present = ls.teacher_embeddings()
    assert table.shape == (30522, 384) and present.sum() > 5000
    contextual, same_rows, layer = ls.teacher_contextual()  # the BiLSTM's default start (--embedding-init auto)
    assert contextual.shape == table.shape and torch.equal(same_rows, present) and layer == 3
    assert not torch.allclose(contextual[present], table[present])
    assert sum(f.stat().st_size for f in Path(DEFAULT_LABELS).iterdir()) < 15e6  # issue 14: package data < 15 MB


@pytest.mark.shared
def test_real_teacher_labels_real_sst2(shared, tmp_path):
    task, splits = load_splits(resolve_task("sst2"), shared / "data/glue/sst2")
    small = {"train": Split(splits["train"].texts[:64], splits["train"].labels[:64]),
             "dev": Split(splits["dev"].texts[:200], splits["dev"].labels[:200])}
    ls = teacher_mod.label(str(shared / "teachers/minilm-sst2"), task, small, tmp_path / "ls",
                           progress=False)
    assert ls.teacher["dev_metric"] > 0.85  # 0.892 on the full dev set
    shipped = LabelSet.load(DEFAULT_LABELS)
    assert np.allclose(ls.logits["dev"], shipped.logits["dev"][:200], atol=1e-3)


def test_encoded_select_keeps_rows(sst_dir):
    tok, data = _tiny_problem(sst_dir)
    sub = data["train"].select(np.array([5, 0, 7]))
    assert [sub.ids(i) for i in range(3)] == [data["train"].ids(i) for i in (5, 0, 7)]
    assert (sub.labels == data["train"].labels[[5, 0, 7]]).all()


def test_eval_every_sets_the_evaluation_schedule(sst_dir):
    tok, data = _tiny_problem(sst_dir)  # 240 rows: 15 batches of 16 an epoch
    result = fit(_student(tok), data["train"], data["dev"],
                 FitConfig(epochs=2, batch_size=16, eval_every=6, patience=99, progress=False), "accuracy")
    assert [h["step"] for h in result.history] == [6, 12, 15, 21, 27, 30]
    assert result.best_epoch in [h["epoch"] for h in result.history]


def test_the_transfer_schedule_is_chosen_per_student_and_flags_override_it():
    from distill.train import TRANSFER_SCHEDULE, parse_args

    assert set(TRANSFER_SCHEDULE) == set(students.STUDENTS)
    for name, (steps, patience) in TRANSFER_SCHEDULE.items():
        cfg = parse_args(["--student", name]).fit_config("cpu", transfer=True)
        assert (cfg.max_steps, cfg.patience, cfg.eval_every) == (steps, patience, 500)
        original = parse_args(["--student", name]).fit_config("cpu")  # the original rows alone: 3 epochs
        assert (original.epochs, original.max_steps, original.patience, original.eval_every) == (3, None, 2, None)
    assert TRANSFER_SCHEDULE["cnn"][0] > TRANSFER_SCHEDULE["bilstm"][0]  # the CNN's longer budget (README)
    mine = parse_args(["--student", "cnn", "--max-steps", "700", "--patience", "3"]).fit_config("cpu", transfer=True)
    assert (mine.max_steps, mine.patience) == (700, 3)


def test_a_gold_only_baseline_needs_no_teacher(tmp_path, cache, capsys):
    """--data and --alpha 1 without --teacher: the gold labels alone, a word tokenizer, random embeddings,
    and a report that has no teacher row and says so."""
    from conftest import write_tsv

    rows = [[f"{'good fun' if i % 2 else 'dull flat'} movie {i}", "pos" if i % 2 else "neg"] for i in range(40)]
    data = tmp_path / "my-reviews"
    write_tsv(data / "train.tsv", ["review", "stars"], rows[:30])
    write_tsv(data / "dev.tsv", ["review", "stars"], rows[30:])
    out = tmp_path / "gold"
    report = run_main(["--data", data, "--text-column", "review", "--label-column", "stars", "--alpha", "1",
                       "--output-dir", out, "--max-steps", "2", "--width", "4", "--embed-dim", "8",
                       "--latency-repeats", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert "no teacher: the student reads words (--tokenizer word)" in printed
    assert report["task"] == "my-reviews" and report["gold_only"] and "teacher" not in report
    assert report["student"]["agreement_with_teacher"] is None and report["student"]["drop"] is None
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer"]["kind"] == "word" and config["embedding_init"] == "random"
    md = (out / "report.md").read_text()
    assert "(teacher) |" not in md and "No teacher: this student was trained on the gold labels alone" in md
    assert "x faster than BERT-base" in md and "x faster than the teacher" not in md
    with pytest.raises(SystemExit):  # without --alpha 1 a teacher is still needed
        run_main(["--data", data, "--text-column", "review", "--label-column", "stars", "--output-dir",
                  tmp_path / "x"])
    assert "--data needs --teacher" in capsys.readouterr().err


def test_report_shows_each_metric_in_its_convention_and_both_speedups():
    from distill.training.report import render_markdown

    lat = {"cpu_b1": 10.0}
    row = {"params": 1000, "params_without_embeddings": 500}
    for metric, teacher_m, student_m, shown, delta in (("accuracy", 0.9, 0.88, "88.00%", "-2.00 pts"),
                                                        ("mcc", 0.2, 0.105, "0.105", "-0.095")):
        report = {"task": "t", "metric": metric, "threads": 1, "lengths": {"teacher": 9, "student": 8},
                  "teacher": {**row, "name": "tiny", "dev_metric": teacher_m, "latency_ms": lat},
                  "reference": {**row, "name": "BERT-base", "dev_metric": None, "latency_ms": {"cpu_b1": 40.0}},
                  "student": {**row, "name": "cnn", "dev_metric": student_m, "latency_ms": {"cpu_b1": 2.0}}}
        md = render_markdown(report)
        student = next(line for line in md.splitlines() if "(student)" in line)
        assert f"| {shown} | {delta} |" in student and "| 5.0x | 20.0x |" in student, student
        assert "x faster than the teacher, cpu b1" in md and "x faster than BERT-base, cpu b1" in md
        assert "Δ vs teacher" in md and "drop (points)" not in md


def test_original_repeats_show_the_original_rows_that_many_times_per_pass():
    from types import SimpleNamespace

    from distill.data.batching import Encoded
    from distill.train import parse_args, training_rows

    origin = np.array([0, 1, 1, 0, 2, 1])  # two original rows among augmented and transfer ones
    tokens = np.arange(6, dtype=np.int64)
    rows = Encoded(tokens, np.arange(7, dtype=np.int64), np.arange(6), np.zeros((6, 2), np.float32), False, 0)
    ls = SimpleNamespace(origin={"train": origin}, encode=lambda split, tok: rows)
    train, counts = training_rows(parse_args(["--original-repeats", "3"]), ls, None)
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 2, 3, 3, 3, 4, 5] and counts.tolist() == [2, 3, 1]
    assert len(training_rows(parse_args([]), ls, None)[0]) == 6
    assert training_rows(parse_args(["--original-repeats", "3", "--rows", "original"]), ls, None)[0].labels.tolist() \
        == [0, 3]
    only_original = SimpleNamespace(origin={"train": np.zeros(6, int)}, encode=lambda split, tok: rows)
    assert len(training_rows(parse_args(["--original-repeats", "3"]), only_original, None)[0]) == 6  # nothing to offset


def test_original_repeats_below_one_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as e:
        run_main(["--original-repeats", "0"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "--original-repeats 0 must be 1 or more" in err and "\n" not in err
