"""Benchmark: each student distilled on the shipped SST-2 label set, as PyTorch fp32, ONNX fp32,
ONNX int8 and ExecuTorch, against BERT-base in PyTorch and against the teacher itself on ONNX
Runtime (fp32 and dynamic int8: what one could ship without distilling).

    .venv/bin/python scripts/bench_export.py                    # after scripts/bench_students.py
    .venv/bin/python scripts/bench_export.py --students bilstm --repeats 20
    .venv/bin/python scripts/bench_export.py --quick            # timing only: students trained 30 steps

For each student in runs/bench/<student>-distilled (trained by scripts/bench_students.py), this
exports the bundles with `distill.export` into exports/bench/ and measures, in one process:
- the model file's size (PyTorch: model.safetensors);
- CPU latency of one forward pass, median ms, at batch 1 and 32, at the typical SST-2 length (the
  median dev length in student tokens), with 1 and 2 threads; the tokenizer is not timed;
- the parity figures of the export (max |logit difference| and label agreement with the PyTorch
  student on the dev set, through the bundled tokenizer), and the dev accuracy of each;
- end to end (e2e), for every row: whole requests, tokenizer included, at 1 thread, through the
  Python API that `distill.predict` uses (`Bundle.predict`), the teacher through its fast tokenizer
  and an ONNX Runtime session; one SST-2 dev sentence per request (and 32 at batch 32), every
  system warm in one process, timed in blocks of requests rotated across the systems (see
  distill/bundle/latency.py); ratios against the teacher's ONNX int8 of the same run.
The teacher rows (--teacher, default ../shared/teachers/minilm-sst2; skipped if absent) export it
with the code `distill.label --runtime onnx|onnx-int8` uses, into <exports>/teacher.
The ONNX int8 row is the int8 model whether or not `distill.export --quantize int8` kept it (it
keeps int8 only if it is not slower than fp32); the table says which one it ships. It is quantized
and run as the export ships it: the CNN statically, calibrated on its label set's training rows,
a batch in one call; the BiLSTM and the transformer dynamically, one text per call. ExecuTorch
programs take a fixed batch, so batch 1 and batch 32 are two exports; the BiLSTM's has a fixed
length too (--max-length 64 here, longer than every SST-2 dev sentence), and inputs are padded
to it. Results go to scripts/results/bench_export.{json,md} and into README.md between the
bench_export markers; with --quick, to scripts/results/bench_export_quick.{json,md} only (its students
are trained for timing alone: their accuracy means nothing).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import publish

from distill import export
from distill.bundle.check import calibration_feeds, dev_rows, parity
from distill.bundle.files import versions
from distill.bundle.latency import rotated_latency
from distill.bundle.onnx import quantize_onnx
from distill.bundle.policy import int8_batch_policy
from distill.bundle.runtime import METADATA, Bundle
from distill.data import compute_metric
from distill.errors import DistillError
from distill.teacher import onnx_teacher
from distill.teacher.labelset import (
    DEFAULT_LABELS,
    LabelSet,
)
from distill.training.report import median_ms, random_model, teacher_inputs
from distill.training.runfolder import load_run
from distill.training.student import teacher_length

STUDENTS = ("bilstm", "cnn", "transformer")
THREADS = (1, 2)
BATCHES = (1, 32)
ET_BILSTM_LENGTH = 64  # SST-2 dev sentences have at most 53 student tokens
TARGETS = {"bilstm_min_speedup_b1": 30.0, "bilstm_max_mb": 15.0, "bilstm_max_drop_points": 0.5,
           "cnn_min_speedup_b1": 100.0}
# end to end (tokenizer + model, one request at a time, 1 thread) against the teacher's ONNX int8
E2E_TARGETS = {"bilstm_b1": 6.0, "cnn_b1": 10.0, "b32_rows_per_s": 10.0}
E2E_THREADS = 1
TEACHER = ROOT.parent / "shared" / "teachers" / "minilm-sst2"
QUICK_STEPS = 30  # --quick: students trained this many steps, for timing only


def log(msg: str) -> None:
    print(msg, flush=True)


def export_bundle(run_dir: Path, out: Path, *flags: str) -> dict:
    """distill.export into `out` (replacing it): the bundle's metadata, or {"refused": message}."""
    t0 = time.perf_counter()
    log(f"== python -m distill.export {run_dir} --output-dir {out} {' '.join(flags)}")
    try:
        meta = export.run(export.parse_args([str(run_dir), "--output-dir", str(out), "--overwrite", *flags]))
    except DistillError as e:  # e.g. int8 below 99% agreement: the table says so
        log(f"   refused: {e}")
        return {"refused": str(e), "bench_export_seconds": round(time.perf_counter() - t0, 1)}
    meta["bench_export_seconds"] = round(time.perf_counter() - t0, 1)
    return meta


def int8_candidate(fp32_bundle: Path, out: Path, student: str, calibration_texts: list) -> Path:
    """A copy of the fp32 ONNX bundle whose model.onnx is the int8 one, quantized and run as distill.export would
    ship it (static students calibrated on the training rows; dynamic ones one text per call), for timing it."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(fp32_bundle, out)
    quantize_onnx(fp32_bundle / "model.onnx", out / "model.onnx", student,
                  calibration=calibration_feeds(fp32_bundle, student, calibration_texts))
    meta = json.loads((out / METADATA).read_text())
    meta["batch_policy"] = int8_batch_policy(student)
    (out / METADATA).write_text(json.dumps(meta, indent=2))
    return out


def inputs(batch: int, length: int, padded_to: int, vocab: int, pad_id: int, rng_seed: int = 0):
    """Random ids (batch, padded_to) with `length` real tokens per row, as int64 numpy arrays."""
    rng = np.random.default_rng(rng_seed)
    ids = rng.integers(min(2, vocab - 1), vocab, size=(batch, padded_to), dtype=np.int64)
    mask = np.zeros_like(ids)
    mask[:, :length] = 1
    ids[mask == 0] = pad_id
    return ids, mask


def time_fn(fn, batch: int, repeats: int) -> float:
    n = repeats if batch == 1 else max(3, repeats // 4)
    return round(median_ms(fn, warmup=min(5, n), repeats=n), 4)


def time_student(student: str, run_dir: Path, bundles: dict, length: int, repeats: int) -> dict:
    """{variant: {f"t{threads}_b{batch}": ms}} for PyTorch and every bundle of one student."""
    model, tok, _ = load_run(run_dir)
    out = {v: {} for v in ["pytorch_fp32", *bundles]}
    for threads in THREADS:
        torch.set_num_threads(threads)
        loaded = {}
        for variant, paths in bundles.items():
            loaded[variant] = {b: Bundle(p, threads=threads) for b, p in paths.items()}
        for batch in BATCHES:
            key = f"t{threads}_b{batch}"
            ids, mask = inputs(batch, length, length, tok.vocab_size, tok.pad_id)
            ti, tm = torch.from_numpy(ids), torch.from_numpy(mask)
            with torch.inference_mode():
                out["pytorch_fp32"][key] = time_fn(lambda ti=ti, tm=tm: model(ti, tm), batch, repeats)
            for variant, by_batch in loaded.items():
                bundle = by_batch.get(batch) or by_batch.get(None)
                if bundle is None:
                    continue
                T = bundle.max_length if bundle.fixed_length else length
                ids, mask = inputs(batch, length, T, tok.vocab_size, tok.pad_id)
                out[variant][key] = time_fn(lambda b=bundle, i=ids, m=mask: b.run(i, m), batch, repeats)
            log(f"   {student} {key}: " + ", ".join(f"{v} {t.get(key, float('nan')):.3f}"
                                                   for v, t in out.items()))
    return out


def time_bert_base(length: int, repeats: int) -> dict:
    from transformers import BertConfig

    model = random_model(BertConfig(num_labels=2)).eval()
    make = teacher_inputs(30522, length, "bert")
    out = {"bytes": 4 * sum(p.numel() for p in model.parameters())}  # fp32
    for threads in THREADS:
        torch.set_num_threads(threads)
        for batch in BATCHES:
            x = make(batch)
            with torch.inference_mode():
                out[f"t{threads}_b{batch}"] = time_fn(lambda x=x: model(**x), batch, max(5, repeats // 4))
            log(f"   BERT-base t{threads}_b{batch}: {out[f't{threads}_b{batch}']:.2f} ms")
    return out


def teacher_rows(teacher: Path, work: Path, ls: LabelSet, length: int, repeats: int) -> tuple[list[dict], dict]:
    """The competitor that needs no distilling: the teacher exported to ONNX (fp32, and ONNX Runtime's
    dynamic int8), by the code `distill.label --runtime onnx|onnx-int8` uses. Rows as the students' (size,
    model latency at `length` tokens, dev metric, agreement with PyTorch), and {variant: classifier}."""
    from distill.teacher.load import load_teacher

    model, tokenizer = load_teacher(str(teacher), ls.task, torch.device("cpu"))
    max_length = ls.teacher.get("max_length", 512)
    work.mkdir(parents=True, exist_ok=True)
    log(f"== exporting the teacher {teacher} to ONNX (fp32, int8) in {work}")
    fp32 = onnx_teacher.export_teacher(model, tokenizer, work / "teacher.onnx", max_length)
    paths = {"teacher_onnx_fp32": fp32,
             "teacher_onnx_int8": onnx_teacher.quantize_teacher(fp32, work / "teacher.int8.onnx")}
    n_labels = model.config.num_labels
    dev = ls.splits["dev"]
    with torch.inference_mode():
        enc = tokenizer(*map(list, zip(*dev.texts)), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        pt = torch.cat([model(**{k: v[i:i + 32] for k, v in enc.items()}).logits
                        for i in range(0, len(dev), 32)]).numpy()
    rows, classifiers = [], {}
    for variant, path in paths.items():
        clf = onnx_teacher.OnnxTeacherClassifier(path, tokenizer, max_length, n_labels, threads=E2E_THREADS)
        logits = np.concatenate([clf.logits([t]) for t in dev.texts])  # one at a time, as served
        lat = {}
        for threads in THREADS:
            sess = onnx_teacher.OnnxTeacherClassifier(path, tokenizer, max_length, n_labels, threads).model
            for batch in BATCHES:
                ids, mask = inputs(batch, length, length, tokenizer.vocab_size, tokenizer.pad_token_id or 0)
                x = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
                lat[f"t{threads}_b{batch}"] = time_fn(lambda x=x, s=sess: s(x), batch, max(5, repeats // 2))
        log(f"   {variant}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in lat.items()))
        precision = variant.rsplit("_", 1)[1]
        rows.append({"student": "teacher", "variant": variant, "format": "ONNX", "precision": precision,
                     "bytes": path.stat().st_size, "latency_ms": lat,
                     "dev_metric": compute_metric(ls.task.metric, logits.argmax(-1), dev.labels),
                     "max_abs_logit_diff": float(np.abs(logits - pt).max()),
                     "label_agreement": float((logits.argmax(-1) == pt.argmax(-1)).mean()), "ships": True,
                     "note": f"{teacher.name}, no distilling" + (": quantize_dynamic MatMul+Gather, per channel"
                                                                 if precision == "int8" else "")})
        classifiers[variant] = clf
    return rows, classifiers


def time_end_to_end(systems: dict[str, dict], texts: list, requests: int, block: int) -> dict:
    """{name: {"b1": times, "b32": times}} of whole requests (tokenizer included), every system timed in
    the same blocks rotated across systems (see distill.bundle.latency); `systems` maps a name to
    {batch: callable(texts)} (a fixed-batch program has one per batch)."""
    torch.set_num_threads(E2E_THREADS)
    out = {name: {} for name in systems}
    for batch in BATCHES:
        fns = {name: by[batch] for name, by in systems.items() if batch in by}
        n = requests if batch == 1 else max(20, requests // 10)
        log(f"== end to end, batch {batch}: {n} requests per system, blocks of {max(1, min(block, n // 5))}, "
            f"{len(fns)} systems in turn")
        times = rotated_latency(fns, texts, batch=batch, requests=n, block=max(1, min(block, n // 5)))
        for name, t in times.items():
            out[name][f"b{batch}"] = t
            log(f"   {name} b{batch}: median {t['median_ms']:.3f} ms, p90 {t['p90_ms']:.3f} ms")
    return out


def student_systems(run_dir: Path, bundles: dict) -> dict[str, dict]:
    """{variant: {batch: predict(texts)}} of one student: each bundle through `Bundle.predict` (what
    `distill.predict` runs), and the PyTorch student behind the same bundled tokenizer."""
    model, _, _ = load_run(run_dir)
    out = {}
    for variant, by_batch in bundles.items():
        loaded = {b: Bundle(p, threads=E2E_THREADS) for b, p in by_batch.items()}
        out[variant] = {b: loaded.get(b, loaded.get(None)).predict for b in BATCHES
                        if b in loaded or None in loaded}
    enc = Bundle(bundles["onnx_fp32"][None], threads=E2E_THREADS).encode

    def pytorch(texts):
        ids, mask, _ = enc(texts)
        with torch.inference_mode():
            return model(torch.from_numpy(ids), torch.from_numpy(mask)).argmax(-1)
    out["pytorch_fp32"] = {b: pytorch for b in BATCHES}
    return out


def bench(runs: Path, exports: Path, students: tuple[str, ...], repeats: int, teacher: Path | None = TEACHER,
          requests: int = 500, block: int = 100, executorch: bool = True, quick: bool = False) -> dict:
    ls = LabelSet.load(DEFAULT_LABELS)
    t_len = teacher_length(ls)
    rows, lengths, refused, to_serve = [], {}, [], []
    for s in students:
        run_dir = runs / f"{s}-distilled"
        if not (run_dir / "report.json").is_file():
            sys.exit(f"error: {run_dir} holds no trained student; run scripts/bench_students.py first")
        report = json.loads((run_dir / "report.json").read_text())
        b = exports / s
        metas = {
            "onnx_fp32": export_bundle(run_dir, b / "onnx"),
            "onnx_int8": export_bundle(run_dir, b / "onnx-int8", "--quantize", "int8"),
        }
        et_flags = ["--format", "executorch"] + (["--max-length", str(ET_BILSTM_LENGTH)] if s == "bilstm" else [])
        if executorch:
            metas["executorch"] = export_bundle(run_dir, b / "executorch", *et_flags)
            metas["executorch_b32"] = export_bundle(run_dir, b / "executorch-b32", *et_flags, "--batch-size", "32")
        else:
            metas["executorch"] = metas["executorch_b32"] = {"refused": "not asked for (--no-executorch)"}
        if "refused" in metas["onnx_fp32"]:
            sys.exit(f"error: the fp32 ONNX export of {s} failed: {metas['onnx_fp32']['refused']}")
        et_ok = "refused" not in metas["executorch"] and "refused" not in metas["executorch_b32"]
        if not et_ok and executorch:
            why = metas["executorch"].get("refused") or metas["executorch_b32"]["refused"]
            refused.append(f"{s} ExecuTorch: {why}")
        model, _, config = load_run(run_dir)
        dev = dev_rows(config, None, 1000)
        cand = int8_candidate(b / "onnx", b / "onnx-int8-candidate", s, dev.calibration)
        cand_parity = parity(Bundle(cand), model, dev)
        length = metas["onnx_fp32"]["parity"]["median_length"]
        lengths[s] = length
        bundles = {"onnx_fp32": {None: b / "onnx"}, "onnx_int8": {None: cand}}
        if et_ok:
            bundles["executorch"] = {1: b / "executorch", 32: b / "executorch-b32"}
        log(f"== timing {s} at {length} tokens")
        lat = time_student(s, run_dir, bundles, length, repeats)
        to_serve.append((s, run_dir, bundles))
        q = metas["onnx_int8"].get("quantization")
        if q is None:
            int8_note, int8_ships = metas["onnx_int8"]["refused"], False
        else:
            int8_note = "int8 " + "+".join(q["op_types"]) if q["kept"] else q["reason"]
            int8_ships = q["kept"]
        et = metas["executorch"]
        new_rows = [
            {"student": s, "variant": "pytorch_fp32", "format": "PyTorch", "precision": "fp32",
             "bytes": (run_dir / "model.safetensors").stat().st_size, "latency_ms": lat["pytorch_fp32"],
             "dev_metric": report["student"]["dev_metric"], "max_abs_logit_diff": None,
             "label_agreement": None, "ships": True, "note": "the trained student"},
            {"student": s, "variant": "onnx_fp32", "format": "ONNX", "precision": "fp32",
             "bytes": metas["onnx_fp32"]["model_bytes"], "latency_ms": lat["onnx_fp32"],
             "dev_metric": metas["onnx_fp32"]["parity"]["bundle_metric"],
             "max_abs_logit_diff": metas["onnx_fp32"]["parity"]["max_abs_logit_diff"],
             "label_agreement": metas["onnx_fp32"]["parity"]["label_agreement"], "ships": True,
             "note": "dynamic batch and length"},
            {"student": s, "variant": "onnx_int8", "format": "ONNX", "precision": "int8",
             "bytes": (cand / "model.onnx").stat().st_size, "latency_ms": lat["onnx_int8"],
             "dev_metric": cand_parity["bundle_metric"],
             "max_abs_logit_diff": cand_parity["max_abs_logit_diff"],
             "label_agreement": cand_parity["label_agreement"], "ships": int8_ships,
             "note": int8_note},
            None if not et_ok else
            {"student": s, "variant": "executorch", "format": "ExecuTorch", "precision": "fp32",
             "bytes": et["model_bytes"], "latency_ms": lat["executorch"],
             "dev_metric": et["parity"]["bundle_metric"],
             "max_abs_logit_diff": et["parity"]["max_abs_logit_diff"],
             "label_agreement": et["parity"]["label_agreement"], "ships": True,
             "note": "XNNPACK, fixed batch, " + ("dynamic length" if et["length"]["dynamic"]
                                                else f"fixed length {et['max_length']}")},
        ]
        for r in new_rows:
            if r is not None:
                r["export_seconds"] = metas.get(r["variant"], {}).get("bench_export_seconds")
                rows.append(r)
    log(f"== timing BERT-base at {t_len} tokens")
    bert = time_bert_base(t_len, repeats)
    # loaded after all model timing: an ExecuTorch bundle sets its (process-wide) thread pool when loaded
    systems = {(s, v): fns for s, run_dir, bundles in to_serve for v, fns in student_systems(run_dir, bundles).items()}
    if teacher is not None and (teacher / "config.json").is_file():
        t_rows, clfs = teacher_rows(teacher, exports / "teacher", ls, t_len, repeats)
        rows = t_rows + rows
        systems |= {("teacher", v): {b: clf.predict for b in BATCHES} for v, clf in clfs.items()}
    else:
        log(f"== no teacher at {teacher}: the teacher's ONNX rows and the end-to-end ratios are skipped")
    for r in rows:
        r["speedup_vs_bert_base"] = {k: round(bert[k] / v, 1) for k, v in r["latency_ms"].items()}
    e2e = time_end_to_end({f"{s} {v}": fns for (s, v), fns in systems.items()},
                          list(ls.splits["dev"].texts), requests, block)
    ref = e2e.get("teacher teacher_onnx_int8")
    for r in rows:
        r["e2e"] = e2e[f"{r['student']} {r['variant']}"]
        r["e2e_vs_teacher_int8"] = None if ref is None else {
            k: round(t["rows_per_s"] / ref[k]["rows_per_s"], 2) for k, t in r["e2e"].items()}
    return {"task": "sst2", "label_set": ls.path.name, "bert_base_latency_ms": bert, "quick": quick,
            "e2e": {"threads": E2E_THREADS, "requests_b1": requests, "block": block,
                    "teacher": str(teacher) if ref is not None else None},
            "lengths": {"teacher_tokens": t_len, "student_tokens": lengths},
            "threads": list(THREADS), "batches": list(BATCHES), "repeats_b1": repeats,
            "cpu": platform.processor() or platform.machine(), "rows": rows, "refused": refused,
            "targets": targets(rows) | e2e_targets(rows, quick),
            "versions": versions("onnx") | versions("executorch")}


def targets(rows: list[dict]) -> dict:
    """The issue's targets, checked on the best shipped bundle of each student (1 thread, batch 1)."""
    def bundles(s):  # what `distill.export` ships (an int8 model it refused is not a bundle)
        return [r for r in rows if r["student"] == s and r["format"] != "PyTorch" and r["ships"]]

    out = {}
    torch_acc = {r["student"]: r["dev_metric"] for r in rows if r["format"] == "PyTorch"}
    bl = bundles("bilstm")
    if bl:
        T = TARGETS
        ok = [r for r in bl if r["bytes"] / 1e6 < T["bilstm_max_mb"]
              and 100 * (torch_acc["bilstm"] - r["dev_metric"]) <= T["bilstm_max_drop_points"]]
        best = max(ok or bl, key=lambda r: r["speedup_vs_bert_base"]["t1_b1"])
        drop = round(100 * (torch_acc["bilstm"] - best["dev_metric"]), 2)
        out["bilstm"] = {
            "best": f"{best['format']} {best['precision']}", "ships": best["ships"],
            "speedup_vs_bert_base_b1": best["speedup_vs_bert_base"]["t1_b1"],
            "mb": round(best["bytes"] / 1e6, 2), "drop_points": drop,
            "met": {"speedup": best["speedup_vs_bert_base"]["t1_b1"] >= T["bilstm_min_speedup_b1"],
                    "size": best["bytes"] / 1e6 < T["bilstm_max_mb"],
                    "accuracy": drop <= T["bilstm_max_drop_points"]}}
    cn = bundles("cnn")
    if cn:
        best = max(cn, key=lambda r: r["speedup_vs_bert_base"]["t1_b1"])
        out["cnn"] = {"best": f"{best['format']} {best['precision']}", "ships": best["ships"],
                      "speedup_vs_bert_base_b1": best["speedup_vs_bert_base"]["t1_b1"],
                      "met": {"speedup": best["speedup_vs_bert_base"]["t1_b1"] >= TARGETS["cnn_min_speedup_b1"]}}
    return out


def e2e_targets(rows: list[dict], quick: bool = False) -> dict:
    """The end-to-end targets against the teacher's ONNX int8 (1 thread): the fastest bundle of each student
    that `distill.export` ships (in --quick mode, whatever it ships means nothing: any bundle)."""
    out = {}
    for s, key in (("bilstm", "bilstm_b1"), ("cnn", "cnn_b1")):
        cands = [r for r in rows if r["student"] == s and r["format"] != "PyTorch" and (quick or r["ships"])
                 and r["e2e_vs_teacher_int8"] is not None]
        if not cands:
            continue
        b1 = max(cands, key=lambda r: r["e2e_vs_teacher_int8"]["b1"])
        b32 = max((r for r in cands if "b32" in r["e2e_vs_teacher_int8"]),
                  key=lambda r: r["e2e_vs_teacher_int8"]["b32"])
        x1, x32 = b1["e2e_vs_teacher_int8"]["b1"], b32["e2e_vs_teacher_int8"]["b32"]
        out[f"e2e_{s}"] = {"best_b1": f"{b1['format']} {b1['precision']}", "vs_teacher_int8_b1": x1,
                           "best_b32": f"{b32['format']} {b32['precision']}", "vs_teacher_int8_b32": x32,
                           "met": {"b1": x1 >= E2E_TARGETS[key], "b32": x32 >= E2E_TARGETS["b32_rows_per_s"]}}
    return out


def render(res: dict) -> str:
    bert = res["bert_base_latency_ms"]
    quick = res.get("quick", False)
    lines = [f"**Quick mode**: every student trained {QUICK_STEPS} steps, for timing only: its dev acc, "
             "agreement and logit difference are not meaningful (latency depends on the architecture alone).", ""
             ] if quick else []
    lines += [
        "| student | format | precision | size MB | b1 ms (1 / 2 thr) | b32 ms (1 / 2 thr) "
        "| vs BERT-base b1 (1 thr) | e2e b1 ms median / p90 | e2e b32 rows/s | e2e vs teacher int8 b1 / b32 "
        "| max logit diff | agreement | dev acc | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| BERT-base (reference) | PyTorch | fp32 | {bert['bytes'] / 1e6:.0f} "
        f"| {bert['t1_b1']:.2f} / {bert['t2_b1']:.2f} "
        f"| {bert['t1_b32']:.1f} / {bert['t2_b32']:.1f} | 1x | — | — | — | — | — | — | random weights, speed only |",
    ]
    for r in res["rows"]:
        e, x = r["e2e"], r["e2e_vs_teacher_int8"]
        e2e = (f"| {e['b1']['median_ms']:.2f} / {e['b1']['p90_ms']:.2f} | {e['b32']['rows_per_s']:.0f} "
               + ("| — " if x is None else f"| {x['b1']:.1f}x / {x['b32']:.1f}x "))
        acc = f"{100 * r['dev_metric']:.2f}" + ("*" if quick and r["student"] != "teacher" else "")
        lat = r["latency_ms"]
        diff = "—" if r["max_abs_logit_diff"] is None else f"{r['max_abs_logit_diff']:.1e}"
        agree = "—" if r["label_agreement"] is None else f"{100 * r['label_agreement']:.2f}%"
        note = r["note"] if r["ships"] else f"not shipped: {r['note'].split(';')[0]}"
        lines.append(
            f"| {r['student']} | {r['format']} | {r['precision']} | {r['bytes'] / 1e6:.1f} "
            f"| {lat['t1_b1']:.2f} / {lat['t2_b1']:.2f} | {lat['t1_b32']:.2f} / {lat['t2_b32']:.2f} "
            f"| {r['speedup_vs_bert_base']['t1_b1']:.0f}x {e2e}| {diff} | {agree} "
            f"| {acc} | {note} |")
    lens = res["lengths"]
    lines += ["", f"SST-2 dev (872 sentences). Latency: median ms of one forward pass on {res['cpu']}, "
              f"{lens['teacher_tokens']} tokens for BERT-base and the median dev length in student "
              f"tokens for the students ({', '.join(f'{k} {v}' for k, v in lens['student_tokens'].items())}); "
              "tokenization not included. Agreement and logit difference: exported model vs the "
              "PyTorch student on the dev set through the bundled tokenizer. ExecuTorch: batch 1 and "
              f"batch 32 are two programs (fixed batch); its BiLSTM pads every input to "
              f"{ET_BILSTM_LENGTH} tokens. Teacher rows: agreement and logit difference against the "
              "teacher in PyTorch; dev acc one sentence at a time."]
    e = res["e2e"]
    lines += ["", f"End to end (e2e): whole requests through the Python API, tokenizer included, {e['threads']} "
              "thread: the students' bundles through `Bundle.predict` (what `distill.predict` runs; the PyTorch "
              "student behind the bundled tokenizer), the teacher through its fast tokenizer and an ONNX Runtime "
              f"session. {e['requests_b1']} requests of one SST-2 dev sentence per system (a tenth as many of 32 "
              "at batch 32), all systems warm in one process, timed in blocks of requests ROTATED across "
              "systems (A's block, B's, C's, A's, ...) so that the loaded machine's drift hits all alike; "
              "ratios are rows/s against the teacher's ONNX int8 row of the same run."]
    lines += [f"Not exported: {r}" for r in res["refused"]]
    t = res["targets"]
    if "bilstm" in t:
        b = t["bilstm"]
        lines.append(
            f"Targets: best BiLSTM bundle ({b['best']}) {b['speedup_vs_bert_base_b1']:.0f}x faster than "
            f"BERT-base at batch 1 (target 30x: {'met' if b['met']['speedup'] else 'NOT met'}), "
            f"{b['mb']:.1f} MB (< 15 MB: {'met' if b['met']['size'] else 'NOT met'}), "
            f"{b['drop_points']:+.2f} points from PyTorch (<= 0.5: "
            f"{'met' if b['met']['accuracy'] else 'NOT met'})"
            + ("" if b["ships"] else "; note: distill.export does not ship it on this CPU") + ".")
    if "cnn" in t:
        c = t["cnn"]
        lines.append(f"Best CNN bundle ({c['best']}) {c['speedup_vs_bert_base_b1']:.0f}x faster than "
                     f"BERT-base at batch 1 (target 100x: {'met' if c['met']['speedup'] else 'NOT met'}).")
    for s, key in (("bilstm", "bilstm_b1"), ("cnn", "cnn_b1")):
        if f"e2e_{s}" in t:
            c = t[f"e2e_{s}"]
            lines.append(
                f"End-to-end target, {s}: best bundle at batch 1 ({c['best_b1']}) {c['vs_teacher_int8_b1']:.1f}x "
                f"the teacher's ONNX int8 (target {E2E_TARGETS[key]:.0f}x: {'met' if c['met']['b1'] else 'NOT met'}); "
                f"at batch 32 ({c['best_b32']}) {c['vs_teacher_int8_b32']:.1f}x in rows/s (target "
                f"{E2E_TARGETS['b32_rows_per_s']:.0f}x: {'met' if c['met']['b32'] else 'NOT met'}).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--runs", default=None, help="folder of <student>-distilled runs (default: runs/bench)")
    p.add_argument("--exports", default=None, help="where the bundles go (default: exports/bench)")
    p.add_argument("--students", nargs="+", default=list(STUDENTS), choices=STUDENTS)
    p.add_argument("--repeats", type=int, default=50, help="timed passes at batch 1 (a quarter at 32)")
    p.add_argument("--no-readme", action="store_true", help="do not write the table into README.md")
    p.add_argument("--teacher", default=str(TEACHER), help="the fine-tuned teacher folder for the ONNX rows "
                   "(skipped if absent)")
    p.add_argument("--requests", type=int, default=500, help="end-to-end requests per system at batch 1")
    p.add_argument("--block", type=int, default=100, help="requests per system before the next system's turn")
    p.add_argument("--no-executorch", action="store_true", help="ONNX bundles only")
    p.add_argument("--tag", default=None, help="a variant's results (say, another BiLSTM width): written to "
                   "scripts/results/bench_export_TAG.{json,md}, not into README.md")
    p.add_argument("--quick", action="store_true",
                   help=f"for timing only: train each student {QUICK_STEPS} steps (1 thread) into "
                   "runs/bench-quick unless --runs is given; accuracy is not meaningful, nothing goes to "
                   "README.md, results go to scripts/results/bench_export_quick.*")
    args = p.parse_args(argv)
    runs = Path(args.runs or ROOT / "runs" / ("bench-quick" if args.quick else "bench"))
    if args.quick:
        from bench_students import train_all

        train_all(runs, tuple(args.students), {"distilled": ["--max-steps", str(QUICK_STEPS), "--threads", "1"]})
    exports = Path(args.exports or ROOT / "exports" / ("bench-quick" if args.quick else "bench"))
    res = bench(runs, exports, tuple(args.students), args.repeats, Path(args.teacher),
                args.requests, args.block, executorch=not args.no_executorch, quick=args.quick)
    md = render(res)
    name = "bench_export_quick" if args.quick else f"bench_export_{args.tag}" if args.tag else "bench_export"
    publish(name, res, md, readme=not (args.no_readme or args.quick or args.tag))


if __name__ == "__main__":
    main()
