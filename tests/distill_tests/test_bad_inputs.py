"""Issue 12, never lose a user's data: every malformed input is one line on stderr and exit code 2.

Each refusal case asserts: exit code 2, exactly one line on stderr naming the file, row or flag, no
traceback, and no new or changed file outside the test's temporary folder (nor in the inputs). The
commands run in-process through their `main([...])`. A few tiny fixtures (one label set, one run, one
bundle) are shared by the module.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
from conftest import make_teacher, sentence

from distill import export, finetune, label, predict, train
from distill.data.readers import infer_label_names, read_split
from distill.data.sources import load_splits
from distill.data.tasks import resolve_task
from distill.outputs import MARKER, hold_lock, lock_path
from distill.training import compress

WT = Path(__file__).resolve().parents[2]
# not walked: .venv alone is 40k files, 0.7 s a walk, twice for every refused command
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
TINY = ["--width", "4", "--embed-dim", "8", "--depth", "1", "--max-length", "16", "--max-steps", "2",
        "--batch-size", "16", "--latency-repeats", "1", "--no-progress", "--tokenizer", "word",
        "--embedding-init", "random"]
try:
    import onnxruntime  # noqa: F401

    HAS_ORT = True
except ImportError:
    HAS_ORT = False
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="needs the onnx extra (onnxruntime)")


# ----------------------------------------------------------------------------- helpers


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                out[p] = (st.st_size, st.st_mtime_ns)
    return out


def refused(main, argv, capsys, *expect: str, watch: tuple[Path, ...] = ()) -> str:
    """Run `main(argv)`; it must exit 2 with one line on stderr holding every `expect`, and leave the
    worktree and the `watch` folders exactly as they were."""
    roots = (WT, *watch)
    before = snapshot(*roots)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert e.value.code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for x in expect:
        assert x in lines[0], lines[0]
    assert snapshot(*roots) == before
    return lines[0]


def sst_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{sentence(rng, i % 2)}\t{i % 2}" for i in range(n)]


def tsv(rows: list[str], header: str = "sentence\tlabel") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


GOOD_TRAIN = tsv(sst_lines(12))
GOOD_DEV = tsv(sst_lines(6, seed=1))


def jsonl(objs) -> bytes:
    return ("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n").encode()


def sst_objs(n: int) -> list[dict]:
    rng = random.Random(3)
    return [{"sentence": sentence(rng, i % 2), "label": i % 2} for i in range(n)]


def parquet_bytes(tmp: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    objs = sst_objs(12)
    path = tmp / "whole.parquet"
    pq.write_table(pa.table({"sentence": [o["sentence"] for o in objs], "label": [o["label"] for o in objs]}), path)
    data = path.read_bytes()
    path.unlink()
    return data


def write_files(d: Path, files: dict[str, bytes]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def _with(rows: list[str], i: int, row: str) -> list[str]:
    rows = list(rows)
    rows[i] = row
    return rows


# ----------------------------------------------------------------------------- shared tiny artefacts


@pytest.fixture(scope="module", autouse=True)
def _no_latency_timing():
    """The report's latency timing of teacher and reference is the slow part of a tiny run; it is not
    what these tests check."""
    from distill.training import report

    def fake(model, make_inputs, device="cpu", batches=(1, 32), repeats=20):
        return {f"{device}_b{b}": 1.0 for b in batches}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "measure_latency", fake)
        yield


@pytest.fixture(scope="module")
def labels_dir(tiny_teacher, sst_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-inputs") / "labels"
    label.main(["--teacher", str(tiny_teacher), "--task", "sst2", "--data", str(sst_dir), "--augment", "none",
                "--output-dir", str(out), "--no-progress"])
    assert not lock_path(out).exists()  # the lock is gone with the run
    return out


@pytest.fixture(scope="module")
def run_dir(labels_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-inputs-run") / "run"
    train.main(["--labels", str(labels_dir), "--output-dir", str(out), *TINY])
    assert (out / "model.safetensors").is_file() and not lock_path(out).exists()
    return out


@pytest.fixture(scope="module")
def bundle_dir(run_dir, tmp_path_factory) -> Path:
    """A bundle as distill.export lays it out (its tokenizer files, labels, metadata), with a hand-made
    two-node ONNX model in place of the student: exporting a real one takes half a minute, and
    tests/distill_tests/test_export.py covers that."""
    if not HAS_ORT:
        pytest.skip("needs the onnx extra (onnxruntime)")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from distill.bundle.files import write_tokenizer
    from distill.bundle.runtime import BUNDLE_VERSION
    from distill.training.runfolder import load_run

    out = tmp_path_factory.mktemp("bad-inputs-bundle") / "bundle"
    out.mkdir()
    _, tok, config = load_run(run_dir)
    tok_meta = write_tokenizer(tok, out, 16)
    labels = list(config["task"]["label_names"])
    (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    graph = helper.make_graph(  # logits = [s, -s], s = the number of real tokens of each row
        [helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["m", "axes"], ["s"], keepdims=1),
         helper.make_node("Neg", ["s"], ["n"]),
         helper.make_node("Concat", ["s", "n"], ["logits"], axis=1)],
        "tiny",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "length"]) for n in ("input_ids",
                                                                                              "attention_mask")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, out / "model.onnx")
    meta = {"bundle_version": BUNDLE_VERSION, "format": "onnx", "precision": "fp32", "model_file": "model.onnx",
            "labels": labels, "pair": False, "max_length": 16, "min_length": 1,
            "batch": {"dynamic": True, "size": None}, "length": {"dynamic": True, "min": 1, "max": 16},
            "tokenizer": tok_meta}
    (out / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return out


# ----------------------------------------------------------------------------- data files


def _trunc_parquet(tmp: Path) -> bytes:
    data = parquet_bytes(tmp)
    return data[: len(data) // 2]


READER_CASES = {
    # name: (files in --data, extra flags, what the line names)
    "label inf": ({"train.tsv": tsv(_with(sst_lines(12), 2, "a good film\tinf")), "dev.tsv": GOOD_DEV}, [],
                  ["train.tsv", "row 4", "'inf'"]),
    "label nan": ({"train.tsv": GOOD_TRAIN, "dev.tsv": tsv(_with(sst_lines(6), 1, "a dull film\tnan"))}, [],
                  ["dev.tsv", "row 3", "'nan'"]),
    "label 1e999": ({"train.tsv": tsv(_with(sst_lines(12), 0, "fun\t1e999")), "dev.tsv": GOOD_DEV}, [],
                    ["train.tsv", "row 2", "1e999"]),
    "label -inf custom": ({"train.csv": b"text,y\na,0\nb,1\nc,-inf\n", "dev.csv": b"text,y\nd,0\ne,1\n"},
                          ["--task", "mine", "--text-column", "text", "--label-column", "y"],
                          ["train.csv", "row 4", "-inf"]),
    "label nan jsonl": ({"train.jsonl": jsonl([*sst_objs(4), '{"sentence": "ok", "label": NaN}']),
                         "dev.tsv": GOOD_DEV}, [], ["train.jsonl", "row 5", "'nan'"]),
    "label out of range": ({"train.tsv": tsv(_with(sst_lines(12), 3, "fun\t7")), "dev.tsv": GOOD_DEV}, [],
                           ["train.tsv", "row 5", "'7'"]),
    "label negative": ({"train.tsv": tsv(_with(sst_lines(12), 3, "fun\t-2")), "dev.tsv": GOOD_DEV}, [],
                       ["train.tsv", "row 5", "'-2'"]),
    "label a fraction": ({"train.tsv": tsv(_with(sst_lines(12), 0, "fun\t0.5")), "dev.tsv": GOOD_DEV}, [],
                         ["train.tsv", "row 2", "'0.5'"]),
    "label a list": ({"train.jsonl": jsonl([*sst_objs(3), {"sentence": "fun", "label": [1]}]),
                      "dev.tsv": GOOD_DEV}, [], ["train.jsonl", "row 4", "list"]),
    "jsonl line a list": ({"train.jsonl": jsonl([sst_objs(1)[0], "[1, 2]"]), "dev.tsv": GOOD_DEV}, [],
                          ["train.jsonl", "line 2", "list"]),
    "jsonl line a number": ({"train.jsonl": jsonl([*sst_objs(2), "42"]), "dev.tsv": GOOD_DEV}, [],
                            ["train.jsonl", "line 3", "number"]),
    "jsonl line a string": ({"train.jsonl": jsonl(['"just text"']), "dev.tsv": GOOD_DEV}, [],
                            ["train.jsonl", "line 1", "string"]),
    "jsonl line null": ({"train.jsonl": jsonl([*sst_objs(2), "null"]), "dev.tsv": GOOD_DEV}, [],
                        ["train.jsonl", "line 3", "null"]),
    "jsonl broken json": ({"train.jsonl": jsonl([*sst_objs(2), '{"sentence": "x",']), "dev.tsv": GOOD_DEV}, [],
                          ["train.jsonl", "line 3", "not valid JSON"]),
    "jsonl deep nesting": ({"train.jsonl": jsonl(["[" * 100000]), "dev.tsv": GOOD_DEV}, [],
                           ["train.jsonl", "line 1"]),
    "jsonl text a list": ({"train.jsonl": jsonl([*sst_objs(2), {"sentence": ["a", "b"], "label": 0}]),
                           "dev.tsv": GOOD_DEV}, [], ["train.jsonl", "row 3", "'sentence'"]),
    "jsonl text missing": ({"train.jsonl": jsonl([*sst_objs(2), {"label": 0}]), "dev.tsv": GOOD_DEV}, [],
                           ["train.jsonl", "row 3", "empty 'sentence'"]),
    "parquet truncated": ({"train.parquet": "truncated", "dev.tsv": GOOD_DEV}, [], ["train.parquet", "Parquet"]),
    "parquet garbage": ({"train.parquet": b"PAR1 this is not parquet PAR1", "dev.tsv": GOOD_DEV}, [],
                        ["train.parquet", "Parquet"]),
    "tsv ragged row": ({"train.tsv": tsv(_with(sst_lines(12), 1, "fun\t1\textra")), "dev.tsv": GOOD_DEV}, [],
                       ["train.tsv", "row 3", "3 fields"]),
    "tsv short row": ({"train.tsv": GOOD_TRAIN, "dev.tsv": tsv(_with(sst_lines(6), 4, "no label column"))}, [],
                      ["dev.tsv", "row 6", "1 fields"]),
    "csv ragged row": ({"train.csv": b"sentence,label\nfun,1\n\"dull, flat\",0,9\n", "dev.tsv": GOOD_DEV}, [],
                       ["train.csv", "row 3", "3 fields"]),
    "blank lines keep row numbers": ({"train.tsv": b"sentence\tlabel\n\nfun\t1\n\n\ndull\tinf\n", "dev.tsv": GOOD_DEV},
                                     [], ["train.tsv", "row 6"]),
    "wrong text column": ({"train.tsv": tsv(sst_lines(12), "text\tlabel"), "dev.tsv": GOOD_DEV}, [],
                          ["train.tsv", "no column 'sentence'", "--text-column"]),
    "wrong label column": ({"train.tsv": tsv(sst_lines(12), "sentence\tclass"), "dev.tsv": GOOD_DEV}, [],
                           ["train.tsv", "no column 'label'", "--label-column"]),
    "custom column absent": ({"train.csv": b"text,y\na,0\nb,1\n", "dev.csv": b"text,y\nd,0\n"},
                             ["--task", "mine", "--text-column", "body", "--label-column", "y"],
                             ["train.csv", "no column 'body'"]),
    "header twice": ({"train.tsv": tsv([f"{r}\tx" for r in sst_lines(4)], "sentence\tlabel\tsentence"),
                      "dev.tsv": GOOD_DEV}, [], ["train.tsv", "'sentence' twice"]),
    "header empty name": ({"train.tsv": tsv([f"{r}\tx" for r in sst_lines(4)], "sentence\tlabel\t"),
                           "dev.tsv": GOOD_DEV}, [], ["train.tsv", "empty column name"]),
    "empty text field": ({"train.tsv": tsv(_with(sst_lines(12), 5, "   \t1")), "dev.tsv": GOOD_DEV}, [],
                         ["train.tsv", "row 7", "empty 'sentence'"]),
    "header only": ({"train.tsv": b"sentence\tlabel\n", "dev.tsv": GOOD_DEV}, [], ["train.tsv", "no data rows"]),
    "empty file": ({"train.tsv": b"", "dev.tsv": GOOD_DEV}, [], ["train.tsv", "empty"]),
    "only a BOM": ({"train.tsv": b"\xef\xbb\xbf", "dev.tsv": GOOD_DEV}, [], ["train.tsv", "no rows"]),
    "only blank lines": ({"train.csv": b"\n \n\n", "dev.tsv": GOOD_DEV}, [], ["train.csv", "no rows"]),
    "latin-1": ({"train.tsv": "sentence\tlabel\ncaf\u00e9 fun\t1\n".encode("latin-1"), "dev.tsv": GOOD_DEV}, [],
                ["train.tsv", "not valid UTF-8"]),
    "utf-16": ({"train.tsv": GOOD_TRAIN.decode().encode("utf-16"), "dev.tsv": GOOD_DEV}, [],
               ["train.tsv", "not valid UTF-8"]),
    "utf-8 cut mid-character": ({"train.jsonl": jsonl(sst_objs(2)) + b'{"sentence": "\xe2\x82"}\n',
                                 "dev.tsv": GOOD_DEV}, [], ["train.jsonl", "not valid UTF-8"]),
    "no label at all": ({"train.tsv": tsv([f"{r.split(chr(9))[0]}\t" for r in sst_lines(6)]), "dev.tsv": GOOD_DEV},
                        [], ["train.tsv", "no row has a label"]),
    "one class only": ({"train.csv": b"text,y\na,x\nb,x\n", "dev.csv": b"text,y\nd,x\n"},
                       ["--task", "mine", "--text-column", "text", "--label-column", "y"],
                       ["train.csv", "1 distinct label"]),
    "dev label not in train": ({"train.csv": b"text,y\na,x\nb,z\n", "dev.csv": b"text,y\nd,x\ne,q\n"},
                               ["--task", "mine", "--text-column", "text", "--label-column", "y"],
                               ["dev.csv", "row 3", "'q'"]),
    "no train file": ({"dev.tsv": GOOD_DEV}, [], ["no train file"]),
    "no dev file": ({"train.tsv": GOOD_TRAIN}, [], ["no dev file"]),
    "unsupported --test": ({"train.tsv": GOOD_TRAIN, "dev.tsv": GOOD_DEV}, ["--test", "MISSING"], ["--test"]),
    "transfer file not utf-8": ({"train.tsv": GOOD_TRAIN, "dev.tsv": GOOD_DEV, "more.txt": b"ok\n\xff\xfe\n"},
                                ["--transfer-file", "DATA/more.txt"], ["more.txt", "not valid UTF-8"]),
    "transfer file empty": ({"train.tsv": GOOD_TRAIN, "dev.tsv": GOOD_DEV, "more.txt": b""},
                            ["--transfer-file", "DATA/more.txt"], ["more.txt", "empty"]),
    "transfer file blank": ({"train.tsv": GOOD_TRAIN, "dev.tsv": GOOD_DEV, "more.txt": b"\n  \n\t\n"},
                            ["--transfer-file", "DATA/more.txt"], ["more.txt", "every text is empty"]),
}


@pytest.mark.parametrize("case", list(READER_CASES))
def test_a_malformed_data_file_is_one_line(case, tiny_teacher, tmp_path, capsys):
    files, flags, expect = READER_CASES[case]
    files = {k: (_trunc_parquet(tmp_path) if v == "truncated" else v) for k, v in files.items()}
    data = write_files(tmp_path / "data", files)
    flags = [str(data / "missing.tsv") if f == "MISSING" else f.replace("DATA", str(data)) for f in flags]
    if "--task" not in flags:
        flags = ["--task", "sst2", *flags]
    refused(label.main, ["--teacher", tiny_teacher, "--data", data, "--output-dir", tmp_path / "out",
                         "--augment", "none", "--no-progress", *flags], capsys, *expect, watch=(tmp_path,))
    assert not (tmp_path / "out").exists()


def test_a_missing_data_folder_is_one_line(tiny_teacher, tmp_path, capsys):
    refused(label.main, ["--teacher", tiny_teacher, "--task", "sst2", "--data", tmp_path / "nope",
                         "--output-dir", tmp_path / "out"], capsys, "--data", "no such folder", watch=(tmp_path,))


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_a_utf8_byte_order_mark_is_read(suffix, tmp_path):
    rows = [("caf\u00e9 fun", 1), ("dull", 0)]
    if suffix == ".jsonl":
        body = jsonl([{"sentence": t, "label": y} for t, y in rows])
    else:
        sep = "\t" if suffix == ".tsv" else ","
        body = ("\n".join([f"sentence{sep}label", *(f"{t}{sep}{y}" for t, y in rows)]) + "\n").encode()
    path = tmp_path / f"train{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + body)
    split = read_split(resolve_task("sst2"), path)
    assert split.texts == [("caf\u00e9 fun",), ("dull",)] and split.labels.tolist() == [1, 0]


def test_numeric_labels_of_a_custom_task_are_classes_by_value(tmp_path):
    d = write_files(tmp_path / "d", {
        "train.csv": b"text,y\na,0\nb,0.0\nc,1\nd,1.0\ne, 1 \n",
        "dev.csv": b"text,y\nf,0\ng,1.00\n",
    })
    task, splits = load_splits(resolve_task("mine", ("text",), "y"), d)
    assert task.label_names == ("0", "1")
    assert splits["train"].labels.tolist() == [0, 0, 1, 1, 1] and splits["dev"].labels.tolist() == [0, 1]
    more = write_files(tmp_path / "e", {"train.jsonl": jsonl([{"text": "a", "y": 10}, {"text": "b", "y": 2.0},
                                                               {"text": "c", "y": "2"}])})
    assert infer_label_names(resolve_task("mine", ("text",), "y"), more / "train.jsonl").label_names == ("2", "10")


def test_unlabelled_rows_are_counted_in_one_warning_per_split(tmp_path, capsys):
    dev = [f"{r.split(chr(9))[0]}\t" if i < 4 else r for i, r in enumerate(sst_lines(10, seed=4))]
    d = write_files(tmp_path / "d", {"train.tsv": tsv(_with(_with(sst_lines(12), 0, "fun\t"), 1, "dull\t")),
                                     "dev.tsv": tsv(dev)})
    load_splits(resolve_task("sst2"), d)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: train.tsv: 2 of 12 rows have no label; the teacher still labels them for "
                   "distillation; fine-tuning a teacher leaves them out",
                   "warning: dev.tsv: 4 of 10 rows have no label; the dev metric covers the other 6"]


def test_huge_fields_and_many_columns_are_read(tmp_path):
    big = "fun " * 250_000  # a 1 MB text in one cell
    d = write_files(tmp_path / "d", {
        "train.tsv": ("sentence\tlabel\textra\n" + f"{big}\t1\t{'x' * 100_000}\ndull\t0\t\n").encode(),
        "train.csv": ("sentence,label\n" + f'"{big}, and more",1\n').encode()})
    split = read_split(resolve_task("sst2"), d / "train.tsv")
    assert len(split.texts[0][0]) == len(big) - 1 and split.labels.tolist() == [1, 0]
    assert read_split(resolve_task("sst2"), d / "train.csv").texts[0][0].endswith("fun , and more")


def test_any_text_survives_a_jsonl_file(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=10, deadline=None)
    @hypothesis.given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1), min_size=1,
                               max_size=5))
    def check(texts):
        path = tmp_path / "train.jsonl"
        path.write_text("\n".join(json.dumps({"sentence": t, "label": i % 2}) for i, t in enumerate(texts)),
                        encoding="utf-8")
        keep = [" ".join(t.split()) for t in texts]
        try:
            split = read_split(resolve_task("sst2"), path)
        except Exception as e:  # the only refusal: a text that is all whitespace, named by its row
            from distill.errors import DistillError

            assert isinstance(e, DistillError) and "empty 'sentence'" in str(e)
            assert any(not k for k in keep)
            return
        assert [t[0] for t in split.texts] == keep

    check()


# ----------------------------------------------------------------------------- flags


TRAIN_FLAG_CASES = [
    (["--lr", "inf"], "--lr inf"), (["--lr", "nan"], "--lr nan"), (["--lr", "0"], "--lr 0"),
    (["--warmup-ratio", "nan"], "--warmup-ratio nan"), (["--warmup-ratio", "1"], "--warmup-ratio 1"),
    (["--weight-decay", "nan"], "--weight-decay nan"), (["--weight-decay", "-1"], "--weight-decay -1"),
    (["--temperature", "inf"], "--temperature inf"), (["--temperature", "0"], "--temperature 0"),
    (["--dropout", "nan"], "--dropout nan"), (["--dropout", "1.5"], "--dropout 1.5"),
    (["--grad-clip", "inf"], "--grad-clip inf"), (["--grad-clip", "-1"], "--grad-clip -1"),
    (["--alpha", "nan"], "--alpha nan"), (["--p-mask", "nan"], "--p-mask nan"), (["--p-ng", "inf"], "--p-ng inf"),
    (["--checkpoint-every-s", "nan"], "--checkpoint-every-s nan"),
    (["--checkpoint-every-s", "-1"], "--checkpoint-every-s -1"),
    (["--patience", "0"], "--patience 0"),
    (["--student", "transformer", "--max-length", "600"], "--max-length 600"),
    (["--student", "transformer", "--max-length", "100", "--student-config", '{"max_len": 64}'], "--max-length 100"),
    (["--max-length", "0"], "--max-length 0"), (["--batch-size", "0"], "--batch-size 0"),
    (["--lr", "fast"], "--lr"), (["--latency-repeats", "0"], "--latency-repeats 0"),
]


@pytest.mark.parametrize("flags, flag", TRAIN_FLAG_CASES, ids=[" ".join(c[0]) for c in TRAIN_FLAG_CASES])
def test_nonsense_training_flags_are_one_line(flags, flag, tmp_path, capsys):
    refused(train.main, ["--output-dir", tmp_path / "out", *flags], capsys, flag, watch=(tmp_path,))


OTHER_FLAG_CASES = [
    ("finetune", ["--lr", "inf"], "--lr inf"), ("finetune", ["--warmup-ratio", "nan"], "--warmup-ratio nan"),
    ("finetune", ["--weight-decay", "nan"], "--weight-decay nan"), ("finetune", ["--grad-clip", "nan"], "--grad-clip"),
    ("finetune", ["--checkpoint-every-s", "inf"], "--checkpoint-every-s"),
    ("label", ["--validation-fraction", "nan"], "--validation-fraction nan"),
    ("label", ["--p-pos", "nan"], "--p-pos nan"),
    ("compress", ["--cos-weight", "nan"], "--cos-weight nan"),
]


@pytest.mark.parametrize("command, flags, flag", OTHER_FLAG_CASES,
                         ids=[f"{c[0]} {' '.join(c[1])}" for c in OTHER_FLAG_CASES])
def test_nonsense_flags_of_the_other_commands_are_one_line(command, flags, flag, tiny_teacher, tmp_path, capsys):
    out = ["--output-dir", tmp_path / "out"]
    argv = {"finetune": [*out, "--model", tiny_teacher], "label": [*out, "--teacher", tiny_teacher],
            "compress": [tmp_path / "run", *out]}[command]
    main = {"finetune": finetune.main, "label": label.main, "compress": compress.main}[command]
    refused(main, [*argv, *flags], capsys, flag, watch=(tmp_path,))


def _in_the_way(tmp_path: Path, how: str) -> Path:
    if how == "a file":
        (tmp_path / "taken").write_text("mine")
        return tmp_path / "taken"
    if how == "under a file":
        (tmp_path / "taken").write_text("mine")
        return tmp_path / "taken" / "out"
    d = tmp_path / "theirs"  # not empty, not made by the tool
    d.mkdir()
    (d / "notes.txt").write_text("precious")
    return d


@pytest.mark.parametrize("how", ["a file", "under a file", "a foreign folder"])
@pytest.mark.parametrize("command", ["train", "label", "finetune"])
def test_the_output_folder_is_checked_before_any_work(command, how, tiny_teacher, tmp_path, capsys):
    out = _in_the_way(tmp_path, how)
    nowhere = tmp_path / "no-such-data"  # the data would fail next: the output error comes first
    argv = {"train": ["--teacher", tiny_teacher, "--data", nowhere],
            "label": ["--teacher", tiny_teacher, "--data", nowhere],
            "finetune": ["--model", tmp_path / "no-such-model", "--data", nowhere]}[command]
    main = {"train": train.main, "label": label.main, "finetune": finetune.main}[command]
    for extra in ([], ["--overwrite"]) if command != "label" else ([],):
        refused(main, [*argv, "--output-dir", out, *extra], capsys, "--output-dir", str(out), watch=(tmp_path,))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_folder_is_one_line(tmp_path, capsys):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        refused(train.main, ["--output-dir", locked / "out"], capsys, "not writable", watch=(tmp_path,))
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("command", ["train", "label", "finetune"])
def test_an_unwritable_output_folder_is_one_line_even_for_root(command, tiny_teacher, tmp_path, monkeypatch,
                                                                capsys):
    import distill.outputs

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(distill.outputs.os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    argv = {"train": ["--teacher", tiny_teacher], "label": ["--teacher", tiny_teacher],
            "finetune": ["--model", tiny_teacher]}[command]
    main = {"train": train.main, "label": label.main, "finetune": finetune.main}[command]
    for out in (ro, ro / "sub"):
        refused(main, [*argv, "--data", tmp_path / "nope", "--output-dir", out], capsys, str(ro), "not writable",
                watch=(tmp_path,))


@pytest.mark.parametrize("command", ["export", "compress"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_export_and_compress_never_write_over_a_foreign_folder(command, overwrite, run_dir, tmp_path, capsys):
    out = _in_the_way(tmp_path, "a foreign folder")
    main = {"export": export.main, "compress": compress.main}[command]
    refused(main, [run_dir, "--output-dir", out, *overwrite], capsys, str(out), "not made by distill-workbench",
            watch=(tmp_path, run_dir))
    assert (out / "notes.txt").read_text() == "precious"


def test_search_never_writes_over_a_foreign_folder(labels_dir, tmp_path, capsys):
    from search import run as search_run

    out = _in_the_way(tmp_path, "a foreign folder")
    refused(search_run.main, ["--labels", labels_dir, "--output-dir", out, "--trials", "1"], capsys, str(out),
            watch=(tmp_path, labels_dir))


def test_a_failed_training_leaves_no_partial_files(labels_dir, tmp_path, capsys):
    out = tmp_path / "blown"
    line = refused(train.main, ["--labels", labels_dir, "--output-dir", out, *TINY, "--max-steps", "6",
                                "--lr", "1e38", "--grad-clip", "0"], capsys, "at step", "nothing was saved",
                   watch=(labels_dir,))
    assert "became" in line and not out.exists() and not lock_path(out).exists()
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder the user made stays, empty
    refused(train.main, ["--labels", labels_dir, "--output-dir", empty, *TINY, "--max-steps", "6",
                         "--lr", "1e38", "--grad-clip", "0"], capsys, "at step")
    assert empty.is_dir() and not any(empty.iterdir())


def test_a_failed_fine_tuning_leaves_no_partial_files(tiny_teacher, sst_dir, tmp_path, capsys):
    out = tmp_path / "teacher"
    refused(finetune.main, ["--model", tiny_teacher, "--task", "sst2", "--data", sst_dir, "--output-dir", out,
                            "--no-progress", "--max-steps", "6", "--lr", "1e38", "--grad-clip", "0",
                            "--warmup-ratio", "0", "--limit-train", "64"], capsys, "at step", watch=(sst_dir,))
    assert not out.exists() and not lock_path(out).exists()


def test_a_refused_run_leaves_no_folders_it_made(tmp_path, tiny_teacher, capsys):
    out = tmp_path / "a" / "b" / "out"  # the lock file's folders are made, and removed again
    refused(train.main, ["--teacher", tiny_teacher, "--data", tmp_path / "nope", "--output-dir", out], capsys,
            "--data", watch=(tmp_path,))
    assert not (tmp_path / "a").exists()


# ----------------------------------------------------------------------------- concurrent runs


def test_a_second_training_on_a_locked_folder_is_refused_at_once(labels_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with hold_lock(out):  # the first run holds it
        refused(train.main, ["--labels", labels_dir, "--output-dir", out, *TINY], capsys, str(out),
                f"PID {os.getpid()}", watch=(tmp_path,))
        assert not out.exists()
    train.main(["--labels", str(labels_dir), "--output-dir", str(out), *TINY])  # exactly one run, once free
    assert (out / "model.safetensors").is_file() and not lock_path(out).exists()


def test_a_second_labelling_or_fine_tuning_on_a_locked_folder_is_refused(tiny_teacher, sst_dir, tmp_path, capsys):
    out = tmp_path / "folder"
    with hold_lock(out):
        refused(label.main, ["--teacher", tiny_teacher, "--task", "sst2", "--data", sst_dir, "--augment", "none",
                             "--output-dir", out, "--no-progress"], capsys, str(out), f"PID {os.getpid()}",
                watch=(tmp_path,))
        refused(finetune.main, ["--model", tiny_teacher, "--task", "sst2", "--data", sst_dir, "--output-dir", out,
                                "--no-progress", "--max-steps", "1"], capsys, str(out), f"PID {os.getpid()}",
                watch=(tmp_path,))
    assert not out.exists() and not lock_path(out).exists()


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "run"
    lock_path(out).write_text("999999")  # no process holds it: flock locks die with their process
    with hold_lock(out) as path:
        assert path.read_text() == str(os.getpid())
    assert not lock_path(out).exists()


def test_the_label_cache_is_locked_and_keyed_by_content(tiny_teacher, sst_dir, cache, tmp_path, capsys):
    from distill.data.sources import load_splits as load
    from distill.teacher.labelling import label as label_into

    task, splits = load(resolve_task("sst2"), sst_dir)
    a = label_into(str(tiny_teacher), task, splits, None, progress=False)
    assert a.path.parent == cache / "labels" and not lock_path(a.path).exists()
    fewer = dict(splits, train=type(splits["train"])(splits["train"].texts[:-1], splits["train"].labels[:-1],
                                                     splits["train"].source))
    b = label_into(str(tiny_teacher), task, fewer, None, progress=False)
    assert b.path != a.path and b.key != a.key  # other content, other folder
    assert label_into(str(tiny_teacher), task, splits, None, progress=False).path == a.path  # reused
    with hold_lock(a.path):  # a finished label set is read without the lock (search workers share it)
        assert label_into(str(tiny_teacher), task, splits, None, progress=False).path == a.path
    other = dict(splits, train=type(splits["train"])(splits["train"].texts[:-2], splits["train"].labels[:-2],
                                                     splits["train"].source))
    from distill.errors import DistillError

    first = label_into(str(tiny_teacher), task, other, None, progress=False)
    shutil.rmtree(first.path)
    with hold_lock(first.path), pytest.raises(DistillError, match="in use by another run"):
        label_into(str(tiny_teacher), task, other, None, progress=False)  # labelling it now: one at a time


# ----------------------------------------------------------------------------- label sets and run folders


def _damage(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    if how == "truncated train.parquet":
        data = (dst / "train.parquet").read_bytes()
        (dst / "train.parquet").write_bytes(data[: len(data) // 2])
    elif how == "manifest not JSON":
        (dst / "manifest.json").write_text("{not json")
    elif how == "no manifest":
        (dst / "manifest.json").unlink()
    elif how == "no dev.parquet":
        (dst / "dev.parquet").unlink()
    elif how == "truncated weights":
        data = (dst / "model.safetensors").read_bytes()
        (dst / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif how == "config lacks keys":
        cfg = json.loads((dst / "config.json").read_text())
        del cfg["student"], cfg["tokenizer"]
        (dst / "config.json").write_text(json.dumps(cfg))
    elif how == "config not JSON":
        (dst / "config.json").write_text("[1, 2")
    elif how == "no tokenizer":
        (dst / "tokenizer.json").unlink()
    elif how == "garbage tokenizer":
        (dst / "tokenizer.json").write_text('{"version": "1.0", "model": 5}')
    return dst


@pytest.mark.parametrize("how", ["truncated train.parquet", "manifest not JSON", "no manifest", "no dev.parquet"])
def test_a_damaged_label_set_is_one_line(how, labels_dir, tmp_path, capsys):
    bad = _damage(labels_dir, tmp_path / "labels", how)
    refused(train.main, ["--labels", bad, "--output-dir", tmp_path / "out", *TINY], capsys, str(bad),
            watch=(tmp_path,))


@pytest.mark.parametrize("how", ["truncated weights", "config lacks keys", "config not JSON", "no tokenizer",
                                 "garbage tokenizer"])
def test_a_damaged_run_folder_is_one_line(how, run_dir, tmp_path, capsys):
    bad = _damage(run_dir, tmp_path / "run", how)
    refused(export.main, [bad, "--output-dir", tmp_path / "bundle"], capsys, str(bad), watch=(tmp_path,))


# ----------------------------------------------------------------------------- teachers


@pytest.mark.parametrize("how", ["3 labels in config, 2-row head", "pickled pytorch_model.bin", "config not JSON",
                                 "no such folder"])
def test_a_broken_teacher_is_one_line(how, sst_dir, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    t = make_teacher(tmp_path / "teacher")
    expect = ["--teacher"]
    if how.startswith("3 labels"):
        cfg = json.loads((t / "config.json").read_text())
        cfg["id2label"] = {"0": "negative", "1": "positive", "2": "neutral"}
        cfg["label2id"] = {v: int(k) for k, v in cfg["id2label"].items()}
        (t / "config.json").write_text(json.dumps(cfg))
        expect.append("do not fit its config.json")
    elif how.startswith("pickled"):
        class Payload:
            def __reduce__(self):
                return (print, ("ran code from a pickle",))

        state = load_file(str(t / "model.safetensors"))
        (t / "model.safetensors").unlink()
        torch.save({"state": state, "extra": Payload()}, t / "pytorch_model.bin")
        expect.append("pickled")
    elif how == "config not JSON":
        (t / "config.json").write_text("{oops")
    else:
        shutil.rmtree(t)
    refused(label.main, ["--teacher", t, "--task", "sst2", "--data", sst_dir, "--augment", "none",
                         "--output-dir", tmp_path / "out", "--no-progress"], capsys, str(t), *expect,
            watch=(tmp_path, sst_dir))
    if how.startswith("pickled"):  # fine-tuning it as an encoder: the same line, with --model
        refused(finetune.main, ["--model", t, "--task", "sst2", "--data", sst_dir, "--output-dir", tmp_path / "ft",
                                "--no-progress", "--max-steps", "1"], capsys, "--model", str(t), "pickled",
                watch=(tmp_path, sst_dir))
        assert not (tmp_path / "ft").exists()


# ----------------------------------------------------------------------------- bundles


def _edit_meta(bundle: Path, dotted: str, value) -> None:
    meta = json.loads((bundle / "metadata.json").read_text())
    parts = dotted.split(".")
    node = meta
    for p in parts[:-1]:
        node = node[p]
    if value is KeyError:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    (bundle / "metadata.json").write_text(json.dumps(meta))


FILE_ENTRIES = ["model_file", "tokenizer.file", "tokenizer.vocab_file"]
ESCAPES = {"absolute": (lambda b, o: str(o)), "dot-dot": (lambda b, o: f"../{o.name}"),
           "dot-dot inside": (lambda b, o: f"sub/../../{o.name}"), "symlink out": None}


@needs_ort
@pytest.mark.parametrize("escape", list(ESCAPES))
@pytest.mark.parametrize("entry", FILE_ENTRIES)
def test_a_bundle_names_only_files_inside_it(entry, escape, bundle_dir, tmp_path, capsys):
    b = tmp_path / "bundle"
    shutil.copytree(bundle_dir, b)
    name = {"model_file": "model.onnx", "tokenizer.file": "tokenizer.json", "tokenizer.vocab_file": "vocab.txt"}[entry]
    outside = tmp_path / f"outside-{name}"
    shutil.copy(b / name, outside)
    if escape == "symlink out":
        (b / "link").symlink_to(outside)
        _edit_meta(b, entry, "link")
    else:
        _edit_meta(b, entry, ESCAPES[escape](b, outside))
    refused(predict.main, [b, "good"], capsys, f"'{entry}'", "metadata.json", watch=(tmp_path,))


def test_a_symlinked_bundle_folder_is_fine(bundle_dir, tmp_path, capsys):
    if not HAS_ORT:
        pytest.skip("needs onnxruntime")
    (tmp_path / "alias").symlink_to(bundle_dir)  # the folder itself may be a link; its files stay inside it
    predict.main([str(tmp_path / "alias"), "good"])
    assert capsys.readouterr().out.count("\n") == 1


BUNDLE_DAMAGE = {
    "corrupt model.onnx": (lambda b: (b / "model.onnx").write_bytes(b"\x08\x07 not a model"), "model.onnx"),
    "truncated model.onnx": (lambda b: (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:200]),
                             "model.onnx"),
    "missing model.onnx": (lambda b: (b / "model.onnx").unlink(), "model.onnx"),
    "corrupt tokenizer.json": (lambda b: (b / "tokenizer.json").write_text("{]"), "tokenizer.json"),
    "no max_length": (lambda b: _edit_meta(b, "max_length", KeyError), "'max_length'"),
    "max_length -5": (lambda b: _edit_meta(b, "max_length", -5), "'max_length'"),
    "max_length a string": (lambda b: _edit_meta(b, "max_length", "16"), "'max_length'"),
    "max_length true": (lambda b: _edit_meta(b, "max_length", True), "'max_length'"),
    "max_length 1.5": (lambda b: _edit_meta(b, "max_length", 1.5), "'max_length'"),
    "min_length above max_length": (lambda b: _edit_meta(b, "min_length", 10_000), "'min_length'"),
    "labels not a list": (lambda b: _edit_meta(b, "labels", "negative,positive"), "'labels'"),
    "no tokenizer entry": (lambda b: _edit_meta(b, "tokenizer", KeyError), "'tokenizer.file'"),
    "pad_id negative": (lambda b: _edit_meta(b, "tokenizer.pad_id", -1), "'tokenizer.pad_id'"),
    "model_file a number": (lambda b: _edit_meta(b, "model_file", 7), "'model_file'"),
    "unknown format": (lambda b: _edit_meta(b, "format", "tflite"), "tflite"),
    "old bundle version": (lambda b: _edit_meta(b, "bundle_version", 99), "bundle_version"),
    "metadata not JSON": (lambda b: (b / "metadata.json").write_text("{"), "metadata.json"),
    "metadata a list": (lambda b: (b / "metadata.json").write_text("[]"), "metadata.json"),
    "no metadata": (lambda b: (b / "metadata.json").unlink(), "metadata.json"),
}


@needs_ort
@pytest.mark.parametrize("how", list(BUNDLE_DAMAGE))
def test_a_damaged_bundle_is_one_line(how, bundle_dir, tmp_path, capsys):
    b = tmp_path / "bundle"
    shutil.copytree(bundle_dir, b)
    damage, expect = BUNDLE_DAMAGE[how]
    damage(b)
    refused(predict.main, [b, "good"], capsys, expect, watch=(tmp_path,))


# ----------------------------------------------------------------------------- predict on stdin


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


@needs_ort
@pytest.mark.parametrize("skip_blank", [False, True])
def test_predict_goes_on_past_a_line_that_is_not_utf8(skip_blank, bundle_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"\xef\xbb\xbfa witty film\n\xff\xfe broken\n\n  \ndull plot\r\n"))
    predict.main([str(bundle_dir), *(["--skip-blank"] if skip_blank else [])])
    out, err = capsys.readouterr()
    lines = out.split("\n")[:-1]
    assert err.strip() == "line 2: not valid UTF-8, skipped"
    if skip_blank:
        assert len(lines) == 2 and lines[0].endswith("\ta witty film") and lines[1].endswith("\tdull plot")
    else:  # one output line per input line
        assert len(lines) == 5 and lines[1:4] == ["", "", ""]
        assert lines[0].endswith("\ta witty film") and lines[4].endswith("\tdull plot")


@needs_ort
def test_predict_json_keeps_one_line_per_input_line(bundle_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"fun\n\n" * 20 + b"\x80\n"))  # more lines than a batch
    predict.main([str(bundle_dir), "--json", "--batch-size", "3"])
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 41 and [r["label"] is None for r in rows] == [False, True] * 20 + [True]
    assert all(math.isclose(sum(r["probabilities"].values()), 1, abs_tol=1e-4) for r in rows[:40:2])


def test_tool_folders_carry_the_marker(run_dir, labels_dir):
    assert (run_dir / MARKER).is_file() and (labels_dir / MARKER).is_file()
