"""distill.finetune on tiny data with a tiny random encoder: multi-class custom data, pairs, the saved
folder as a teacher for distill.label, resume after a kill, and one-line errors for bad input."""

import importlib.util
import json
import random
from pathlib import Path

import pytest
import torch
from conftest import FILLER, NEGATIVE, POSITIVE, die_at_step, write_tsv
from safetensors.torch import load_file

from distill.finetune import main
from distill.label import main as label_main

QUEUES = {"billing": ["refund", "invoice", "charge"], "sales": ["price", "quote", "demo"],
          "tech": ["crash", "error", "login"]}
FAST = ["--lr", "1e-2", "--batch-size", "16", "--no-progress", "--threads", "1"]


def make_encoder(path: Path, max_positions: int = 64) -> Path:
    """A tiny random BERT encoder (no classification head) and its WordPiece tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    words = [w for ws in QUEUES.values() for w in ws] + ["he", "said", "loudly", '"']
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER + words
    vocab = list(dict.fromkeys(vocab + list("abcdefghijklmnopqrstuvwxyz")))
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions)
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return make_encoder(tmp_path_factory.mktemp("encoder"))


def write_tickets(d: Path, queues=QUEUES, dev_queues=None, n_train: int = 180, n_dev: int = 30) -> Path:
    """Support tickets: train.jsonl and dev.csv with columns id, body, queue (label names, not indices)."""
    import csv

    rng = random.Random(3)

    def rows(n, names):
        out = []
        for i in range(n):
            q = names[i % len(names)]
            words = [rng.choice(FILLER) for _ in range(rng.randint(2, 6))] + [rng.choice(QUEUES[q])]
            rng.shuffle(words)
            out.append({"id": i, "body": " ".join(words), "queue": q})
        return out

    d.mkdir(parents=True, exist_ok=True)
    with open(d / "train.jsonl", "w") as f:
        for r in rows(n_train, list(queues)):
            f.write(json.dumps(r) + "\n")
    with open(d / "dev.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["id", "body", "queue"])
        w.writeheader()
        w.writerows(rows(n_dev, list(dev_queues or queues)))
    return d


def run_main(argv):
    return main([str(a) for a in argv])


def test_multiclass_custom_data_trains_and_the_folder_labels_as_a_teacher(encoder, tmp_path, capsys, monkeypatch):
    data = write_tickets(tmp_path / "tickets")
    out = tmp_path / "teachers" / "tickets"
    record = run_main(["--model", encoder, "--data", data, "--text-column", "body", "--label-column", "queue",
                       "--output-dir", out, "--epochs", "8", *FAST])
    for name in ("config.json", "model.safetensors", "tokenizer.json", "finetune.json", "README.md"):
        assert (out / name).is_file(), name
    assert list((out / "tb").iterdir()), "TensorBoard logs"
    assert not (out / "checkpoint").exists() and not list(out.parent.glob(".tickets*"))
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "billing", "1": "sales", "2": "tech"}
    assert config["label2id"] == {"billing": 0, "sales": 1, "tech": 2}
    saved = json.loads((out / "finetune.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["status"] == "finished" and saved["task"]["name"] == "tickets"
    assert saved["new_weights"] == ["classifier.bias", "classifier.weight"]
    assert saved["data"]["rows"] == {"train": 180, "train_used": 180, "train_unlabelled": 0, "dev": 30}
    steps_per_epoch = 12  # 180 rows / 16
    assert saved["settings"]["total_steps"] == 8 * steps_per_epoch
    assert len(saved["history"]) == 8 * 4  # --evals-per-epoch 4
    best = max(saved["history"], key=lambda h: h["dev_metric"])
    assert saved["dev_metric"] == best["dev_metric"] and saved["best"]["step"] == best["step"]
    assert saved["dev_metric"] > 0.8  # the queue is one keyword away; chance is 1/3
    assert saved["max_length_from"].startswith("the longest example")
    assert saved["truncated"] == {"train": 0.0, "dev": 0.0}
    assert "--task tickets" in (out / "README.md").read_text()

    # the folder is a teacher: distill.label takes it and scores dev exactly as the best evaluation did
    labels = tmp_path / "labels"
    ls = label_main(["--teacher", str(out), "--task", "tickets", "--data", str(data), "--text-column", "body",
                     "--label-column", "queue", "--output-dir", str(labels), "--max-length",
                     str(saved["max_length"]), "--no-progress"])
    assert ls.task.label_names == ("billing", "sales", "tech")
    assert ls.teacher["dev_metric"] == pytest.approx(saved["dev_metric"])

    # the third command, as written: no --task; custom data takes its folder's name
    from distill.train import main as train_main

    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    report = train_main(["--student", "cnn", "--teacher", str(out), "--data", str(data), "--text-column", "body",
                         "--label-column", "queue", "--max-steps", "3", "--width", "4", "--embed-dim", "8",
                         "--no-progress", "--latency-repeats", "1"])
    assert report["task"] == "tickets" and (tmp_path / "runs" / "tickets-cnn" / "model.safetensors").is_file()


def test_sentence_pairs_of_a_glue_task_from_local_files(encoder, rte_dir, tmp_path):
    out = tmp_path / "rte"
    record = run_main(["--model", encoder, "--task", "rte", "--data", rte_dir, "--output-dir", out,
                       "--max-steps", "6", "--evals-per-epoch", "1", *FAST])
    assert record["task"]["text_columns"] == ["sentence1", "sentence2"]
    assert record["settings"]["total_steps"] == 6 and [h["step"] for h in record["history"]] == [6]
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}


def test_killed_run_resumes_to_the_same_weights(encoder, sst_dir, tmp_path, monkeypatch, capsys):
    base = ["--model", encoder, "--data", sst_dir, "--epochs", "2", "--checkpoint-every-s", "0", *FAST]
    clean = run_main([*base, "--output-dir", tmp_path / "clean"])

    killed = tmp_path / "killed"
    revive = die_at_step(monkeypatch, 20)  # mid-epoch 2 (15 batches an epoch)
    with pytest.raises(SystemExit) as e:
        run_main([*base, "--output-dir", killed])
    assert e.value.code == 130 and "--resume" in capsys.readouterr().err
    revive()
    progress = json.loads((killed / "checkpoint" / "progress.json").read_text())
    assert progress["step"] == 19 and progress["epoch"] == 1
    assert not (killed / "config.json").exists()  # not a teacher folder until it is finished

    with pytest.raises(SystemExit):  # without --resume: refused, one line
        run_main([*base, "--output-dir", killed])
    err = capsys.readouterr().err.strip()
    assert "already holds an unfinished fine-tuning run; pass --resume" in err and "\n" not in err
    with pytest.raises(SystemExit):  # --resume with other settings: refused, naming the flag
        run_main([*base, "--output-dir", killed, "--resume", "--lr", "0.02"])
    assert "holds a different run (--lr was 0.01, now 0.02)" in capsys.readouterr().err

    resumed = run_main([*base, "--output-dir", killed, "--resume"])
    assert resumed["resumed"] and not (killed / "checkpoint").exists()
    assert [h["dev_metric"] for h in resumed["history"]] == [h["dev_metric"] for h in clean["history"]]
    a, b = load_file(str(tmp_path / "clean" / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    again = run_main([*base, "--output-dir", killed, "--resume"])  # finished: nothing to do
    assert again["dev_metric"] == resumed["dev_metric"] and "nothing to do" in capsys.readouterr().out


def _gpt2_folder(path: Path) -> Path:
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50, bos_token_id=0, eos_token_id=0).save_pretrained(path)
    return path


def _no_config_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return path


def _sst_one_class(path: Path) -> Path:
    for split in ("train", "dev"):
        write_tsv(path / f"{split}.tsv", ["sentence", "label"], [["a good movie", 1], ["very good", 1]])
    return path


def _mnli_dev_label_unseen(path: Path) -> Path:
    header = ["premise", "hypothesis", "label"]
    write_tsv(path / "train.tsv", header, [["a", "b", "entailment"], ["c", "d", "contradiction"]] * 4)
    write_tsv(path / "dev.tsv", header, [["a", "b", "entailment"], ["e", "f", "neutral"]])
    return path


@pytest.mark.parametrize("case, message", [
    ("one-class custom", "train.jsonl: column 'queue' holds 1 distinct label(s); a classifier needs at least two"),
    ("one-class glue", "train.tsv: every labelled row has label 'positive'; a classifier needs at least two classes"),
    ("dev label unseen custom", "dev.csv: row 4 has label 'tech', which no row of"),
    ("dev label unseen glue", "dev.tsv: row 3 has label 'neutral', which no row of"),
    ("gpt2", "is a gpt2 model, a decoder-only language model, not an encoder"),
    ("no config", "the folder has no config.json, so it is not a saved model"),
    ("too long", "--max-length 100 is above what"),
])
def test_bad_input_gives_one_line_errors(case, message, encoder, tmp_path, capsys):
    model, data = encoder, tmp_path / "data"
    extra = ["--text-column", "body", "--label-column", "queue"]
    if case == "one-class custom":
        write_tickets(data, queues={"billing": 0})
    elif case == "dev label unseen custom":
        write_tickets(data, queues={"billing": 0, "sales": 0}, dev_queues=QUEUES)
    elif case == "one-class glue":
        extra = ["--task", "sst2", "--data", _sst_one_class(data)]
    elif case == "dev label unseen glue":
        extra = ["--task", "mnli", "--data", _mnli_dev_label_unseen(data)]
    else:
        write_tickets(data)
        if case == "gpt2":
            model = _gpt2_folder(tmp_path / "gpt2")
        elif case == "no config":
            model = _no_config_folder(tmp_path / "empty")
        elif case == "too long":
            extra += ["--max-length", "100"]
    if "--data" not in extra:
        extra += ["--data", data]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        run_main(["--model", model, *extra, "--output-dir", out, *FAST])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err, err
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written
    if case == "too long":
        assert "(64 tokens: max_position_embeddings 64); use --max-length 64 or less" in err


def _printed(out: str, after: str) -> list[str]:
    """The command printed on the line after `after`, split as a shell would."""
    import shlex

    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if after in line)
    return shlex.split(lines[i + 1])


def test_printed_commands_run_as_printed(encoder, tmp_path, capsys, monkeypatch):
    """finetune -> the printed distill.train -> compress -> the printed export -> the printed predict, on custom
    data in a folder whose name has a '-' (the task keeps it)."""
    from distill import compress
    from distill.bundle import build as export
    from distill.predict import main as predict_main
    from distill.train import main as train_main

    data = write_tickets(tmp_path / "my-tickets", n_train=24, n_dev=12)
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run_main(["--model", encoder, "--data", data, "--text-column", "body", "--label-column", "queue",
              "--max-steps", "2", *FAST])
    out = capsys.readouterr().out
    assert "task my-tickets (from the --data folder's name; --task to change it)" in out
    argv = _printed(out, "distil it with:")
    assert argv[:3] == ["python", "-m", "distill.train"] and argv[argv.index("--task") + 1] == "my-tickets"
    teacher = Path(argv[argv.index("--teacher") + 1])
    readme = (teacher / "README.md").read_text()
    assert " ".join(argv[3:6]) in readme and "--text-column body" in readme and "--label-column queue" in readme
    report = train_main(argv[3:] + ["--max-steps", "2", "--width", "4", "--embed-dim", "8", "--latency-repeats", "1",
                                    "--no-progress"])
    assert report["task"] == "my-tickets"
    run_dir = tmp_path / "runs" / "my-tickets-bilstm"
    capsys.readouterr()

    compress.main([str(run_dir), "--embedding-rank", "4", "--output-dir", str(tmp_path / "small run"),
                   "--latency-repeats", "1", "--no-progress"])
    argv = _printed(capsys.readouterr().out, "export it with:")
    assert argv[:3] == ["python", "-m", "distill.export"]
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("the printed export command needs the onnx extra")
    export.main(argv[3:])
    argv = _printed(capsys.readouterr().out, "run it:")
    assert argv[:3] == ["python", "-m", "distill.predict"] and argv[3] == "exports/small run-onnx"
    predict_main(argv[3:])
    assert capsys.readouterr().out.split("\t")[0] in ("billing", "sales", "tech")


def test_a_teacher_that_learned_nothing_is_flagged(encoder, tmp_path, capsys):
    data = write_tickets(tmp_path / "tickets", n_train=24, n_dev=12)
    record = run_main(["--model", encoder, "--data", data, "--text-column", "body", "--label-column", "queue",
                       "--output-dir", tmp_path / "t", "--max-steps", "1", *FAST, "--lr", "1e-9"])
    out = capsys.readouterr().out
    assert record["majority_baseline"] == pytest.approx(1 / 3) and record["warning"]
    assert "warning: this teacher seems to have learned nothing:" in out and "majority-class baseline" in out
