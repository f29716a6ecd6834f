"""What the benchmarks share: where results go, and writing them (JSON, Markdown, the README's table)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from distill.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "results"


def update_readme(md: str, marker: str) -> bool:
    """Put `md` into README.md between <!-- marker --> and <!-- /marker -->; False if the markers are absent."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{start}\n{md}{end}{tail}")
    return True


def publish(name: str, data: dict, md: str, readme: bool = True) -> None:
    """scripts/results/NAME.json and NAME.md, the table in README.md (between its markers), and on stdout."""
    atomic_write_json(RESULTS / f"{name}.json", data)
    atomic_write_text(RESULTS / f"{name}.md", md)
    if readme and update_readme(md, name):
        print(f"table written into README.md ({name})")
    print(md)


def run_jobs(jobs: list[tuple[Path, list[str]]], parallel: int = 1, module: str = "distill.train",
             done: str | None = "report.json") -> None:
    """`python -m MODULE ARGV` for each (run_dir, argv) whose run_dir has no `done` file yet (every one with
    done=None: a command that knows itself when it has nothing left to do), `parallel` at a time (one
    thread each when parallel > 1), each logged to <run_dir>.log; a finished run is reused, a killed one
    resumes (pass --resume in argv). Exits with the log's name if a run fails, and with the run's name if a
    finished run was made by another argv (a benchmark rerun with other flags into the same folders)."""
    for run_dir, argv in jobs:
        if done == "report.json" and (run_dir / done).is_file():
            made_by = json.loads((run_dir / done).read_text()).get("bench_argv")
            if made_by is not None and made_by != argv:  # reports from before bench_argv are trusted
                sys.exit(f"error: {run_dir} was trained with other flags ({' '.join(made_by)}); "
                         "delete it, or give this benchmark another output folder")
    todo = [(d, a) for d, a in jobs if done is None or not (d / done).is_file()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished; {len(todo)} to run", flush=True)
    running = []
    while todo or running:
        while todo and len(running) < parallel:
            run_dir, asked = todo.pop(0)
            argv = asked + (["--threads", "1"] if parallel > 1 else [])
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            print(f"== python -m {module} {' '.join(argv)}", flush=True)
            log = open(f"{run_dir}.log", "a")  # noqa: SIM115 (closed when the run ends)
            proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT)
            running.append((proc, run_dir, asked, time.perf_counter(), log))
        time.sleep(2)
        for item in list(running):
            proc, run_dir, asked, t0, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            if proc.returncode != 0:
                sys.exit(f"error: {run_dir} failed; see {run_dir}.log")
            if done != "report.json":
                continue
            report = json.loads((run_dir / "report.json").read_text())
            report["bench_wall_seconds"] = round(time.perf_counter() - t0, 1)
            report["bench_parallel_jobs"] = parallel
            report["bench_argv"] = asked
            atomic_write_json(run_dir / "report.json", report)
            dev, wall = report["student"]["dev_metric"], report["bench_wall_seconds"]
            print(f"   {run_dir.name}: dev {dev:.4f} in {wall:.0f} s", flush=True)
