"""The report table, twice: Markdown for people (rounded, units in the header) and CSV for
scripts (raw numbers, empty cells where there is nothing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from audioprune.report.collect import Row

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


def markdown_table(rows: Sequence[Row]) -> str:
    """One Markdown table; accuracy in %, deltas against each row's unpruned parent
    (accuracy in percentage points, params and MACs relative); when runs recorded their timings,
    the wall-clock compute that produced each model, alone and with its parent/teacher."""
    lat = latency_columns(rows)
    comp = ["compute (s)", "total compute (s)"] if has_compute(rows) else []
    metric = _metric_label(rows)
    unit = " %" if metric == "accuracy" else ""
    datasets = {(r.dataset, r.split) for r in rows}
    head = ["run", "model"] + (["dataset"] if len(datasets) > 1 else []) + \
        ["criterion", "plan", f"{metric}{unit}", "Δ" + (" pts" if unit else ""), "params (k)",
         "Δ params", "MACs (M)", "Δ MACs", "size (kB)"] + comp + [f"{k} (ms)" for k in lat]
    numeric = 7 + len(comp) + len(lat)  # from the metric column on
    align = ["---"] * (len(head) - numeric) + ["---:"] * numeric
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        cells = [r.name, r.model] + ([f"{r.dataset} [{r.split}]"] if len(datasets) > 1 else []) + [
            r.criterion or ("unpruned" if r.is_parent else MISSING), r.plan or MISSING,
            _fmt_value(r), _fmt_delta_value(r), f"{r.params / 1e3:,.1f}", _fmt_rel(r.delta_params()),
            f"{r.macs / 1e6:,.2f}", _fmt_rel(r.delta_macs()), f"{r.size_bytes / 1e3:,.1f}",
        ] + ([_fmt_seconds(r.compute_s), _fmt_seconds(r.total_compute_s)] if comp else []) + [
            f"{r.latency_ms[k]:.3f}" if k in r.latency_ms else MISSING for k in lat]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["run", "path", "model", "kind", "dataset", "split", "criterion", "plan", "level",
              "metric", "value", "delta_value", "params", "delta_params", "macs", "delta_macs",
              "size_bytes", "parent", "threads", "compute_seconds", "total_compute_seconds"]


def csv_table(rows: Sequence[Row]) -> str:
    """The same rows as CSV with raw numbers (fractions, counts, bytes, ms)."""
    lat = latency_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS + [f"latency_ms_{k.replace(' ', '_')}" for k in lat])

    def cell(v: object) -> object:
        return "" if v is None else v

    for r in rows:
        writer.writerow([cell(v) for v in (
            r.name, r.key, r.model, r.kind, r.dataset, r.split, r.criterion, r.plan, r.level,
            r.metric, r.value, r.delta_value(), r.params, r.delta_params(), r.macs, r.delta_macs(),
            r.size_bytes, r.parent, r.threads, r.compute_s, r.total_compute_s)] + [cell(r.latency_ms.get(k)) for k in lat])
    return buf.getvalue()
