"""Benchmark: the quick start's command, as a user runs it. How long, and how accurate?

    .venv/bin/python scripts/bench_default.py                    # seeds 0 1 2 (about 3 min each on 2 idle cores)
    .venv/bin/python scripts/bench_default.py --seeds 0 --dense  # also the dense table, interleaved
    .venv/bin/python scripts/bench_default.py --report-only      # publish the finished runs
    .venv/bin/python scripts/bench_default.py --seeds 0 --dense --max-steps 20 --out /tmp/smoke   # a smoke test
    .venv/bin/python scripts/bench_default.py --train-flags='--width 300' --tag w300 --out runs/bench-default-w300

Each run is `python -m distill.train --student bilstm --seed S` (the shipped SST-2 label set, every
default), one at a time on all cores, with an empty label cache (DISTILL_CACHE points at a new folder),
timed from the command's start to its exit. The training seconds come from the run's report.

`--dense` runs the same command a second time per seed with the table trained densely (every row, every
step: `distill.training.rows` switched off), right after the first, so the two are timed under the same
conditions. The targets (issue 14): the command within 600 s on 2 cores, and a mean dev accuracy of at
least 88.0. Each run's 1-minute load average at its start is recorded. It lags: it still counts the
run (or whatever ran) just before, so it tells that the machine had been busy, not that something ran
beside the run. Run nothing else meanwhile; the times are otherwise upper bounds.
Results: scripts/results/bench_default.{json,md} and README.md between the bench_default markers.

`--train-flags` adds flags to every run (a variant of the default, say another width) and `--tag NAME`
publishes it as bench_default_NAME, so that it does not replace the default's table. A run folder made
with other flags is refused, not reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import publish

TARGET_SECONDS = 600
TARGET_DEV = 88.0
# the dense variant: the same command with the used-rows training switched off
DENSE = ("import runpy, sys; from distill.training import rows; rows.MAX_USED_SHARE = 0.0; "
         "sys.argv = ['distill.train'] + sys.argv[1:]; runpy.run_module('distill.train', run_name='__main__')")


def _flags(argv: list[str]) -> list[str]:
    """argv without its --output-dir: the same run spelled from another folder is the same run."""
    at = argv.index("--output-dir")
    return argv[:at] + argv[at + 2:]


def run_one(argv: list[str], run_dir: Path, dense: bool) -> dict:
    """Run the command into run_dir (reused if its report exists); its wall time, training time, dev accuracy."""
    record = run_dir / "bench.json"
    if record.is_file():
        out = json.loads(record.read_text())
        if _flags(out.get("argv", argv)) != _flags(argv):  # records from before argv was kept are trusted
            sys.exit(f"error: {run_dir} was made by other flags ({' '.join(out['argv'])}); "
                     "delete it, or give this variant another --out")
        return out
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", DENSE, *argv] if dense else [sys.executable, "-m", "distill.train", *argv]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cache, open(f"{run_dir}.log", "w") as log:
        print(f"== {'(dense) ' if dense else ''}python -m distill.train {' '.join(argv)}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "DISTILL_CACHE": cache})
        wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"error: the run failed; see {run_dir}.log")
    report = json.loads((run_dir / "report.json").read_text())
    out = {"wall_seconds": round(wall, 1), "training_seconds": report["training"]["seconds"],
           "dev": round(100 * report["student"]["dev_metric"], 2), "steps": report["training"]["steps"],
           "load_at_start": round(load, 2), "threads": report["threads"], "dense": dense, "argv": argv}
    record.write_text(json.dumps(out, indent=1))
    print(f"   wall {out['wall_seconds']:.0f} s, training {out['training_seconds']:.0f} s, dev {out['dev']:.2f}",
          flush=True)
    return out


def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def table(runs: dict[str, dict], flags: list[str]) -> str:
    rows = ["| seed | table | command s | training s | dev accuracy | load at start |", "|---|---|---|---|---|---|"]
    for key in sorted(runs):
        r = runs[key]
        rows.append(f"| {key.split('-')[0][1:]} | {'dense' if r['dense'] else 'used rows'} | {r['wall_seconds']:.0f} "
                    f"| {r['training_seconds']:.0f} | {r['dev']:.2f} | {r['load_at_start']:.2f} |")
    lines = []
    for dense in (False, True):
        sel = [r for r in runs.values() if r["dense"] == dense]
        if not sel:
            continue
        walls, devs = [r["wall_seconds"] for r in sel], [r["dev"] for r in sel]
        variant = "the default" if not flags else f"`{' '.join(flags)}`"
        name = "dense table" if dense else f"{variant} (used rows only)"
        lines.append(f"- {name}, {len(sel)} run(s): command {mean_std(walls)} s (max {max(walls):.0f}; target "
                     f"{TARGET_SECONDS}: {'met' if max(walls) <= TARGET_SECONDS else 'NOT met'}), dev "
                     f"{mean_std(devs)}" + ("" if dense else f" (target mean {TARGET_DEV}: "
                                            f"{'met' if statistics.mean(devs) >= TARGET_DEV else 'NOT met'})"))
    pairs = [(runs[k], runs[k.replace("-used", "-dense")]) for k in runs
             if k.endswith("-used") and k.replace("-used", "-dense") in runs]
    if pairs:
        ratios = [d["training_seconds"] / u["training_seconds"] for u, d in pairs]
        lines.append(f"- training time, dense / used rows, same seed, each run alone on the machine: "
                     f"{', '.join(f'{x:.2f}x' for x in ratios)}")
    threads = sorted({r["threads"] for r in runs.values()})
    command = " ".join(["python -m distill.train --student bilstm --seed S", *flags])
    return (f"`{command}`, every other default: the shipped SST-2 label "
            f"set, 5,000 steps at most. One run at a time on {', '.join(map(str, threads))} CPU thread(s), "
            "an empty label cache, timed from start to exit. The load average lags: at a run's start it "
            "still counts the run before.\n\n" + "\n".join(rows) + "\n\n"
            + "\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--dense", action="store_true", help="also time each seed with the dense table, right after")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-default"), help="where the runs go")
    p.add_argument("--report-only", action="store_true", help="run nothing: publish the finished runs")
    p.add_argument("--max-steps", type=int, default=None, help="a smoke test of this script (not the default run)")
    p.add_argument("--train-flags", default="", help="more distill.train flags for every run, as one string, "
                   "e.g. --train-flags='--width 150' (a variant of the default: give it --tag and --out)")
    p.add_argument("--tag", default=None, help="publish as bench_default_TAG (its own results and README "
                   "markers), so that a variant does not replace the default's table")
    args = p.parse_args()
    flags = shlex.split(args.train_flags)
    if flags and args.tag is None:
        p.error("--train-flags makes a variant of the default run: give it a --tag (and its own --out)")
    out = Path(args.out)
    if not args.report_only:
        for seed in args.seeds:
            for dense in (False, True) if args.dense else (False,):
                key = f"s{seed}-{'dense' if dense else 'used'}"
                argv = ["--student", "bilstm", "--seed", str(seed), "--output-dir", str(out / key), "--no-progress"]
                argv += (["--max-steps", str(args.max_steps)] if args.max_steps else []) + flags
                run_one(argv, out / key, dense)
    runs = {d.name: json.loads((d / "bench.json").read_text()) for d in sorted(out.glob("s*-*"))
            if (d / "bench.json").is_file()}
    if not runs:
        sys.exit(f"error: no finished runs in {out}; run without --report-only first")
    name = "bench_default" + (f"_{args.tag}" if args.tag else "")
    publish(name, {"runs": runs, "train_flags": flags, "target_seconds": TARGET_SECONDS, "target_dev": TARGET_DEV},
            table(runs, flags))


if __name__ == "__main__":
    main()
