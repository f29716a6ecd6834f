"""A transformer student started from its teacher's bottom layers (--encoder-init teacher):
the copy is exact, the flags refuse what cannot work with one line, and the run exports."""

import json

import numpy as np
import pytest
import torch
from conftest import make_teacher

import students
from distill.label import main as label_main
from distill.train import LR, TEACHER_LAYERS_LR, main, parse_args
from distill.training.teacher_init import copy_teacher_layers, teacher_shape, unsupported

TINY = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--latency-repeats", "1", "--augment", "none"]


def bert(layers: int, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=24, hidden_dropout_prob=0.0)
    return BertForSequenceClassification(config).eval()


@pytest.mark.parametrize("depth", [1, 2])
def test_the_student_encodes_as_the_teachers_bottom_layers_mean_pooled(depth):
    teacher = bert(layers=3)
    student = students.build_student("transformer", vocab_size=40, num_labels=2, layers=depth,
                                     **teacher_shape(teacher.config)).eval()
    assert copy_teacher_layers(student, teacher) == depth
    ids = torch.tensor([[5, 9, 12, 7, 0, 0], [3, 8, 30, 31, 11, 6]])
    mask = (ids != 0).long()
    with torch.no_grad():
        hidden = teacher.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[depth]
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        torch.testing.assert_close(student.encode(ids, mask), pooled, rtol=0, atol=1e-5)


def test_a_pruned_vocabulary_takes_the_teachers_rows_of_its_tokens():
    teacher = bert(layers=1)
    student = students.build_student("transformer", vocab_size=3, num_labels=2, layers=1,
                                     **teacher_shape(teacher.config))
    copy_teacher_layers(student, teacher, torch.tensor([0, 7, 21]))
    torch.testing.assert_close(student.embedding.weight, teacher.bert.embeddings.word_embeddings.weight[[0, 7, 21]])


def test_only_a_bert_layout_with_exact_gelu_and_absolute_positions_is_mapped():
    from transformers import BertConfig, DistilBertConfig

    assert unsupported(BertConfig()) is None
    assert "model_type is 'distilbert'" in unsupported(DistilBertConfig())
    assert "activation is 'relu'" in unsupported(BertConfig(hidden_act="relu"))
    assert "positions are 'relative_key'" in unsupported(BertConfig(position_embedding_type="relative_key"))


def test_the_default_learning_rate_follows_the_encoders_start():
    args = parse_args(["--student", "transformer"])
    assert args.fit_config("cpu").lr == LR and args.fit_config("cpu", pretrained=True).lr == TEACHER_LAYERS_LR
    assert parse_args(["--student", "transformer", "--lr", "0.003"]).fit_config("cpu", pretrained=True).lr == 0.003


def test_a_run_from_the_teachers_layers_trains_reports_and_exports(tiny_teacher, sst_dir, tmp_path, cache):
    out = tmp_path / "run"
    report = main(["--student", "transformer", "--teacher", str(tiny_teacher), "--data", str(sst_dir),
                   "--output-dir", str(out), "--depth", "1", *TINY])
    assert report["training"]["embedding_init"] == "teacher-layers"
    config = json.loads((out / "config.json").read_text())["student_config"]
    assert (config["d_model"], config["heads"], config["ff_dim"], config["norm"]) == (16, 2, 32, "post")
    pytest.importorskip("onnxruntime")
    from distill.bundle import build as export
    from distill.bundle.runtime import Bundle

    meta = export.main([str(out), "--output-dir", str(tmp_path / "bundle")])  # its parity check: 1e-4
    assert meta["parity"]["label_agreement"] == 1.0
    bundle = Bundle(tmp_path / "bundle")
    ids, mask, _ = bundle.encode(["a witty and charming film", "dull"])
    assert np.isfinite(bundle.logits(ids, mask)).all()


def test_labels_and_the_teacher_that_made_them_start_the_student_another_teacher_is_refused(
        tiny_teacher, sst_dir, tmp_path, capsys):
    labels = tmp_path / "labels"
    label_main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir), "--augment", "none",
                "--output-dir", str(labels), "--no-progress"])
    report = main(["--student", "transformer", "--labels", str(labels), "--teacher", str(tiny_teacher),
                   "--output-dir", str(tmp_path / "ok"), *TINY[:-2]])
    assert report["training"]["embedding_init"] == "teacher-layers"
    other = make_teacher(tmp_path / "other", seed=1)
    for argv, message in [
        (["--teacher", str(other)], f"--teacher {other} is not the teacher of {labels}"),
        (["--encoder-init", "teacher"], "--encoder-init teacher needs the teacher's weights: pass --teacher"),
        (["--teacher", str(tiny_teacher), "--width", "32"], "--width 32: a student started from the teacher's "
                                                            "layers has the teacher's d_model (16)"),
        (["--teacher", str(tiny_teacher), "--depth", "2"], "--depth 2: the teacher has 1 layer to start from"),
        (["--teacher", str(tiny_teacher), "--max-length", "100"], "--max-length 100: the teacher has 64 positions"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(["--student", "transformer", "--labels", str(labels), "--output-dir", str(tmp_path / "bad"),
                  *argv, *TINY[:-2]])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and message in err and "\n" not in err, err
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("argv, message", [
    (["--student", "cnn", "--encoder-init", "teacher"], "only the transformer has the teacher's layout"),
    (["--student", "cnn", "--labels", "x", "--teacher", "y"], "give --teacher or --labels, not both"),
    (["--student", "transformer", "--encoder-init", "teacher", "--tokenizer", "word"], "use --tokenizer teacher"),
    (["--student", "transformer", "--labels", "x", "--teacher", "y", "--augment", "tang"],
     "--labels already holds the training rows"),
    (["--student", "transformer", "--encoder-init", "pretrained"], "--encoder-init must be one of"),
])
def test_bad_encoder_flags_give_one_line_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and message in err and "\n" not in err
