"""Benchmark: what Tang et al.'s augmentation adds, on real SST-2 with the real MiniLM teacher.

    NLTK_DATA=../shared/data/nltk_data .venv/bin/python scripts/bench_augment.py

For each student, dev accuracy trained on
  1. gold labels only                               (runs/bench/<student>-gold)
  2. teacher logits on the original sentences       (runs/bench/<student>-original)
  3. teacher logits on original + augmented rows    (runs/bench/<student>-distilled)
all with the same number of optimiser steps (3 epochs over the 67,349 original rows; run 3 sees
each of its 3x more rows once). The rows come from the shipped label set, whose augmented rows
the teacher labelled when it was made; runs shared with scripts/bench_students.py are reused.
It also measures augmentation and labelling throughput on this CPU: 1,000 SST-2 training
sentences, 20 copies each (Tang et al.'s setting), labelled by ../shared/teachers/minilm-sst2.
Writes scripts/results/bench_augment.{json,md} and the README section between the markers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_students import MODES, STUDENTS, train_all
from benchlib import publish

from distill.data import Split, load_splits, resolve_task
from distill.data.augment import AugmentConfig
from distill.teacher.labelset import LabelSet
from distill.train import DEFAULT_LABELS

SHARED = ROOT.parent / "shared"
AUG_MODES = {"distilled": MODES["distilled"], "gold": MODES["gold"], "original": ["--rows", "original"]}


def throughput(n: int = 1000, copies: int = 20) -> dict:
    """Augmentation and labelling rows/s on n real SST-2 sentences with `copies` copies each."""
    from distill.teacher import labelling as teacher_mod

    task, splits = load_splits(resolve_task("sst2"), SHARED / "data/glue/sst2")
    # whole sentences (the dev-like part of SST-2 train is phrases too; take the longest rows)
    order = sorted(range(len(splits["train"])), key=lambda i: -len(splits["train"].texts[i][0]))[:n]
    small = {"train": Split([splits["train"].texts[i] for i in order], splits["train"].labels[order]),
             "dev": Split(splits["dev"].texts[:100], splits["dev"].labels[:100])}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ls = teacher_mod.label(str(SHARED / "teachers/minilm-sst2"), task, small, Path(tmp) / "ls",
                               augment=AugmentConfig(copies=copies), progress=True)
        wall = time.perf_counter() - t0
        m = ls.manifest
    return {"sentences": n, "copies": copies, "augmented_rows": m["data"]["rows"]["augmented"],
            "augment_rows_per_s": m["augment"]["rows_per_s"],
            "labelling_rows_per_s": m["labelling_rows_per_s"], "wall_seconds": round(wall, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "bench"), help="where the trained runs go")
    p.add_argument("--students", default=",".join(STUDENTS), help="comma-separated students")
    p.add_argument("--jobs", type=int, default=1, help="training runs at once (1 thread each when > 1)")
    p.add_argument("--sentences", type=int, default=1000, help="sentences for the throughput measurement")
    args = p.parse_args(argv)
    students = tuple(args.students.split(","))
    if not (SHARED / "teachers/minilm-sst2").is_dir():
        sys.exit(f"error: needs the real teacher and data in {SHARED}")
    shipped = LabelSet.load(DEFAULT_LABELS).manifest
    speed = throughput(args.sentences)
    results = train_all(Path(args.out), students, AUG_MODES, args.jobs)
    teacher = shipped["teacher"]["dev_metric"]
    rows = []
    for s in students:
        g, o, d = (results[(s, m)] for m in ("gold", "original", "distilled"))
        rows.append({"student": s, "gold_only": g["dev_metric"], "logits_original": o["dev_metric"],
                     "logits_augmented": d["dev_metric"], "steps": [g["steps"], o["steps"], d["steps"]],
                     "gain_3_over_1_points": round(100 * (d["dev_metric"] - g["dev_metric"]), 2),
                     "gain_3_over_2_points": round(100 * (d["dev_metric"] - o["dev_metric"]), 2),
                     "drop_3_from_teacher_points": round(100 * (teacher - d["dev_metric"]), 2)})
    data = {"teacher_dev": teacher, "shipped_label_set": {"rows": shipped["data"]["rows"],
                                                          "augment": shipped.get("augment"),
                                                          "labelling_rows_per_s": shipped.get("labelling_rows_per_s")},
            "throughput": speed, "rows": rows}
    r = shipped["data"]["rows"]
    lines = [
        f"SST-2 dev accuracy; teacher minilm-sst2 {100 * teacher:.2f}. Shipped label set: {r['train']:,} "
        f"original + {r['augmented']:,} augmented rows (2 copies per example, p_mask 0.1, p_pos 0.1, "
        "p_ng 0.25). Each run takes the same number of optimiser steps.",
        "",
        "| student | 1. gold only | 2. logits, original | 3. logits, original + augmented | 3 - 1 | 3 - 2 "
        "| teacher - 3 |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        lines.append(f"| {x['student']} | {100 * x['gold_only']:.2f} | {100 * x['logits_original']:.2f} "
                     f"| {100 * x['logits_augmented']:.2f} | {x['gain_3_over_1_points']:+.2f} "
                     f"| {x['gain_3_over_2_points']:+.2f} | {x['drop_3_from_teacher_points']:+.2f} |")
    lines += ["", f"Throughput on this CPU ({speed['sentences']:,} SST-2 sentences x {speed['copies']} copies = "
              f"{speed['augmented_rows']:,} rows): augmentation {speed['augment_rows_per_s']:,.0f} rows/s "
              f"(after POS tagging), teacher labelling {speed['labelling_rows_per_s']:,.0f} rows/s."]
    md = "\n".join(lines) + "\n"
    results_dir = ROOT / "scripts" / "results"
    results_dir.mkdir(exist_ok=True)
    publish("bench_augment", data, md)


if __name__ == "__main__":
    main()
