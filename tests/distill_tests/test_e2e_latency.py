"""End-to-end timing (distill.bundle.latency) and the teacher's ONNX rows of scripts/bench_export.py, on a
tiny random teacher. No timed assertions: the machine may be loaded."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from distill.bundle.latency import rotated_latency
from distill.data import Split, resolve_task

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_blocks_rotate_across_systems_and_every_request_is_timed():
    calls = []
    systems = {name: (lambda texts, name=name: calls.append((name, tuple(texts)))) for name in "ABC"}
    texts = [f"t{i}" for i in range(7)]
    out = rotated_latency(systems, texts, batch=2, requests=5, block=2, warmup=1)
    timed = calls[3:]  # one warm-up call per system first
    assert [n for n, _ in timed] == list("AABBCCAABBCCABC")  # blocks of 2, then the last one of 1
    assert [x for n, x in timed if n == "A"] == [x for n, x in timed if n == "C"]  # the same requests
    assert timed[0][1] == ("t0", "t1") and timed[2 * 3][1] == ("t4", "t5")  # texts cycle, `batch` per call
    for t in out.values():
        assert t["requests"] == 5 and t["batch"] == 2 and 0 < t["median_ms"] <= t["p90_ms"]
        assert t["rows_per_s"] > 0


@pytest.mark.skipif(not HAS_ONNX, reason="needs onnx and onnxruntime")
def test_teacher_onnx_rows_and_their_end_to_end_classifiers(tiny_teacher, sst_dir, tmp_path, monkeypatch):
    import csv

    monkeypatch.syspath_prepend(str(SCRIPTS))
    sys.modules.pop("bench_export", None)
    import bench_export

    with open(sst_dir / "dev.tsv", encoding="utf-8") as f:
        dev = [(r["sentence"], int(r["label"])) for r in csv.DictReader(f, delimiter="\t")]
    split = Split(texts=[(t,) for t, _ in dev], labels=np.array([y for _, y in dev], dtype=np.int64))
    ls = SimpleNamespace(task=resolve_task("sst2"), teacher={"max_length": 64}, splits={"dev": split})
    rows, clfs = bench_export.teacher_rows(tiny_teacher, tmp_path / "teacher", ls, length=8, repeats=2)
    assert [r["variant"] for r in rows] == ["teacher_onnx_fp32", "teacher_onnx_int8"]
    fp32, int8 = rows
    assert (tmp_path / "teacher" / "teacher.onnx").is_file() and (tmp_path / "teacher" / "teacher.int8.onnx").is_file()
    assert fp32["max_abs_logit_diff"] <= 1e-3 and fp32["label_agreement"] == 1.0  # fp32 ONNX is PyTorch
    for r in rows:
        assert set(r["latency_ms"]) == {"t1_b1", "t2_b1", "t1_b32", "t2_b32"} and 0 <= r["dev_metric"] <= 1
        assert r["bytes"] > 0 and r["precision"] in r["variant"]
    # the fp32 classifier: a text alone gets the logits it gets in a padded batch
    clf = clfs["teacher_onnx_fp32"]
    batch = clf.logits(split.texts[:5])
    alone = np.concatenate([clf.logits([t]) for t in split.texts[:5]])
    assert np.abs(batch - alone).max() < 1e-4 and list(clf.predict(split.texts[:5])) == list(batch.argmax(-1))
    times = rotated_latency({v: c.predict for v, c in clfs.items()}, split.texts, requests=6, block=3, warmup=1)
    assert set(times) == set(clfs) and all(t["requests"] == 6 for t in times.values())
