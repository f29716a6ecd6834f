"""Benchmark: the smallest BiLSTM and CNN bundles that keep their accuracy, on real SST-2 (shipped label set).

    .venv/bin/python scripts/bench_size.py --jobs 2       # about 4 hours on 2 cores; reuses finished runs

For each student, the reference is the default `python -m distill.train --student S`, exported at fp32.
Every other point is a `distill.train` with `--prune-vocab` and a narrower embedding table (for the
BiLSTM also a narrower LSTM), with the default schedule otherwise. Each run is exported by
`python -m distill.export --format onnx --no-vocab-txt` (the vocabulary once, in tokenizer.json) with
`--quantize int8 --keep-int8 always` (a bundle over its size budget is not a valid result, so int8 is
kept for its size even where it is slower); the references also at fp32, and the points of T4_POINTS
also with `--table-bits 4` (the embedding table at 4 bits; `-t4` points were trained for it with
`distill.train --table-bits 4`). Every point runs 3 seeds.
Every bundle is then scored on SST-2 dev by `python -m distill.predict BUNDLE --json` reading the dev
sentences on stdin: through the bundle alone, with its own tokenizer. The size is the whole folder.

Targets (issue 15, part 2): a BiLSTM bundle of at most 3.0 MB within 1.0 point of the reference
BiLSTM's fp32 bundle, and a CNN bundle of at most 3.0 MB within 1.5 points of the reference CNN's.
Writes scripts/results/bench_size.{json,md,png} and the README's table (between its markers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import RESULTS, publish, run_jobs

from distill.teacher.labelset import DEFAULT_LABELS, LabelSet

PRUNE = ["--prune-vocab"]
POINTS = {  # student: {point: distill.train flags on top of the defaults}; "default" is the reference
    "bilstm": {"default": [],
               "w150": ["--width", "150"],  # Tang et al.'s hidden size, full table
               "pruned-e128": [*PRUNE, "--embed-dim", "128"],
               # for a 4-bit table (int8-t4): wider tables fit in 3 MB; -t4 trains the table for it
               "pruned-e192": [*PRUNE, "--embed-dim", "192"],
               "pruned-e192-t4": [*PRUNE, "--embed-dim", "192", "--table-bits", "4"],
               "pruned-w150": [*PRUNE, "--width", "150"],
               "pruned-e128-w150": [*PRUNE, "--embed-dim", "128", "--width", "150"],
               "pruned-e64-w150": [*PRUNE, "--embed-dim", "64", "--width", "150"],
               "pruned-e160-w150": [*PRUNE, "--embed-dim", "160", "--width", "150"],
               # tokens used at least twice (augmented copies count): a smaller vocabulary buys a wider table
               "pruned2-e192-w150": [*PRUNE, "--prune-min-count", "2", "--embed-dim", "192", "--width", "150"],
               "pruned5-e192-w150": [*PRUNE, "--prune-min-count", "5", "--embed-dim", "192", "--width", "150"]},
    "cnn": {"default": [],
            "pruned-e128": [*PRUNE, "--embed-dim", "128"],
            "pruned-e64": [*PRUNE, "--embed-dim", "64"]},
}
TARGETS = {"bilstm": (3.0, 1.0), "cnn": (3.0, 1.5)}  # student: (most MB, most points below the reference)
PRECISIONS = {"fp32": [], "int8": ["--quantize", "int8", "--keep-int8", "always", "--table-bits", "8"],
              "int8-t4": ["--quantize", "int8", "--keep-int8", "always", "--table-bits", "4"]}
SHIP = ["--no-vocab-txt"]  # the vocabulary once, in tokenizer.json: what a size budget ships
# the exports of each point: the references at fp32 and int8, every other point at int8, and a 4-bit table
# where it was trained for one (and, for contrast, the same point trained in float)
T4_POINTS = {"pruned-e192", "pruned-e192-t4"}


def precisions(point: str) -> list[str]:
    return ["fp32", "int8"] if point == "default" else ["int8", "int8-t4"] if point in T4_POINTS else ["int8"]


def log(msg: str) -> None:
    print(msg, flush=True)


def dev_rows(labels: Path) -> tuple[list[str], list[int]]:
    """The label set's dev texts, as distill.predict reads them (a pair as 'first<TAB>second'), and labels."""
    dev = LabelSet.load(labels).splits["dev"]
    return ["\t".join(t) for t in dev.texts], dev.labels.tolist()


def export(run_dir: Path, out: Path, precision: str, threads: int) -> dict:
    """The run's bundle at this precision: its metadata, or {"refused": why} when the export's parity check
    refuses it (int8 labels agreeing on under 99% of dev rows: a result, not a crash). Reused when newer than
    the run and made with the same flags."""
    meta_path, record_path = out / "metadata.json", Path(f"{out}.argv.json")
    argv = [str(run_dir), "--format", "onnx", *PRECISIONS[precision], *SHIP, "--output-dir", str(out), "--overwrite",
            "--threads", str(threads)]
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if (record.get("argv") == argv
            and record_path.stat().st_mtime > (run_dir / "model.safetensors").stat().st_mtime):
        return {"refused": record["refused"]} if record.get("refused") else json.loads(meta_path.read_text())
    log(f"== python -m distill.export {' '.join(argv)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{out}.log", "w") as f:
        proc = subprocess.run([sys.executable, "-m", "distill.export", *argv], cwd=ROOT, stdout=f,
                              stderr=subprocess.STDOUT)
    last = (Path(f"{out}.log").read_text().strip().splitlines() or [""])[-1]
    if proc.returncode != 0 and "parity check failed" not in last:
        sys.exit(f"error: the export of {run_dir} failed; see {out}.log")
    refused = last.removeprefix("error: ") if proc.returncode != 0 else None
    record_path.write_text(json.dumps({"argv": argv, "refused": refused}))
    return {"refused": refused} if refused else json.loads(meta_path.read_text())


def score(bundle: Path, texts: list[str], labels: list[int], threads: int) -> dict:
    """Accuracy of `python -m distill.predict BUNDLE --json` on the texts (one per stdin line)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "distill.predict", str(bundle), "--json", "--threads", str(threads)],
                          cwd=ROOT, input="".join(t + "\n" for t in texts), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: distill.predict {bundle} failed: {proc.stderr.strip()[-500:]}")
    names = json.loads((bundle / "metadata.json").read_text())["task"]["label_names"]
    predicted = [names.index(json.loads(line)["label"]) for line in proc.stdout.splitlines()]
    if len(predicted) != len(labels):
        sys.exit(f"error: distill.predict {bundle} gave {len(predicted)} lines for {len(labels)} texts")
    return {"accuracy": sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels),
            "rows": len(labels), "predict_seconds": round(time.perf_counter() - t0, 1)}


def bench(args) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    out = Path(args.out)
    jobs, what = [], {}  # what: run_dir -> (student, point, seed)
    for student in args.students:
        for point, flags in POINTS[student].items():
            for seed in args.seeds:
                run_dir = out / "runs" / f"{student}-{point}-s{seed}"
                what[run_dir] = (student, point, seed)
                jobs.append((run_dir, ["--student", student, "--seed", str(seed), "--output-dir", str(run_dir),
                                       "--latency-repeats", "1", "--no-progress", "--resume", *flags,
                                       *args.train_args.split()]))
    t0 = time.perf_counter()
    run_jobs(jobs, args.jobs)
    texts, labels = dev_rows(DEFAULT_LABELS)

    def one(run_dir, precision):  # export, then score through the bundle alone (subprocesses: side by side)
        student, point, seed = what[run_dir]
        report = json.loads((run_dir / "report.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        bundle = out / "bundles" / f"{run_dir.name}-{precision}"
        meta = export(run_dir, bundle, precision, args.threads)
        base = {"student": student, "point": point, "seed": seed, "flags": POINTS[student][point],
                "precision": precision, "run_dir": str(run_dir), "bundle": str(bundle)}
        if "refused" in meta:
            log(f"   {bundle.name}: refused by the export ({meta['refused']})")
            return base | {"refused": meta["refused"], "dev": None}
        scored = score(bundle, texts, labels, args.threads)
        row = {
            "student": student, "point": point, "seed": seed, "flags": POINTS[student][point],
            "precision": precision, "shipped_precision": meta.get("precision"), "run_dir": str(run_dir),
            "bundle": str(bundle), "vocab": config["student_config"]["vocab_size"],
            "embed_dim": config["student_config"]["embed_dim"],
            "width": config["student_config"].get("hidden", config["student_config"].get("num_filters")),
            "params": report["student"]["params"],
            "params_without_embeddings": report["student"]["params_without_embeddings"],
            "bundle_bytes": meta["bundle_bytes"], "bundle_mb": meta["bundle_bytes"]["total"] / 1e6,
            "training_dev": report["student"]["dev_metric"], "dev": scored["accuracy"],
            "training_steps": report["training"]["steps"], "train_wall_seconds": report.get("bench_wall_seconds"),
            "predict_seconds": scored["predict_seconds"]}
        log(f"   {bundle.name}: {row['bundle_mb']:.2f} MB, dev {100 * scored['accuracy']:.2f} "
            f"(distill.predict), {meta.get('precision')} shipped")
        return row

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        todo = [(d, p) for d, _ in jobs for p in precisions(what[d][1])]
        rows = list(pool.map(lambda jp: one(*jp), todo))
    points = summarise(rows)
    return {"rows": rows, "points": points, "seeds": args.seeds, "jobs": args.jobs, "threads": args.threads,
            "labels": "shipped SST-2 label set (MiniLM teacher)", "dev_rows": len(labels),
            "invocation_seconds": round(time.perf_counter() - t0, 1), "targets": targets(points)}


def summarise(rows: list[dict]) -> list[dict]:
    """One entry per (student, point, precision): dev mean and std over its seeds, the largest bundle."""
    import statistics

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["student"], r["point"], r["precision"]), []).append(r)
    out = []
    for rs in groups.values():
        ok = [r for r in rs if r["dev"] is not None]
        refused = [r for r in rs if r["dev"] is None]
        entry = {k: rs[0][k] for k in ("student", "point", "flags", "precision")} | {
            "seeds": [r["seed"] for r in ok], "refused_seeds": [r["seed"] for r in refused],
            "refused": refused[0]["refused"] if refused else None}
        if ok:
            devs = [r["dev"] for r in ok]
            big = max(ok, key=lambda r: r["bundle_mb"])  # the same architecture each seed; the largest counts
            entry |= {k: big[k] for k in ("vocab", "embed_dim", "width", "params", "bundle_bytes", "bundle_mb")} | {
                "shipped_precision": "/".join(sorted({str(r["shipped_precision"]) for r in ok})),
                "devs": devs, "dev": statistics.fmean(devs),
                "dev_std": statistics.stdev(devs) if len(devs) > 1 else 0.0}
        else:
            entry |= {"devs": [], "dev": None, "dev_std": None, "bundle_mb": None}
        out.append(entry)
    return out


def targets(points: list[dict]) -> dict:
    out = {}
    for student, (most_mb, most_drop) in TARGETS.items():
        mine = [r for r in points if r["student"] == student]
        ref = next((r for r in mine if r["point"] == "default" and r["precision"] == "fp32"), None)
        if ref is None:
            continue
        small = [r for r in mine if not r["refused_seeds"] and r["bundle_mb"] <= most_mb]
        best = max(small, key=lambda r: (r["dev"], -r["bundle_mb"])) if small else None
        out[student] = {
            "most_mb": most_mb, "most_drop_points": most_drop, "reference_dev": ref["dev"],
            "reference_std": ref["dev_std"], "reference_mb": ref["bundle_mb"],
            "best": best and f"{best['point']} {best['precision']}",
            "best_dev": best and best["dev"], "best_std": best and best["dev_std"],
            "best_mb": best and best["bundle_mb"],
            "drop_points": best and round(100 * (ref["dev"] - best["dev"]), 2),
            "met": bool(best and 100 * (ref["dev"] - best["dev"]) <= most_drop)}
    return out


def render(res: dict) -> str:
    head = ("| student | run | precision | vocabulary | embed | width | params | bundle MB | of it: model / "
            "tokenizer.json | dev, mean ± std (distill.predict) | each seed | vs reference |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    refs = {s: t["reference_dev"] for s, t in res["targets"].items()}
    for r in res["points"]:
        if r["dev"] is None:
            lines.append(f"| {r['student']} | {r['point']} | {r['precision']} | " + " | ".join(["—"] * 6) +
                         f" | refused by the export, every seed ({r['refused']}) | — | — |")
            continue
        b = r["bundle_bytes"]
        shipped = r["precision"] if r["shipped_precision"] in ("None", r["precision"].split("-")[0]) else \
            f"{r['precision']} (shipped {r['shipped_precision']})"
        ref = refs.get(r["student"])
        vs = "reference" if r["point"] == "default" and r["precision"] == "fp32" else (
            "—" if ref is None else f"{100 * (r['dev'] - ref):+.2f}")
        lines.append("| " + " | ".join([
            r["student"], r["point"] + (" (`" + " ".join(r["flags"]) + "`)" if r["flags"] else " (defaults)"),
            shipped, f"{r['vocab']:,}", str(r["embed_dim"]), str(r["width"]), f"{r['params'] / 1e6:.2f}M",
            f"{r['bundle_mb']:.2f}", f"{b['model'] / 1e6:.2f} / {b['tokenizer.json'] / 1e6:.2f}",
            f"{100 * r['dev']:.2f} ± {100 * r['dev_std']:.2f}" + (
                f" (seed {', '.join(map(str, r['refused_seeds']))} refused by the export: {r['refused']})"
                if r["refused_seeds"] else ""), " / ".join(f"{100 * d:.2f}" for d in r["devs"]),
            vs]) + " |")
    seeds = ", ".join(map(str, res["seeds"]))
    lines += ["", f"SST-2 dev ({res['dev_rows']} sentences), {res['labels']}, seeds {seeds}: mean ± standard "
              "deviation over the seeds (one seed on this dev set moves by about 0.5 points). Every run uses "
              "`distill.train`'s default schedule (dev every 500 steps, patience 4, at most 5,000 steps). Each "
              "run is exported at int8 (`--quantize int8 --keep-int8 always`), the references also at fp32, and "
              "the 192-wide points also at int8 with a 4-bit embedding table (int8-t4: `--table-bits 4` as well; "
              "`pruned-e192-t4` was trained for it with `distill.train --table-bits 4`), all with "
              "`--no-vocab-txt` (the vocabulary once, in tokenizer.json); the accuracy is `distill.predict`'s on "
              "the bundle, and the size the whole bundle folder (model, tokenizer.json, tokenizer_config.json, "
              f"labels, metadata, README). `distill.predict` ran at {res['threads']} thread(s).", ""]
    for student, t in res["targets"].items():
        lines.append(f"- {student}: at most {t['most_mb']:.1f} MB within {t['most_drop_points']:.1f} points of the "
                     f"reference ({100 * t['reference_dev']:.2f} ± {100 * t['reference_std']:.2f}, "
                     f"{t['reference_mb']:.1f} MB fp32): " + (
                         f"best is {t['best']} at {100 * t['best_dev']:.2f} ± {100 * t['best_std']:.2f} and "
                         f"{t['best_mb']:.2f} MB, {t['drop_points']:.2f} below: "
                         f"{'met' if t['met'] else 'NOT met'}" if t["best"] else "no bundle is that small: NOT met"))
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for student, marker in (("bilstm", "o"), ("cnn", "s")):
        for precision, color in (("fp32", "tab:blue"), ("int8", "tab:orange"), ("int8-t4", "tab:green")):
            pts = [r for r in res["points"] if r["student"] == student and r["precision"] == precision
                   and r["dev"] is not None]
            if pts:
                ax.errorbar([r["bundle_mb"] for r in pts], [100 * r["dev"] for r in pts],
                            yerr=[100 * r["dev_std"] for r in pts], fmt=marker, color=color, capsize=2,
                            label=f"{student} {precision}")
                for i, r in enumerate(pts):  # alternate above and below: neighbours' names do not collide
                    ax.annotate(r["point"], (r["bundle_mb"], 100 * r["dev"]), fontsize=7,
                                xytext=(4, 4 if i % 2 == 0 else -10), textcoords="offset points")
    ax.axvline(3.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ticks = [1, 2, 3, 5, 10, 20, 40]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("bundle folder, MB (log scale)")
    ax.set_ylabel("SST-2 dev accuracy via distill.predict, %")
    ax.set_title("Bundle size against accuracy: every point tried (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", nargs="+", choices=list(POINTS), default=list(POINTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per point (default 0 1 2)")
    p.add_argument("--jobs", type=int, default=1, help="training runs at once (one thread each when > 1)")
    p.add_argument("--threads", type=int, default=1, help="threads for the exports' checks and distill.predict")
    p.add_argument("--train-args", default="", help="more distill.train flags for every run (a smoke test: "
                   "'--max-steps 20 --eval-every 10'); the published targets need the defaults")
    p.add_argument("--out", default="runs/bench-size", help="runs and bundles (finished ones are reused)")
    args = p.parse_args()
    res = bench(args)
    if args.train_args:  # a smoke test: not the published settings
        print(render(res))
        print("not published: --train-args changes the settings the targets are measured with")
        return
    plot(res, RESULTS / "bench_size.png")
    publish("bench_size", res, render(res))


if __name__ == "__main__":
    main()
