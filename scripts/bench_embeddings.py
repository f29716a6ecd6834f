"""Benchmark: shrinking the embedding table without fine-tuning, on real SST-2 (shipped label set).

    .venv/bin/python scripts/bench_embeddings.py --jobs 2        # ~40 min on 2 cores; reuses finished runs

For the BiLSTM (phone-sized: hidden 100 per direction, `--bilstm-width`) and the TextCNN, with the
defaults of `python -m distill.train` otherwise:
1. initialisation: dev accuracy with `--embedding-init random`, `teacher-svd` and
   `teacher-autoencoder` (full teacher vocabulary);
2. pruning: `teacher-svd --prune-vocab`: vocabulary size, parameters, bundle size and accuracy;
3. compression: `python -m distill.compress` of the pruned run at ranks 16, 32, 64 and 128 by SVD,
   by the direction-loss autoencoder (cosine + squared error) and, to isolate the direction term,
   by the same autoencoder with squared error only (`--cos-weight 0`); and, for the BiLSTM, the
   teacher's table compressed before training instead: a pruned student with a 64-wide table
   initialised by PCA or by the autoencoder (`--embed-dim 64`);
4. every run is exported (`python -m distill.export --format onnx`, fp32) and the whole bundle
   folder is measured on disk.
Targets: a pruned, compressed BiLSTM bundle under 5 MB (fp32) within 1 point of the uncompressed
student (`teacher-svd`, full vocabulary), and teacher initialisation at least as good as random.
Writes scripts/results/bench_embeddings.{json,md,png} and README.md between the markers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_students import train_all
from benchlib import publish

from distill import compress
from distill.bundle import build as export
from distill.errors import DistillError

INITS = {"random": ["--embedding-init", "random"], "svd": ["--embedding-init", "teacher-svd"],
         "autoencoder": ["--embedding-init", "teacher-autoencoder"],
         "pruned": ["--embedding-init", "teacher-svd", "--prune-vocab"]}
# the other way to a small table: the teacher's table compressed to a narrow student table before
# training (PCA or the direction-loss autoencoder), on the pruned vocabulary; BiLSTM only
NARROW = {f"pruned-e{d}-{init}": ["--embedding-init", f"teacher-{init}", "--prune-vocab", "--embed-dim", str(d)]
          for d in (64,) for init in ("svd", "autoencoder")}
METHODS = {"svd": ["--method", "svd"], "autoencoder": ["--method", "autoencoder"],
           "autoencoder-mse": ["--method", "autoencoder", "--cos-weight", "0"]}
TARGET_MB, TARGET_DROP = 5.0, 0.01


def log(msg: str) -> None:
    print(msg, flush=True)


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 1e6


def bundle(run_dir: Path, out: Path) -> dict:
    """Export run_dir to an ONNX fp32 bundle (reused when it is newer than the run)."""
    meta_path = out / "metadata.json"
    if meta_path.is_file() and meta_path.stat().st_mtime > (run_dir / "model.safetensors").stat().st_mtime:
        meta = json.loads(meta_path.read_text())
    else:
        log(f"== python -m distill.export {run_dir} --output-dir {out}")
        try:
            meta = export.run(export.parse_args([str(run_dir), "--output-dir", str(out), "--overwrite"]))
        except DistillError as e:
            return {"refused": str(e)}
    return {"bundle_mb": round(folder_mb(out), 3), "model_mb": round(meta["model_bytes"] / 1e6, 3),
            "parity_max_diff": meta["parity"]["max_abs_logit_diff"]}


def compress_run(src: Path, rank: int, method: str, threads: int) -> Path:
    out = src.with_name(f"{src.name}-{method}-r{rank}")
    if (out / "report.json").is_file():
        log(f"== {out.name}: already compressed, reusing")
        return out
    argv = [str(src), "--embedding-rank", str(rank), *METHODS[method], "--output-dir", str(out),
            "--overwrite", "--no-progress", "--latency-repeats", "3", "--threads", str(threads)]
    log(f"== python -m distill.compress {' '.join(argv)}")
    compress.run(compress.parse_args(argv))
    return out


def row_of(run_dir: Path, student: str, kind: str, reference: float | None = None) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    s = report["student"]
    comp = report.get("compression") or {}
    vocab = config.get("vocabulary") or {"size": config["tokenizer"]["vocab_size"]}
    row = {"student": student, "kind": kind, "run_dir": str(run_dir),
           "vocab": vocab.get("new_size", vocab.get("size")), "params": s["params"],
           "params_without_embeddings": s["params_without_embeddings"],
           "fp32_params_mb": round(4 * s["params"] / 1e6, 3), "dev": s["dev_metric"],
           "embedding_init": config.get("embedding_init"), "rank": comp.get("rank"),
           "fidelity": comp.get("fidelity"), "agreement_with_source": comp.get("agreement_with_source"),
           "train_seconds": report.get("bench_wall_seconds") or report.get("training", {}).get("seconds")}
    if reference is not None:
        row["drop_from_uncompressed"] = round(reference - s["dev_metric"], 6)
    return row


def bench(args) -> dict:
    runs = Path(args.out)
    exports = runs / "exports"
    rows, t0 = [], time.perf_counter()
    per_student = {"bilstm": ["--width", str(args.bilstm_width)], "cnn": []}
    for student in args.students:
        extra = NARROW if student == "bilstm" else {}
        modes = {name: [*flags, *per_student[student], *args.train_args.split()]
                 for name, flags in (INITS | extra).items()}
        train_all(runs, (student,), modes, args.jobs)
    torch.set_num_threads(args.threads)
    for student in args.students:
        ref = json.loads((runs / f"{student}-svd" / "report.json").read_text())["student"]["dev_metric"]
        for kind in INITS:
            rows.append(row_of(runs / f"{student}-{kind}", student, kind, ref))
        for kind in NARROW if student == "bilstm" else ():
            rows.append(row_of(runs / f"{student}-{kind}", student, kind, ref))
        pruned = runs / f"{student}-pruned"
        for method in METHODS:
            for rank in args.ranks:
                out = compress_run(pruned, rank, method, args.threads)
                rows.append(row_of(out, student, f"pruned + {method} r{rank}", ref))
        for r in rows:
            if r["student"] == student:
                r.update(bundle(Path(r["run_dir"]), exports / Path(r["run_dir"]).name))
    return {"rows": rows, "ranks": args.ranks, "bilstm_width": args.bilstm_width,
            "invocation_seconds": round(time.perf_counter() - t0, 1), "threads": args.threads, "jobs": args.jobs}


def targets(res: dict) -> dict:
    out = {}
    rows = res["rows"]
    bil = [r for r in rows if r["student"] == "bilstm"]
    if bil:
        ref = next(r for r in bil if r["kind"] == "svd")
        small = [r for r in bil if (r["rank"] or r["kind"] in NARROW) and r.get("bundle_mb", 1e9) < TARGET_MB]
        best = max(small, key=lambda r: r["dev"]) if small else None
        out["bilstm_under_5mb"] = {
            "reference": ref["kind"], "reference_dev": ref["dev"], "reference_bundle_mb": ref.get("bundle_mb"),
            "best": best and best["kind"], "best_dev": best and best["dev"],
            "best_bundle_mb": best and best["bundle_mb"],
            "met": bool(best and ref["dev"] - best["dev"] <= TARGET_DROP)}
    for student in {r["student"] for r in rows}:
        by = {r["kind"]: r["dev"] for r in rows if r["student"] == student}
        out[f"{student}_teacher_init_vs_random"] = {
            "random": by["random"], "svd": by["svd"], "autoencoder": by["autoencoder"],
            "met": by["svd"] >= by["random"] and by["autoencoder"] >= by["random"]}
    return out


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def render(res: dict) -> str:
    head = ("| student | run | vocabulary | params | w/o emb | bundle MB (ONNX fp32) | dev acc | vs uncompressed "
            "| table rel. error | table cosine | same predictions as pruned |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    names = {"random": "random init", "svd": "teacher-svd init (uncompressed)",
             "autoencoder": "teacher-autoencoder init", "pruned": "teacher-svd + --prune-vocab",
             **{k: f"--prune-vocab, teacher table to {k.split('-')[1][1:]} dims by "
                   f"{'PCA' if k.endswith('svd') else 'the autoencoder'} (`--embed-dim`)" for k in NARROW}}
    for r in res["rows"]:
        fid = r.get("fidelity") or {}
        drop = r.get("drop_from_uncompressed")
        lines.append("| " + " | ".join([
            r["student"], names.get(r["kind"], r["kind"]), f"{r['vocab']:,}", f"{r['params'] / 1e6:.2f}M",
            f"{r['params_without_embeddings'] / 1e6:.2f}M",
            f"{r['bundle_mb']:.2f}" if "bundle_mb" in r else "refused",
            pct(r["dev"]), "—" if r["kind"] == "svd" or drop is None else f"{-100 * drop:+.2f}",
            f"{fid['relative_error']:.3f}" if fid else "—", f"{fid['mean_cosine']:.3f}" if fid else "—",
            pct(r.get("agreement_with_source")),
        ]) + " |")
    t = res["targets"]
    notes = ["", f"SST-2 dev (872 sentences), shipped label set (MiniLM teacher, 89.22). BiLSTM: hidden "
             f"{res['bilstm_width']} per direction, embeddings 300; CNN: the defaults. Every run trains with "
             "`python -m distill.train`'s default steps; the compressed runs are the pruned run factored by "
             "`distill.compress` with no training (autoencoder-mse: the same autoencoder without its cosine "
             "term); the \"teacher table to 64 dims\" runs compress the teacher's table instead, before "
             "training. Bundle: the whole `distill.export --format onnx` folder (model, tokenizer.json, vocab.txt, "
             "labels, metadata, README), fp32. Relative error and cosine: the factored table against the "
             "trained one, per row."]
    b = t.get("bilstm_under_5mb")
    if b:
        notes.append(
            f"Target: a pruned, compressed BiLSTM under {TARGET_MB:.0f} MB within 1 point of the uncompressed "
            f"one ({pct(b['reference_dev'])}, {b['reference_bundle_mb']:.1f} MB): best under {TARGET_MB:.0f} MB is "
            f"{b['best']} at {pct(b['best_dev'])} and {b['best_bundle_mb']:.2f} MB: "
            f"{'met' if b['met'] else 'NOT met'}." if b["best"] else
            f"Target: no compressed BiLSTM bundle is under {TARGET_MB:.0f} MB: NOT met.")
    for student in ("bilstm", "cnn"):
        x = t.get(f"{student}_teacher_init_vs_random")
        if x:
            notes.append(f"Target, {student}: teacher initialisation at least as good as random: random "
                         f"{pct(x['random'])}, teacher-svd {pct(x['svd'])}, teacher-autoencoder "
                         f"{pct(x['autoencoder'])}: {'met' if x['met'] else 'NOT met'}.")
    notes.append(res["direction_claim"])
    notes.append("")
    notes.append("![size against accuracy](scripts/results/bench_embeddings.png)")
    return "\n".join(lines + notes) + "\n"


def direction_claim(res: dict) -> str:
    """Does the cosine term help at equal rank? Compare autoencoder with SVD and with autoencoder-mse."""
    wins, total, diffs = 0, 0, []
    for student in {r["student"] for r in res["rows"]}:
        by = {r["kind"]: r["dev"] for r in res["rows"] if r["student"] == student}
        for rank in res["ranks"]:
            ae, svd, mse = (by.get(f"pruned + {m} r{rank}") for m in ("autoencoder", "svd", "autoencoder-mse"))
            if None in (ae, svd, mse):
                continue
            total += 1
            wins += ae > max(svd, mse)
            diffs.append((student, rank, 100 * (ae - svd), 100 * (ae - mse)))
    detail = "; ".join(f"{s} r{k}: {a:+.2f} vs SVD, {b:+.2f} vs mse-only" for s, k, a, b in sorted(diffs))
    return (f"Direction-loss claim (Bałazy et al.): the cosine-term autoencoder beat both SVD and the "
            f"squared-error-only autoencoder at {wins} of {total} (student, rank) points, in dev accuracy "
            f"points: {detail}.")


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    marks = {"svd": "o", "autoencoder": "s", "autoencoder-mse": "^"}
    for ax, student in zip(axes, ("bilstm", "cnn")):
        rows = [r for r in res["rows"] if r["student"] == student and "bundle_mb" in r]
        for method, m in marks.items():
            pts = sorted((r["bundle_mb"], 100 * r["dev"]) for r in rows if r["kind"].startswith(f"pruned + {method} r"))
            if pts:
                ax.plot(*zip(*pts), marker=m, label=f"pruned + {method}")
        for kind, m in (("svd", "*"), ("pruned", "D"), ("random", "x"), ("autoencoder", "P"),
                        *((k, "v" if k.endswith("svd") else "h") for k in NARROW)):
            r = next((r for r in rows if r["kind"] == kind), None)
            if r:
                label = kind if kind in NARROW else f"{kind} (full table)"
                ax.scatter([r["bundle_mb"]], [100 * r["dev"]], marker=m, s=70, label=label)
        ax.axvline(TARGET_MB, color="grey", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xticks([2, 3, 5, 8, 15, 40], labels=["2", "3", "5", "8", "15", "40"])
        ax.minorticks_off()
        ax.set_title(f"{student}: SST-2 dev accuracy vs ONNX fp32 bundle size")
        ax.set_xlabel("bundle MB (log)")
        ax.set_ylabel("dev accuracy %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-embeddings"), help="where the runs go")
    p.add_argument("--students", default="bilstm,cnn", help="comma-separated: bilstm, cnn")
    p.add_argument("--ranks", default="16,32,64,128", help="comma-separated ranks for distill.compress")
    p.add_argument("--bilstm-width", type=int, default=100, help="BiLSTM hidden size per direction")
    p.add_argument("--jobs", type=int, default=2, help="training runs at once (1 thread each when > 1)")
    p.add_argument("--threads", type=int, default=2, help="threads for compression and export")
    p.add_argument("--train-args", default="", help="extra distill.train flags for every run "
                   "(e.g. '--max-steps 50' for a quick check of the script)")
    args = p.parse_args(argv)
    args.students = tuple(args.students.split(","))
    args.ranks = [int(x) for x in args.ranks.split(",")]
    res = bench(args)
    res["targets"] = targets(res)
    res["direction_claim"] = direction_claim(res)
    results = ROOT / "scripts" / "results"
    results.mkdir(exist_ok=True)
    plot(res, results / "bench_embeddings.png")
    md = render(res)
    publish("bench_embeddings", res, md)


if __name__ == "__main__":
    main()
