"""Accuracy-versus-cost plots (matplotlib, Agg): one coloured line per criterion starting at the
unpruned model (a star), one marker shape and line style per model, the Pareto front as a grey staircase with
its points ringed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audioprune.extras import require

matplotlib = require("matplotlib", "plotting a report")  # an optional dependency: `measure`

matplotlib.use("Agg")  # files only: no display needed, and safe in threads and on servers
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from audioprune.fileio import atomic_write  # noqa: E402
from audioprune.report.collect import Row  # noqa: E402
from audioprune.report.pareto import pareto_front  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from audioprune.measure.budget import Budget
    from audioprune.report.aggregate import MethodSummary

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]
LINESTYLES = ["-", "--", ":", "-."]
AXES = {  # what -> (row attribute, scale, axis label)
    "macs": ("macs", 1e6, "MACs per example (MMACs)"),
    "params": ("params", 1e3, "parameters (k params)"),
    "memory": ("params_bytes", 1e3, "parameter memory at the deployed precision (kB)"),
}


def _budget_limit(budget: "Budget | None", what: str, rows: Sequence[Row]) -> float | None:
    """The budget's limit in the axis' units before scaling (None: it has none there)."""
    if budget is None:
        return None
    if what == "memory":
        return budget.params_bytes
    clips = {r.clip_seconds for r in rows}
    if what == "macs" and budget.macs_per_second is not None and len(clips) == 1 and None not in clips:
        return budget.macs_per_second * clips.pop()  # type: ignore[operator]
    return None


def _y(row: Row) -> float:
    assert row.value is not None
    return 100 * row.value if row.metric == "accuracy" else row.value


def _y_label(rows: Sequence[Row]) -> str:
    return "test accuracy (%)" if rows[0].metric == "accuracy" else f"test {rows[0].metric}"


def plot_tradeoff(rows: Sequence[Row], what: str, path: Path, title: str | None = None,
                  budget: "Budget | None" = None) -> Path:
    """Draw `rows` (one dataset and split) as metric vs `what` ("macs" | "params" | "memory":
    parameter bytes at each run's precision, where int8 copies sit left of their fp32 models)
    into `path`; a `budget`'s limit on that axis is a dashed vertical line (MACs: per second x
    the rows' clip length)."""
    attr, scale, x_label = AXES[what]
    rows = [r for r in rows if r.value is not None]
    if not rows:
        raise ValueError("no row has a metric to plot")
    x = {r.key: getattr(r, attr) / scale for r in rows}
    by_key = {r.key: r for r in rows}
    criteria = sorted({r.criterion for r in rows if not r.is_parent})
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(criteria)}
    models = list(dict.fromkeys(r.model for r in rows))
    marker = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(models)}
    style = {m: LINESTYLES[i % len(LINESTYLES)] for i, m in enumerate(models)}

    fig, ax = plt.subplots(figsize=(8.0, 4.8), dpi=110)
    front = [rows[i] for i in pareto_front([x[r.key] for r in rows], [_y(r) for r in rows])]
    if len(front) > 1:
        ax.step([x[r.key] for r in front], [_y(r) for r in front], where="post", color="0.55",
                lw=6, alpha=0.35, zorder=1, solid_capstyle="round")
    ax.scatter([x[r.key] for r in front], [_y(r) for r in front], s=260, facecolors="none",
               edgecolors="0.35", linewidths=1.4, zorder=2)

    series: dict[tuple[str | None, str], list[Row]] = {}
    for r in rows:
        if not r.is_parent:
            series.setdefault((r.parent, r.criterion), []).append(r)
    for (parent_key, criterion), members in sorted(series.items(), key=lambda kv: str(kv[0])):
        members = sorted(members, key=lambda r: -x[r.key])
        start = [by_key[parent_key]] if parent_key in by_key else []
        line = start + members
        ax.plot([x[r.key] for r in line], [_y(r) for r in line], color=colours[criterion], lw=1.6,
                ls=style[members[0].model], alpha=0.85, zorder=3)
        ax.scatter([x[r.key] for r in members], [_y(r) for r in members], s=46,
                   marker=marker[members[0].model], color=colours[criterion], edgecolors="white",
                   linewidths=0.6, zorder=4)

    parents = [r for r in rows if r.is_parent]
    ax.scatter([x[r.key] for r in parents], [_y(r) for r in parents], s=260, marker="*",
               color="gold", edgecolors="black", linewidths=1.0, zorder=5)

    handles = [Line2D([], [], color=colours[c], lw=1.6, marker="o", ms=6, label=c) for c in criteria]
    if len(models) > 1:
        handles += [Line2D([], [], ls=style[m], color="0.3", marker=marker[m], ms=6, label=m)
                    for m in models]
    handles += [Line2D([], [], ls="", marker="*", ms=13, color="gold", markeredgecolor="black",
                       label="unpruned"),
                Line2D([], [], color="0.55", lw=6, alpha=0.35, marker="o", ms=12, mfc="none",
                       mec="0.35", label="Pareto front")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=9, title="criterion / model" if len(models) > 1 else "criterion",
              title_fontsize=9, alignment="left")
    ax.set_xlabel(x_label)
    ax.set_ylabel(_y_label(rows))
    ax.set_title(title or f"{_y_label(rows)} vs {x_label.split(' (')[0]}", fontsize=11)
    limit = _budget_limit(budget, what, rows)
    if limit is not None:
        ax.axvline(limit / scale, color="firebrick", ls="--", lw=1.2, zorder=1)
        ax.annotate(f"{budget.name} limit", (limit / scale, 1.0),  # type: ignore[union-attr]
                    xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color="firebrick", fontsize=8)
    xs = list(x.values())
    if min(xs) > 0 and max(xs) / min(xs) > 30:
        ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.08, y=0.12)
    ax.get_xlim(), ax.get_ylim()  # settle the autoscaled limits before placing the labels
    to_axes = ax.transData + ax.transAxes.inverted()
    for r in parents:
        left_room = to_axes.transform((x[r.key], _y(r)))[0] > 0.3
        ax.annotate(f"{r.model} (unpruned)", (x[r.key], _y(r)), xytext=(-10 if left_room else 10, 9),
                    textcoords="offset points", ha="right" if left_room else "left", fontsize=8.5,
                    zorder=6, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none",
                                    "alpha": 0.8})
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return Path(path)


def plot_summaries(summaries: Sequence["MethodSummary"], what: str, path: Path,
                   title: str | None = None) -> Path:
    """Methods over folds and seeds (one dataset and protocol): the mean metric against the mean
    `what` ("macs" | "params") with 95% interval error bars; one colour per criterion, a line from
    each unpruned method (a star) through its pruned methods."""
    attr, scale, x_label = AXES[what]
    summaries = [s for s in summaries if s.interval.n]
    if not summaries:
        raise ValueError("no method has a metric to plot")
    pct = 100.0 if summaries[0].metric == "accuracy" else 1.0

    def xy(s: "MethodSummary") -> tuple[float, float, list[float]]:
        iv = s.interval
        return (getattr(s, attr) / scale, pct * iv.mean,
                [pct * (iv.mean - iv.low), pct * (iv.high - iv.mean)])

    criteria = sorted({s.criterion for s in summaries if s.kind != "unpruned"})
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(criteria)}
    fig, ax = plt.subplots(figsize=(8.0, 4.8), dpi=110)
    parents = {s.model: s for s in summaries if s.kind == "unpruned"}
    lines: dict[tuple[str, str], list["MethodSummary"]] = {}
    for s in summaries:
        if s.kind != "unpruned":
            lines.setdefault((s.parent_method, s.criterion), []).append(s)
    for (parent, criterion), members in sorted(lines.items()):
        members = sorted(members, key=lambda s: -getattr(s, attr))
        chain = ([parents[parent]] if parent in parents else []) + members
        pts = [xy(s) for s in chain]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colours[criterion], lw=1.3,
                alpha=0.8, zorder=3)
        own = [xy(s) for s in members]
        ax.errorbar([p[0] for p in own], [p[1] for p in own],
                    yerr=np.array([p[2] for p in own]).T, fmt="o", ms=5, capsize=3,
                    color=colours[criterion], zorder=4, label=criterion)
    for s in parents.values():
        x, y, err = xy(s)
        ax.errorbar([x], [y], yerr=np.array([err]).T, fmt="*", ms=15, capsize=3, color="gold",
                    mec="black", ecolor="black", zorder=5)
        ax.annotate(f"{s.model} (unpruned)", (x, y), xytext=(8, 8), textcoords="offset points",
                    fontsize=8.5)
    n_units = max(len(s.values) for s in summaries)
    ax.set_xlabel(x_label)
    ax.set_ylabel(("test accuracy (%)" if pct == 100 else f"test {summaries[0].metric}")
                  + f", mean and 95% CI over {n_units} units")
    ax.set_title(title or "mean over folds and seeds", fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9,
              title="criterion", title_fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return Path(path)
