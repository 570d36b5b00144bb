"""The report table, twice: Markdown for people (rounded, units in the header) and CSV for
scripts (raw numbers, empty cells where there is nothing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from audioprune.report.collect import Row

if TYPE_CHECKING:  # pragma: no cover
    from audioprune.measure.budget import Budget
    from audioprune.report.aggregate import MethodSummary
    from audioprune.report.stats import Interval

MISSING = "-"


def latency_columns(rows: Sequence[Row]) -> list[str]:
    """The latency settings measured for at least one row: eager before onnxruntime, b1 before b32."""
    keys = {k for r in rows for k in r.latency_ms}

    def order(key: str) -> tuple:
        backend, _, batch = key.partition(" ")
        digits = "".join(ch for ch in batch if ch.isdigit())
        return (backend != "eager", backend, int(digits) if digits else 0, batch)

    return sorted(keys, key=order)


def has_compute(rows: Sequence[Row]) -> bool:
    """Whether any row knows the wall time that produced it (the compute columns are shown)."""
    return any(r.compute_s is not None for r in rows)


def _fmt_seconds(s: float | None) -> str:
    return MISSING if s is None else f"{s:,.0f}"


def _metric_label(rows: Sequence[Row]) -> str:
    metrics = {r.metric for r in rows}
    return metrics.pop() if len(metrics) == 1 else "accuracy/mAP"


def _pct_metric(row: Row) -> bool:
    return row.metric == "accuracy"


def _fmt_value(row: Row) -> str:
    if row.value is None:
        return MISSING
    return f"{100 * row.value:.2f}" if _pct_metric(row) else f"{row.value:.4f}"


def _fmt_delta_value(row: Row) -> str:
    d = row.delta_value()
    if d is None:
        return ""
    return f"{100 * d:+.2f}" if _pct_metric(row) else f"{d:+.4f}"


def _fmt_rel(d: float | None) -> str:
    return "" if d is None else f"{100 * d:+.1f}%"


def shows_deployment(rows: Sequence[Row], budget: "Budget | None" = None) -> bool:
    """Whether the deployment columns (precision, parameter memory, MACs per second) are shown:
    some run is quantized, or a budget is checked."""
    return budget is not None or any(r.precision != "fp32" for r in rows)


def within(budget: "Budget", row: Row) -> bool | None:
    """Whether `row` meets every limit of `budget` (None: its clip length is unknown)."""
    if budget.macs_per_second is not None and row.macs_per_second is None:
        return None
    return ((budget.params_bytes is None or row.params_bytes <= budget.params_bytes) and
            (budget.macs_per_second is None or row.macs_per_second <= budget.macs_per_second))  # type: ignore[operator]


def _deployment_cells(r: Row, budget: "Budget | None") -> list[str]:
    mps = r.macs_per_second
    cells = [r.precision, f"{r.params_bytes / 1e3:,.1f}", MISSING if mps is None else f"{mps / 1e6:,.2f}"]
    if budget is not None:
        ok = within(budget, r)
        cells.append(MISSING if ok is None else ("pass" if ok else "FAIL"))
    return cells


def markdown_table(rows: Sequence[Row], budget: "Budget | None" = None) -> str:
    """One Markdown table; accuracy in %, deltas against each row's unpruned parent
    (accuracy in percentage points, params and MACs relative); when runs recorded their timings,
    the wall-clock compute that produced each model, alone and with its parent/teacher; with
    quantized runs or a `budget`, the precision, the parameter memory at that precision and the
    MACs per second of audio (the DCASE rules), and whether each run is within the budget."""
    lat = latency_columns(rows)
    dep = (["precision", "param memory (kB)", "MMACs/s"] + (["budget"] if budget else [])) \
        if shows_deployment(rows, budget) else []
    comp = ["compute (s)", "total compute (s)"] if has_compute(rows) else []
    metric = _metric_label(rows)
    unit = " %" if metric == "accuracy" else ""
    datasets = {(r.dataset, r.split) for r in rows}
    head = ["run", "model"] + (["dataset"] if len(datasets) > 1 else []) + \
        ["criterion", "plan", f"{metric}{unit}", "Δ" + (" pts" if unit else ""), "params (k)",
         "Δ params", "MACs (M)", "Δ MACs", "size (kB)"] + dep + comp + [f"{k} (ms)" for k in lat]
    numeric = 7 + len(dep) + len(comp) + len(lat)  # from the metric column on
    align = ["---"] * (len(head) - numeric) + ["---:"] * numeric
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        cells = [r.name, r.model] + ([f"{r.dataset} [{r.split}]"] if len(datasets) > 1 else []) + [
            r.criterion or ("unpruned" if r.is_parent else MISSING), r.plan or MISSING,
            _fmt_value(r), _fmt_delta_value(r), f"{r.params / 1e3:,.1f}", _fmt_rel(r.delta_params()),
            f"{r.macs / 1e6:,.2f}", _fmt_rel(r.delta_macs()), f"{r.size_bytes / 1e3:,.1f}",
        ] + (_deployment_cells(r, budget) if dep else []) + ([_fmt_seconds(r.compute_s), _fmt_seconds(r.total_compute_s)] if comp else []) + [
            f"{r.latency_ms[k]:.3f}" if k in r.latency_ms else MISSING for k in lat]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["run", "path", "model", "kind", "dataset", "split", "criterion", "plan", "level",
              "metric", "value", "delta_value", "params", "delta_params", "macs", "delta_macs",
              "size_bytes", "parent", "threads", "compute_seconds", "total_compute_seconds",
              "precision", "params_bytes", "macs_per_second"]


def csv_table(rows: Sequence[Row], budget: "Budget | None" = None) -> str:
    """The same rows as CSV with raw numbers (fractions, counts, bytes, ms); `within_budget`
    (true/false) after them when a budget is checked."""
    lat = latency_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS + [f"latency_ms_{k.replace(' ', '_')}" for k in lat] +
                    (["within_budget"] if budget else []))

    def cell(v: object) -> object:
        return "" if v is None else v

    for r in rows:
        writer.writerow([cell(v) for v in (
            r.name, r.key, r.model, r.kind, r.dataset, r.split, r.criterion, r.plan, r.level,
            r.metric, r.value, r.delta_value(), r.params, r.delta_params(), r.macs, r.delta_macs(),
            r.size_bytes, r.parent, r.threads, r.compute_s, r.total_compute_s, r.precision,
            r.params_bytes, r.macs_per_second)] + [cell(r.latency_ms.get(k)) for k in lat] +
            ([cell(within(budget, r))] if budget else []))
    return buf.getvalue()


# ------------------------------------------------------------------------ over folds and seeds


def _fmt_metric(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return MISSING
    scaled = 100 * value if metric == "accuracy" else value
    digits = 1 if metric == "accuracy" else 3
    return f"{scaled:+.{digits}f}" if signed else f"{scaled:.{digits}f}"


def _fmt_interval(iv: "Interval", metric: str, signed: bool = False) -> str:
    if iv.n == 0:
        return MISSING
    mean = _fmt_metric(iv.mean, metric, signed)
    if iv.n == 1:
        return mean
    return f"{mean} [{_fmt_metric(iv.low, metric, signed)}, {_fmt_metric(iv.high, metric, signed)}]"


def _fmt_p(p: float | None) -> str:
    return MISSING if p is None else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def summary_markdown(summaries: Sequence["MethodSummary"]) -> str:
    """One line per method over its units: mean [95% CI], the paired difference to the baseline
    [95% CI] with * when the interval excludes 0, the paired tests' p-values, the costs."""
    if not summaries:
        return ""
    metric = summaries[0].metric
    unit = " (points)" if metric == "accuracy" else ""
    lines = [f"| protocol | method | units | {metric}{' %' if metric == 'accuracy' else ''} "
             f"[95% CI] | vs baseline{unit} [95% CI] | Wilcoxon p | sign p | params (k) | "
             f"MACs (M) | MACs / parent |",
             "|---|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for s in summaries:
        d = s.difference
        diff = MISSING
        if d is not None and d.interval.n:
            diff = f"{_fmt_interval(d.interval, metric, signed=True)} vs {s.baseline}" + \
                (" *" if d.significant else "")
        ratio = f"{s.macs / s.parent_macs:.3f}" if s.parent_macs else ""
        lines.append(f"| {s.dataset} {s.protocol} | {s.label} | {len(s.values)} | "
                     f"{_fmt_interval(s.interval, metric)} | {diff} | "
                     f"{_fmt_p(d.wilcoxon_p if d else None)} | {_fmt_p(d.sign_p if d else None)} | "
                     f"{s.params / 1e3:.1f} | {s.macs / 1e6:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def summary_csv(summaries: Sequence["MethodSummary"]) -> str:
    """The same as CSV with raw numbers (fractions, counts) and the per-unit values."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "protocol", "kind", "method", "parent_method", "criterion", "plan",
                "metric", "units", "mean", "ci_low", "ci_high", "ci_method", "baseline",
                "diff_mean", "diff_low", "diff_high", "diff_units", "wilcoxon_p", "sign_p",
                "significant", "params", "macs", "parent_params", "parent_macs", "values"])
    for s in summaries:
        d = s.difference
        di = d.interval if d is not None else None
        w.writerow([s.dataset, s.protocol, s.kind, s.label, s.parent_method, s.criterion, s.plan,
                    s.metric, len(s.values), s.interval.mean, s.interval.low, s.interval.high,
                    s.interval.method, s.baseline or "",
                    *(("", "", "", "") if di is None else (di.mean, di.low, di.high, di.n)),
                    "" if d is None or d.wilcoxon_p is None else d.wilcoxon_p,
                    "" if d is None or d.sign_p is None else d.sign_p,
                    "" if d is None else d.significant, round(s.params, 1), round(s.macs, 1),
                    "" if s.parent_params is None else round(s.parent_params, 1),
                    "" if s.parent_macs is None else round(s.parent_macs, 1),
                    " ".join(f"{u}={v:.6g}" for u, v in sorted(s.values.items()))])
    return buf.getvalue()
