"""`audioprune report`: run directories in, report.md + report.csv + trade-off plots out."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from audioprune.errors import UserError
from audioprune.fileio import atomic_write
from audioprune.measure.budget import Budget, parse_budget
from audioprune.report.aggregate import MethodSummary, aggregate
from audioprune.report.collect import Row, collect_rows, find_runs
from audioprune.report.table import (csv_table, has_compute, markdown_table, shows_deployment,
                                     summary_csv, summary_markdown)

AXIS_NAMES = {"macs": "MACs", "params": "parameters", "memory": "parameter memory"}

log = logging.getLogger("audioprune")


@dataclass
class Report:
    rows: list[Row]
    markdown: Path
    csv: Path
    plots: list[Path] = field(default_factory=list)
    table: str = ""
    plots_skipped: str | None = None  # why there are no plots (matplotlib not installed)
    summaries: list[MethodSummary] = field(default_factory=list)  # over folds and seeds
    summary_table: str = ""
    summary_csv: Path | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def write_report(runs: list[str | Path], out: str | Path, title: str | None = None,
                 baseline: str = "parent", ci: str = "bootstrap",
                 budget: str | Budget | None = None) -> Report:
    """Write report.md, report.csv and, per dataset and split, accuracy-vs-MACs and
    accuracy-vs-params PNGs into `out`. `runs`: run directories, globs or folders holding runs;
    pruned runs bring their parents in. When a method was run on several folds or seeds, a
    second table (and summary.csv, and plots with error bars) gives its mean with a 95%
    interval and its paired difference to `baseline` (report/aggregate.py; `ci`:
    "bootstrap" or "t", report/stats.py). With int8 runs (audioprune quantize) or a `budget`
    ("dcase2024", ...), the table adds precision, parameter memory and MACs per second (and
    pass/fail), and a metric-vs-memory plot shows fp32 and int8 models side by side."""
    out = Path(out)
    limits = parse_budget(budget) if isinstance(budget, str) else budget
    rows = collect_rows(find_runs(list(runs)))
    summaries = aggregate(rows, baseline=baseline, ci=ci)
    repeated = any(len(s.values) > 1 for s in summaries)
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.split), []).append(r)
    plots: list[Path] = []
    try:
        from audioprune.report.plots import plot_tradeoff
    except UserError as exc:  # the table is worth writing without the optional plots
        skipped: str | None = str(exc)
        log.warning("no plots: %s", exc)
        groups = {}
    else:
        skipped = None
    for (dataset, split), members in groups.items():
        if not any(r.value is not None for r in members):
            continue
        suffix = "" if len(groups) == 1 else "-" + _slug(f"{dataset}-{split}")
        axes = ["macs", "params"] + (["memory"] if shows_deployment(members, limits) else [])
        for what in axes:
            label = AXIS_NAMES[what]
            plots.append(plot_tradeoff(members, what, out / f"{members[0].metric}_vs_{what}{suffix}.png",
                                       title=f"{dataset} [{split}]: {members[0].metric} vs {label}",
                                       budget=limits))
    if repeated and not skipped:
        from audioprune.report.plots import plot_summaries

        by_protocol: dict[tuple[str, str], list[MethodSummary]] = {}
        for s in summaries:
            by_protocol.setdefault((s.dataset, s.protocol), []).append(s)
        for (dataset, protocol), members in by_protocol.items():
            suffix = "" if len(by_protocol) == 1 else "-" + _slug(f"{dataset}-{protocol}")
            for what in ("macs", "params"):
                label = AXIS_NAMES[what]
                plots.append(plot_summaries(
                    members, what, out / f"{members[0].metric}_vs_{what}_mean_ci{suffix}.png",
                    title=f"{dataset} [{protocol}]: {members[0].metric} vs {label}, mean and "
                          f"95% CI"))
    table = markdown_table(rows, limits)
    threads = sorted({r.threads for r in rows if r.threads is not None})
    lines = [f"# {title or 'audioprune report'}", "", table]
    if threads:
        lines.append(f"Latency: median of warmed-up repetitions, {', '.join(map(str, threads))} "
                     f"thread(s); b1/b32 = batch size. Runs without profile.json show "
                     f"\"-\" (`audioprune profile RUN`).")
    else:
        lines.append("No run has been profiled yet (`audioprune profile RUN` adds latency).")
    lines += ["", "Deltas are against each run's unpruned parent on the same test split "
              "(accuracy in percentage points; params and MACs relative). MACs are per example, "
              "model body without the log-mel front end.", ""]
    if shows_deployment(rows, limits):
        lines += ["Deployment: `precision` is what the model runs in (int8: an `audioprune "
                  "quantize` copy, its accuracy measured by ONNX Runtime on the int8 model; its "
                  "Δ is against the fp32 model it was quantized from). Parameter memory counts "
                  "every parameter (zeros too) at that precision, 4/2/1 B each (an int8 model's "
                  "parameters are those of its deployed graph: batch norm folded, quaternion "
                  "layers fused); MMACs/s = MACs per example / seconds of audio per example: "
                  "the DCASE low-complexity rules." +
                  (f" Budget {limits.describe()}." if limits else ""), ""]
    if has_compute(rows):
        lines += ["Compute is the wall-clock time (s) that produced each model, from its "
                  "metrics.json: training; for a pruned model its fine-tuning only (the parent's "
                  "training is not included); for a KD student its training plus the teacher's "
                  "logits. Total compute adds every run the model was made from (its parent or "
                  "teacher, and theirs), each once: the fair cost when comparing pruning with KD, "
                  "as both need the trained teacher. \"-\": a run without timings (or whose "
                  "parent's are unknown). Times depend on the machine and its load.", ""]
    summary_text, summary_path = "", None
    if repeated:
        summary_text = summary_markdown(summaries)
        how = ("the percentile bootstrap over the units (10,000 resamples; optimistic with few "
               "units)" if ci == "bootstrap" else "Student's t over the units")
        lines += ["## Over folds and seeds", "", summary_text,
                  f"Units are (fold, seed) pairs; a method's runs on different units are its "
                  f"samples. Mean and 95% interval by {how}. \"vs baseline\": the paired "
                  f"difference ({'each run minus its own parent on the same unit' if baseline == 'parent' else f'minus {baseline} on the same units'}), "
                  f"* where its interval excludes 0; Wilcoxon signed-rank and sign-test p-values "
                  f"over the paired units.", ""]
        summary_path = out / "summary.csv"
        data_s = summary_csv(summaries)
        atomic_write(summary_path, lambda p: p.write_text(data_s))
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    if skipped:
        lines.append(f"No plots: {skipped}.")
    lines += ["", "Runs:", ""] + [f"- `{r.name}`: {r.key}" for r in rows]
    md, csv_path = out / "report.md", out / "report.csv"
    text = "\n".join(lines) + "\n"
    atomic_write(md, lambda p: p.write_text(text))
    data = csv_table(rows, limits)
    atomic_write(csv_path, lambda p: p.write_text(data))
    return Report(rows, md, csv_path, plots, table, skipped, summaries, summary_text, summary_path)
