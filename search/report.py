"""What a search reports: one row per trial, a summary, the leaderboard (Markdown, CSV), the plot.

    rows = trial_rows(study.get_trials(deepcopy=False))
    summary = summarize(rows)
    write_leaderboard(rows, summary, out_dir, metric="accuracy", front={3, 7})
    plot(rows, out_dir / "plot.png", x_key="latency_ms", limit=2.0, front={3, 7}, metric="accuracy")

A trial's status is one of: trained (finished within budget), pruned (stopped early by the
pruner), rejected (over budget: measured, never trained), failed, running, waiting.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from distill.io import atomic_path, atomic_write_text

STATUS_ORDER = ("trained", "pruned", "rejected", "failed", "running", "waiting")
X_LABELS = {"latency_ms": "CPU latency (ms)", "size_mb": "size (MB)", "params": "parameters"}


def trial_rows(trials) -> list[dict]:
    """One flat dict per Optuna trial, whatever its state."""
    from optuna.trial import TrialState

    rows = []
    for t in trials:
        ua = t.user_attrs
        cost = ua.get("cost", {})
        metric = None
        if t.state == TrialState.COMPLETE:
            status = "rejected" if "rejected" in ua else "trained"
            metric = None if status == "rejected" else t.values[0]
        elif t.state == TrialState.PRUNED:
            status, metric = "pruned", ua.get("pruned_metric")
        else:
            status = {TrialState.FAIL: "failed", TrialState.RUNNING: "running"}.get(t.state, "waiting")
        seconds = None
        if t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({
            "trial": t.number, "student": ua.get("student", ""), "status": status,
            "dev_metric": metric, "latency_ms": cost.get("latency_ms"),
            "latency_runtime": cost.get("latency_runtime", ""), "size_mb": cost.get("size_mb"),
            "params": cost.get("params"), "params_without_embeddings": cost.get("params_without_embeddings"),
            "train_seconds": ua.get("train_seconds"), "check_seconds": ua.get("check_seconds"),
            "trial_seconds": seconds, "over_budget": ua.get("rejected", ""),
            "config": ua.get("config", ""), "command": ua.get("command", ""), "tb": ua.get("tb", ""),
            "worker": ua.get("worker", ""),
            "start": t.datetime_start, "end": t.datetime_complete, "params_sampled": t.params,
        })
    return rows


def ranked(rows: list[dict]) -> list[dict]:
    """Trained trials by metric (best first), then pruned by their best epoch, then the rest."""
    def key(r):
        m = r["dev_metric"]
        return (STATUS_ORDER.index(r["status"]), -(m if m is not None else -1e9), r["trial"])
    return sorted(rows, key=key)


def summarize(rows: list[dict]) -> dict:
    """Counts per status, the training time the budget saved, and the study's wall-clock span."""
    n = {s: sum(r["status"] == s for r in rows) for s in STATUS_ORDER}
    trained_s = [r["train_seconds"] for r in rows if r["status"] == "trained" and r["train_seconds"]]
    median_train = statistics.median(trained_s) if trained_s else None
    rejected = [r for r in rows if r["status"] == "rejected"]
    starts = [r["start"] for r in rows if r["start"]]
    ends = [r["end"] for r in rows if r["end"]]
    return {
        "trials": len(rows), **n,
        "rejected_check_seconds": round(sum(r["check_seconds"] or 0 for r in rejected), 2),
        "median_train_seconds": None if median_train is None else round(median_train, 2),
        # what the rejected trials would have cost had they trained like the median trained trial
        "saved_seconds_estimate": None if median_train is None else round(len(rejected) * median_train, 1),
        "study_wall_seconds": round((max(ends) - min(starts)).total_seconds(), 1) if ends else 0.0,
        "train_seconds_total": round(sum(r["train_seconds"] or 0 for r in rows), 1),
    }


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def _cells(r: dict, rank: int, front: set[int] | None, out_dir: Path | None) -> list[str]:
    m = r["dev_metric"]
    tb = r["tb"]
    if tb and out_dir is not None:
        try:
            tb = str(Path(tb).resolve().relative_to(out_dir.resolve()))
        except ValueError:
            pass
    status = r["status"] + (f" ({r['over_budget']})" if r["over_budget"] else "")
    cells = [str(rank), str(r["trial"]), r["student"], status,
             _fmt(None if m is None else 100 * m, ".2f"), _fmt(r["latency_ms"], ".3f"),
             _fmt(r["size_mb"], ".2f"), _fmt(r["params"], ","), _fmt(r["params_without_embeddings"], ","),
             _fmt(r["train_seconds"], ".0f"), r["config"], f"[tb]({tb})" if tb else ""]
    if front is not None:
        cells.insert(2, "✓" if r["trial"] in front else "")
    return cells


def leaderboard_markdown(rows: list[dict], metric: str, front: set[int] | None = None,
                         out_dir: Path | None = None, limit: int | None = None) -> str:
    runtimes = sorted({r["latency_runtime"] for r in rows if r["latency_runtime"]})
    latency = "latency ms" + (f" ({', '.join(runtimes)})" if runtimes else "")
    head = ["rank", "trial", "student", "status", f"dev {metric}", latency, "size MB", "params",
            "params w/o emb", "train s", "config", "TensorBoard"]
    if front is not None:
        head.insert(2, "Pareto")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(ranked(rows)[:limit], 1):
        lines.append("| " + " | ".join(_cells(r, i, front, out_dir)) + " |")
    return "\n".join(lines) + "\n"


def summary_lines(summary: dict, budget_text: str) -> list[str]:
    s = summary
    lines = [f"budget: {budget_text}",
             f"trials: {s['trials']} ({s['trained']} trained, {s['pruned']} pruned, "
             f"{s['rejected']} rejected by the budget before training"
             + (f", {s['failed']} failed" if s["failed"] else "")
             + (f", {s['running']} running" if s["running"] else "") + ")"]
    if s["rejected"]:
        saved = s["saved_seconds_estimate"]
        lines.append(f"the budget check took {s['rejected_check_seconds']:.1f} s for the rejected trials"
                     + ("" if saved is None else f" and saved about {saved / 60:.1f} min of training "
                        f"({s['rejected']} x the median trained trial, {s['median_train_seconds']:.0f} s)"))
    lines.append(f"study wall time {s['study_wall_seconds'] / 60:.1f} min "
                 f"({s['train_seconds_total'] / 60:.1f} min of training across all trials)")
    return lines


def write_leaderboard(rows: list[dict], summary: dict, out_dir: Path, metric: str, budget_text: str,
                      front: set[int] | None = None, latency_text: str = "") -> tuple[Path, Path]:
    """leaderboard.md (summary + table) and leaderboard.csv (every field) in out_dir."""
    lines = summary_lines(summary, budget_text) + ([f"latency column: {latency_text}"] if latency_text else [])
    md = "# Search leaderboard\n\n" + "\n".join(f"- {x}" for x in lines)
    md += f"\n- TensorBoard: `tensorboard --logdir {out_dir / 'trials'}`\n\n"
    md += leaderboard_markdown(rows, metric, front, out_dir)
    commands = [r for r in ranked(rows) if r["command"]]
    if commands:
        md += ("\n## Retraining a trial\n\nEach trial is one `python -m distill.train` command: run it to train the "
               "trial's student on every training row (`search.run --retrain N` runs the best N of them).\n\n")
        md += "\n".join(f"- trial {r['trial']} ({r['status']}): `{r['command']}`" for r in commands) + "\n"
    md_path, csv_path = out_dir / "leaderboard.md", out_dir / "leaderboard.csv"
    atomic_write_text(md_path, md)
    fields = ["rank", "trial", "student", "status", "pareto", "dev_metric", "latency_ms", "latency_runtime",
              "size_mb", "params",
              "params_without_embeddings", "train_seconds", "check_seconds", "over_budget", "config",
              "command", "params_sampled", "tb", "worker"]
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for i, r in enumerate(ranked(rows), 1):
            w.writerow(r | {"rank": i, "pareto": "" if front is None else int(r["trial"] in front),
                            "params_sampled": json.dumps(r["params_sampled"], sort_keys=True)})
    return md_path, csv_path


def plot(rows: list[dict], path: Path, x_key: str, metric: str, limit: float | None = None,
         front: set[int] | None = None, title: str = "") -> Path:
    """Dev metric against cost per trial; rejected trials along the bottom; the Pareto front as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colours = {"bilstm": "tab:blue", "cnn": "tab:orange", "transformer": "tab:green"}
    scored = [r for r in rows if r["dev_metric"] is not None and r[x_key] is not None]
    ys = [100 * r["dev_metric"] for r in scored]
    floor = (min(ys) - 2) if ys else 0.0
    for student in sorted({r["student"] for r in rows if r["student"]}):
        c = colours.get(student, "tab:gray")
        done = [r for r in scored if r["student"] == student and r["status"] == "trained"]
        pruned = [r for r in scored if r["student"] == student and r["status"] == "pruned"]
        rej = [r for r in rows if r["student"] == student and r["status"] == "rejected" and r[x_key] is not None]
        if done:
            ax.scatter([r[x_key] for r in done], [100 * r["dev_metric"] for r in done], c=c, label=student)
        if pruned:
            ax.scatter([r[x_key] for r in pruned], [100 * r["dev_metric"] for r in pruned], facecolors="none",
                       edgecolors=c, label=f"{student} (pruned)")
        if rej:
            ax.scatter([r[x_key] for r in rej], [floor] * len(rej), marker="x", c=c,
                       label=f"{student} (over budget, not trained)")
    if front:
        pts = sorted((r[x_key], 100 * r["dev_metric"]) for r in scored if r["trial"] in front)
        if pts:
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", c="black", lw=1, label="Pareto front")
    if limit is not None:
        ax.axvline(limit, ls="--", c="red", lw=1, label="budget")
    if x_key in ("latency_ms", "params") and scored:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if x_key == "params" else f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel(X_LABELS.get(x_key, x_key))
    ax.set_ylabel(f"dev {metric} (%)")
    ax.set_title(title or "search: dev metric against cost", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
