"""Labelling: the teacher's logits on a dataset (and augmented copies of it), computed once.

Labelling runs under `torch.inference_mode` in length-sorted batches (far less padding than a fixed
length), on the GPU when there is one, with a progress bar. It works through the data in chunks
and saves each finished chunk atomically, so a killed run resumes where it stopped. The finished
label set is assembled in a temporary folder and renamed into place; a second run with the same
teacher, data and settings finds it by its key and reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from distill.cli import progress_bar
from distill.data.augment import MASK, AugmentConfig, augment_split, rules
from distill.data.batching import longest_first_batches
from distill.data.metrics import majority_baseline
from distill.data.sources import content_hash
from distill.data.tasks import Split, Task, safe_name
from distill.errors import DistillError
from distill.outputs import check_output, hold_lock, staged
from distill.teacher import contextual, onnx_teacher
from distill.teacher.labelset import FORMAT_VERSION, LabelSet, write_label_set
from distill.teacher.load import count_hf_parameters, default_device, fingerprint, load_teacher

CHUNK_ROWS = 2048  # rows per resumable unit of work


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[tuple[str, ...]], max_length: int,
                   batch_size: int, device: torch.device) -> np.ndarray:
    """Teacher logits (N, C) for `texts`, computed in length-sorted batches."""
    mask_token = getattr(tokenizer, "mask_token", None) or tokenizer.unk_token
    if mask_token != MASK:  # augmented words masked with our placeholder: the teacher's own mask
        texts = [tuple(t.replace(MASK, mask_token) for t in row) for row in texts]
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    on_ort = isinstance(model, onnx_teacher.OnnxTeacher)  # the same batches, run by ONNX Runtime
    for idx, enc in longest_first_batches(tokenizer, texts, max_length, batch_size, "np" if on_ort else "pt"):
        out[idx] = model(enc) if on_ort else model(**enc.to(device)).logits.float().cpu().numpy()
    return out


def used_token_ids(tokenizer, texts: list[tuple[str, ...]], max_length: int) -> list[int]:
    """Sorted ids of every token the texts use, special tokens included."""
    used = set(tokenizer.all_special_ids)
    for i in range(0, len(texts), 8192):
        cols = list(zip(*texts[i : i + 8192]))
        for ids in tokenizer(*cols, truncation=True, max_length=max_length)["input_ids"]:
            used.update(ids)
    return sorted(used)


def compute_key(teacher_fp: str, data_hash: str, task: Task, max_length: int,
                augment: AugmentConfig | None = None, transfer_hash: str | None = None,
                embedding_rows: str = "all", runtime: str = "torch", contextual_layer: int | None = None) -> str:
    fields = {"format": FORMAT_VERSION, "teacher": teacher_fp, "data": data_hash,
              "task": task.to_dict(), "max_length": max_length,
              "augment": asdict(augment) if augment else None, "transfer": transfer_hash,
              "embedding_rows": embedding_rows}
    if contextual_layer is not None:  # keys made without a contextual table stay valid
        fields["contextual_layer"] = contextual_layer
    # Only int8 changes the labels: fp32 ONNX is checked to within 1e-3 of PyTorch (far below what
    # a student can learn from), so torch and onnx label sets share a key, reuse each other and
    # resume each other's chunks; keys made before --runtime existed stay valid.
    if runtime == "onnx-int8":
        fields["runtime"] = runtime
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def resolve_layer(contextual_layer: str, model) -> int | None:
    """--contextual-layer as a layer number of this teacher (None: 'none'); a one-line error if out of range."""
    if contextual_layer == "none":
        return None
    try:
        n = contextual.num_layers(model)
    except ValueError:
        if contextual_layer == "middle":  # a teacher without the usual config: no table, not a failure
            return None
        raise DistillError(f"--contextual-layer {contextual_layer}: the teacher's config has no "
                           "num_hidden_layers; use --contextual-layer none") from None
    if contextual_layer == "middle":
        return contextual.default_layer(n)
    try:
        layer = int(contextual_layer)
    except ValueError:
        raise DistillError(f"--contextual-layer {contextual_layer}: write middle, none or a layer number") from None
    if not 0 <= layer <= n:
        raise DistillError(f"--contextual-layer {layer}: this teacher has layers 0 (its embeddings) to {n}")
    return layer


def label(
    teacher_name: str, task: Task, splits: dict[str, Split], output_dir: str | Path | None,
    max_length: int = 128, batch_size: int = 64, device: torch.device | None = None,
    trust_remote_code: bool = False, data_source: str = "", progress: bool = True,
    augment: AugmentConfig | None = None, transfer: list[tuple[str, ...]] | None = None,
    transfer_source: str = "", embedding_rows: str = "all", runtime: str = "torch",
    threads: int | None = None, shard: tuple[int, int] | None = None, merge: list[str | Path] | None = None,
    contextual_layer: str = "none",
) -> LabelSet | None:
    """Label `splits` with the teacher into `output_dir`, reusing a finished identical label set.

    `output_dir=None`: the cache, in a folder named by the label set's key (cache_dir()/labels).
    With `augment`, the training split gains up to `augment.copies` augmented copies of each
    example; with `transfer`, unlabeled texts. The teacher labels them all; their gold label is -1.
    `embedding_rows="used"` stores only the teacher embedding rows of tokens the texts contain.
    `runtime`: torch, onnx (the teacher exported to ONNX and run by ONNX Runtime on the CPU with
    `threads`, default torch's, checked against PyTorch on its first chunk) or onnx-int8 (its dynamic
    int8 quantization, refused if it agrees with the fp32 teacher on fewer than 99% of dev labels).
    `shard=(K, N)`: label only the chunks whose index (over all splits) % N == K-1, into the work
    folder, and return None; `merge`: shard output folders (or work folders) whose chunks join this
    one's, after which every chunk must be there (nothing is labelled) and the label set is written.
    `contextual_layer`: 'middle', 'none' or a layer number: the layer whose hidden states, pooled per
    token over the original training rows, are stored for `--embedding-init teacher-contextual`.
    """
    with contextlib.ExitStack() as held:  # the lock on the label set's folder, held until the end
        return _label(held, teacher_name, task, splits, output_dir, max_length, batch_size, device,
                      trust_remote_code, data_source, progress, augment, transfer, transfer_source, embedding_rows,
                      runtime, threads, shard, merge, contextual_layer)


def _label(held: contextlib.ExitStack, teacher_name, task, splits, output_dir, max_length, batch_size, device,
           trust_remote_code, data_source, progress, augment, transfer, transfer_source, embedding_rows,
           runtime, threads, shard, merge, contextual_layer) -> LabelSet | None:
    from distill.data.metrics import compute_metric

    if runtime not in onnx_teacher.RUNTIMES:
        raise DistillError(f"--runtime {runtime}: choose one of {', '.join(onnx_teacher.RUNTIMES)}")
    if output_dir is not None:
        check_output(Path(output_dir), "label-set")
        held.enter_context(hold_lock(Path(output_dir)))  # a second run on it is refused at once
    locked = output_dir is not None
    if runtime != "torch":
        device = torch.device("cpu")  # ONNX Runtime runs on the CPU; PyTorch checks it there
    device = device or default_device()
    model, tokenizer = load_teacher(teacher_name, task, device, trust_remote_code)
    data_hash = content_hash(splits)
    teacher_fp = fingerprint(model)
    if augment is not None and augment.copies == 0:
        augment = None
    transfer_hash = None
    if transfer:
        transfer_hash = content_hash({"transfer": Split(transfer, np.full(len(transfer), -1))})
    layer = resolve_layer(contextual_layer, model)
    key = compute_key(teacher_fp, data_hash, task, max_length, augment, transfer_hash, embedding_rows, runtime, layer)
    if output_dir is None:
        output_dir = cache_dir() / "labels" / f"{safe_name(task.name)}-{key[:16]}"
    output_dir = Path(output_dir)
    if not locked and is_finished(output_dir, key):  # the cache's finished label set: read, no lock needed
        print(f"reusing label set {output_dir} (same teacher, data and settings)")
        return LabelSet.load(output_dir)
    if not locked:  # the cache's folder for this key, labelled now: one process at a time
        check_output(output_dir, "label-set")
        held.enter_context(hold_lock(output_dir, flag="label cache"))
    if check_output(output_dir, "label-set") == "ours":
        if is_finished(output_dir, key):
            print(f"reusing label set {output_dir} (same teacher, data and settings)")
            return LabelSet.load(output_dir)
        print(f"{output_dir} holds a label set for other inputs; relabelling")

    # The transfer set: originals, then augmented copies, then transfer texts (gold label -1).
    train = splits["train"]
    rows = {"train": len(train), "augmented": 0, "transfer": 0} | {k: len(v) for k, v in splits.items() if k != "train"}
    extra_texts, aug_rate, sources = [], None, [np.arange(len(train))]
    if augment is not None:
        aug_texts, aug_source, aug_rate = augment_split(train.texts, augment, progress)
        extra_texts += aug_texts
        sources.append(np.asarray(aug_source, dtype=np.int64))
        rows["augmented"] = len(aug_texts)
    if transfer:
        extra_texts += list(transfer)
        sources.append(np.full(len(transfer), -1, dtype=np.int64))
        rows["transfer"] = len(transfer)
    origin = {"train": ["train"] * len(train) + ["augmented"] * rows["augmented"] + ["transfer"] * rows["transfer"]}
    source = {"train": np.concatenate(sources)}
    if extra_texts:
        splits = dict(splits)
        splits["train"] = Split(train.texts + extra_texts,
                                np.concatenate([train.labels, np.full(len(extra_texts), -1, dtype=np.int64)]),
                                train.source)

    # Finished chunks live here until the label set is complete: a killed run picks them up.
    work = output_dir.parent / f".{output_dir.name}.partial-{key[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    for src in merge or ():
        _import_shard(Path(src), work, key)
    plan = [(name, c, start) for name, split in splits.items()
            for c, start in enumerate(range(0, len(split), CHUNK_ROWS))]
    mine = {g for g in range(len(plan)) if shard is None or g % shard[1] == shard[0] - 1}
    if merge is not None:
        missing = [f"{n}-{c:05d}" for n, c, _ in plan if not (work / f"{n}-{c:05d}.npy").is_file()]
        if missing:
            raise DistillError(f"cannot merge: {len(missing)} of {len(plan)} chunks are not labelled yet (first: "
                               f"{missing[0]}, in {work}); finish every shard with the same flags first")
    t0 = time.perf_counter()
    total = sum(len(s) for s in splits.values())
    todo = sum(min(CHUNK_ROWS, len(splits[n]) - start) for g, (n, _, start) in enumerate(plan) if g in mine)
    threads = threads or torch.get_num_threads()
    where = f"{device}" if runtime == "torch" else f"ONNX Runtime ({runtime}, CPU, {threads} thread(s))"
    what = f"shard {shard[0]}/{shard[1]} ({todo:,} of {total:,} rows)" if shard else f"{total:,} rows"
    print(f"the teacher labels {what} (" + ", ".join(f"{n:,} {k}" for k, n in rows.items() if n)
          + f") on {where}", flush=True)
    labeller, fp32_onnx, checks = model, None, {}
    if runtime != "torch" and merge is None:
        fp32_onnx = onnx_teacher.OnnxTeacher(onnx_teacher.export_teacher(model, tokenizer, work / "teacher.onnx",
                                                                         max_length),
                                             model.config.num_labels, threads)
        labeller = fp32_onnx
        if runtime == "onnx-int8":
            labeller = onnx_teacher.OnnxTeacher(onnx_teacher.quantize_teacher(work / "teacher.onnx",
                                                                              work / "teacher.int8.onnx"),
                                                model.config.num_labels, threads)
            checks["int8"] = _int8_gate(model, labeller, tokenizer, splits, task, work, max_length,
                                        batch_size, device)
    logits: dict[str, np.ndarray] = {}
    estimated = False
    with progress_bar(total=todo, desc="teacher labelling", unit="row", disable=not progress,
              mininterval=1.0) as bar:
        parts: dict[str, list] = {name: [] for name in splits}
        for g, (name, c, start) in enumerate(plan):
            if g not in mine:
                continue
            chunk_path = work / f"{name}-{c:05d}.npy"
            chunk_texts = splits[name].texts[start : start + CHUNK_ROWS]
            if chunk_path.is_file():
                part = np.load(chunk_path)
            else:
                t_chunk = time.perf_counter()
                part = predict_logits(labeller, tokenizer, chunk_texts, max_length, batch_size, device)
                if fp32_onnx is not None and not (work / "onnx-check.json").is_file():
                    ref = part if labeller is fp32_onnx else predict_logits(
                        fp32_onnx, tokenizer, chunk_texts, max_length, batch_size, device)
                    pt = predict_logits(model, tokenizer, chunk_texts, max_length, batch_size, device)
                    _save_json(work / "onnx-check.json",
                               onnx_teacher.check_parity(ref, pt, f"chunk {name}-{c:05d}"))
                tmp = chunk_path.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, part)
                os.replace(tmp, chunk_path)
                if not estimated and todo > 2 * CHUNK_ROWS:
                    rate = len(chunk_texts) / max(time.perf_counter() - t_chunk, 1e-9)
                    left = todo - bar.n - len(chunk_texts)
                    bar.write(f"labelling: {rate:,.0f} rows/s on the first chunk; about "
                              f"{left / rate / 60:,.1f} min for the remaining {left:,} rows")
                    estimated = True
            parts[name].append(part)
            bar.update(len(chunk_texts))
    if shard is not None:
        seconds = time.perf_counter() - t0
        _save_json(work / f"shard-{shard[0]}-of-{shard[1]}.json", {"shard": list(shard), "rows": todo,
                                                                   "seconds": round(seconds, 1)})
        print(f"shard {shard[0]}/{shard[1]} done: {todo:,} rows in {seconds:.0f}s, chunks in {work}; when every "
              f"shard is done, run the same command with --merge instead of --shard")
        return None
    logits = {name: np.concatenate(p) for name, p in parts.items()}
    for name in ("onnx-check", "int8-check"):
        if (work / f"{name}.json").is_file():
            checks[name.split("-")[0]] = json.loads((work / f"{name}.json").read_text())
    seconds = time.perf_counter() - t0

    def metric_of(name: str) -> float | None:
        if name not in splits or not (splits[name].labels >= 0).any():
            return None
        has = splits[name].labels >= 0
        return compute_metric(task.metric, logits[name][has].argmax(1), splits[name].labels[has])

    dev_metric, test_metric = metric_of("dev"), metric_of("test")
    params, params_wo = count_hf_parameters(model)
    tok_json = tokenizer.backend_tokenizer.to_str() if getattr(tokenizer, "is_fast", False) else None
    manifest = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "task": task.to_dict(),
        "teacher": {
            "id": teacher_name,
            "name": Path(teacher_name.rstrip("/")).name,
            "fingerprint": teacher_fp,
            "config": model.config.to_dict(),
            "dev_metric": dev_metric,
            "test_metric": test_metric,
            "params": params,
            "params_without_embeddings": params_wo,
            "max_length": max_length,
        },
        "data": {"source": data_source, "hash": data_hash, "rows": rows,
                 "transfer_source": transfer_source or None, "transfer_hash": transfer_hash},
        "augment": ({**asdict(augment), "rules": rules(augment), "rows_per_s": round(aug_rate, 1)}
                    if augment else None),
        "settings": {"max_length": max_length, "batch_size": batch_size, "device": str(device),
                     "embedding_rows": embedding_rows, "runtime": runtime},
        "runtime": {"name": runtime, "threads": threads if runtime != "torch" else None,
                    "onnx_check": checks.get("onnx"), "int8": checks.get("int8"),
                    "merged_from": [str(m) for m in merge] if merge else None},
        "labelling_seconds": round(seconds, 1),
        "labelling_rows_per_s": round(total / max(seconds, 1e-9), 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    used = None
    if embedding_rows == "used":
        used = used_token_ids(tokenizer, [t for split in splits.values() for t in split.texts], max_length)
    table = None
    if layer is not None:
        t_ctx = time.perf_counter()
        pooled = contextual.pool_rows(len(train))
        table, seen = contextual.contextual_table(model, tokenizer, [train.texts[i] for i in pooled], layer,
                                                  max_length, batch_size, device, used, progress)
        manifest["contextual"] = {"layer": layer, "rows_pooled": len(pooled), "tokens_seen": seen,
                                  "seconds": round(time.perf_counter() - t_ctx, 1)}
        table = (table, layer)
    with staged(output_dir, "label-set") as tmp_dir:
        write_label_set(tmp_dir, manifest, splits, logits, tok_json, model.get_input_embeddings().weight,
                        origin=origin, embedding_rows=used, source=source, contextual=table)
    shutil.rmtree(work, ignore_errors=True)
    metric_txt = f"{dev_metric:.4f}" if dev_metric is not None else "n/a"
    if dev_metric is not None:
        base = majority_baseline(task.metric, splits["dev"].labels, splits["train"].labels)
        metric_txt += f" (majority-class baseline {base:.4f})"
    test_txt = f", test {test_metric:.4f}" if test_metric is not None else ""
    print(f"labelled {total:,} rows in {seconds:.0f}s ({total / max(seconds, 1e-9):,.0f} rows/s); teacher dev "
          f"{task.metric} {metric_txt}{test_txt}; label set in {output_dir}")
    return LabelSet.load(output_dir)


def is_finished(output_dir: Path, key: str) -> bool:
    """Whether `output_dir` is a finished label set (its manifest, written last) with this key."""
    if check_output(output_dir, "label-set") != "ours":
        return False
    try:
        return json.loads((output_dir / "manifest.json").read_text()).get("key") == key
    except (OSError, ValueError, AttributeError):
        return False


def _save_json(path: Path, obj) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _import_shard(src: Path, work: Path, key: str) -> None:
    """Copy a shard's finished chunks (and its checks) into this run's work folder. `src` is the shard's
    --output-dir (its work folder beside it, named by the same key) or that work folder itself."""
    folder = src.parent / f".{src.name}.partial-{key[:12]}"
    if list(src.glob("*-[0-9][0-9][0-9][0-9][0-9].npy")):
        folder = src
    if not folder.is_dir():
        raise DistillError(f"--merge {src}: no finished chunks for these inputs there (looked for {folder}); "
                           "give the --output-dir each shard used, with the same teacher, data and settings")
    if folder.resolve() == work.resolve():
        return
    for f in sorted(folder.iterdir()):
        if (f.suffix == ".npy" and ".tmp." not in f.name) or f.name.endswith("-check.json"):
            if not (work / f.name).is_file():
                tmp = work / (f.name + ".tmp")
                shutil.copyfile(f, tmp)
                os.replace(tmp, work / f.name)


def _int8_gate(model, int8, tokenizer, splits, task: Task, work: Path, max_length: int, batch_size: int,
               device) -> dict:
    """Label dev with the int8 teacher (its chunks saved for the label set) and with the fp32 PyTorch
    teacher; refuse if their labels agree on fewer than INT8_MIN_AGREEMENT of the rows."""
    from distill.data.metrics import compute_metric

    path = work / "int8-check.json"
    if path.is_file():
        return json.loads(path.read_text())
    dev = splits["dev"]
    q, f = [], []
    for c, start in enumerate(range(0, len(dev), CHUNK_ROWS)):
        texts = dev.texts[start : start + CHUNK_ROWS]
        part = predict_logits(int8, tokenizer, texts, max_length, batch_size, device)
        chunk_path = work / f"dev-{c:05d}.npy"
        if not chunk_path.is_file():
            tmp = chunk_path.with_suffix(f".{os.getpid()}.tmp.npy")  # shards may write dev chunks at once
            np.save(tmp, part)
            os.replace(tmp, chunk_path)
        q.append(part)
        f.append(predict_logits(model, tokenizer, texts, max_length, batch_size, device))
    pq, pf = np.concatenate(q).argmax(1), np.concatenate(f).argmax(1)
    has = dev.labels >= 0
    agreement = float((pq == pf).mean()) if len(pq) else 1.0
    rec = {"rows": len(pq), "agreement_with_fp32": agreement, "min_agreement": onnx_teacher.INT8_MIN_AGREEMENT,
           "dev_metric": compute_metric(task.metric, pq[has], dev.labels[has]) if has.any() else None,
           "fp32_dev_metric": compute_metric(task.metric, pf[has], dev.labels[has]) if has.any() else None,
           "method": "onnxruntime.quantization.quantize_dynamic, QInt8 per-channel weights, MatMul and Gather"}
    if agreement < onnx_teacher.INT8_MIN_AGREEMENT:
        raise DistillError(f"the int8 teacher agrees with the fp32 teacher on only {100 * agreement:.2f}% of "
                           f"{len(pq)} dev labels (needs {100 * onnx_teacher.INT8_MIN_AGREEMENT:.0f}%); label with "
                           "--runtime onnx or torch")
    _save_json(path, rec)
    return rec


def cache_dir() -> Path:
    """Where `distill.train --teacher` keeps label sets: $DISTILL_CACHE or ~/.cache/distill-workbench."""
    return Path(os.environ.get("DISTILL_CACHE", Path.home() / ".cache" / "distill-workbench"))
