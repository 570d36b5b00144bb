"""Report rows aggregated over folds and seeds: one line per method with its 95% interval and
its paired difference to a baseline.

A *method* is everything that defines a run except its unit: the dataset and protocol (the split
with the fold number left out: "fold:*/6"), the model (architecture, its options, training
epochs), and for a pruned run its parent's method, the criterion with its options, the plan and
the fine-tuning (epochs, rounds, KD). A *unit* is the (fold, seed) pair a run was made on. Runs of
one method on different units are its samples; two methods are compared unit by unit.

Baselines (`baseline`):
  "parent" (default)  each pruned or distilled run against its own parent/teacher on the same
                      unit: the change the compression caused (negative = a drop).
  a criterion name    each pruned method against the method that differs only in the criterion
                      (same parent method, same plan, same fine-tuning), e.g. "l1".
  a model name        each unpruned method against the unpruned method of that model (the
                      architecture, or the full label such as "dcase21net(width=0.5) e20"), e.g.
                      qdcase21net against dcase21net.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audioprune.report.collect import Row
from audioprune.report.stats import Interval, PairedDifference, mean_ci, paired_difference

__all__ = ["MethodSummary", "aggregate", "protocol_of", "unit_of"]

_FOLD = re.compile(r"^fold:(\d+)/(\d+)$")


def protocol_of(split: str) -> str:
    """The split with its fold number left out: "fold:3/6" -> "fold:*/6"."""
    m = _FOLD.match(split)
    return f"fold:*/{m.group(2)}" if m else split


def unit_of(row: Row) -> str:
    """The (fold, seed) a run was made on, as a label: "fold3-s0" (or "s0" without folds)."""
    m = _FOLD.match(row.split)
    seed = "s?" if row.seed is None else f"s{row.seed}"
    return f"fold{m.group(1)}-{seed}" if m else seed


@dataclass
class MethodSummary:
    """One method over its units: the metric's mean and interval, costs, and the paired
    difference to the baseline (None when there is none)."""

    dataset: str
    protocol: str
    kind: str
    model: str
    criterion: str
    plan: str
    parent_method: str
    metric: str
    values: dict[str, float]  # unit -> metric
    params: float
    macs: float
    parent_params: float | None
    parent_macs: float | None
    interval: Interval
    baseline: str | None = None
    difference: PairedDifference | None = None
    rows: list[Row] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.kind == "unpruned":
            return self.model
        if not self.plan:  # a quantized copy: how it was quantized is the criterion
            return f"{self.parent_method} / {self.criterion}"
        return f"{self.parent_method} / {self.criterion} @ {self.plan}"


def _method_key(row: Row, rows: dict[str, Row]) -> tuple:
    parent = rows.get(row.parent) if row.parent else None
    parent_method = parent.method if parent is not None else ""
    return (row.dataset, protocol_of(row.split), row.kind, parent_method, row.method)


def aggregate(rows: list[Row], baseline: str = "parent", ci: str = "bootstrap") -> list[MethodSummary]:
    """One MethodSummary per method among `rows`, in the rows' order (see the module docs)."""
    by_key = {r.key: r for r in rows}
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        if r.value is not None:
            groups.setdefault(_method_key(r, by_key), []).append(r)
    out: dict[tuple, MethodSummary] = {}
    for key, members in groups.items():
        first = members[0]
        values = {}
        for r in members:  # one value per unit: a repeated unit (a re-run) keeps the last
            values[unit_of(r)] = float(r.value)  # type: ignore[arg-type]
        out[key] = MethodSummary(
            dataset=first.dataset, protocol=protocol_of(first.split), kind=first.kind,
            model=first.model_label, criterion=first.criterion, plan=first.plan_key,
            parent_method=key[3], metric=first.metric, values=values,
            params=float(np.mean([r.params for r in members])),
            macs=float(np.mean([r.macs for r in members])),
            parent_params=_mean([r.parent_params for r in members]),
            parent_macs=_mean([r.parent_macs for r in members]),
            interval=mean_ci(list(values.values()), method=ci), rows=members)
    for key, summary in out.items():
        _compare(summary, key, out, by_key, baseline, ci)
    return list(out.values())


def _mean(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _compare(summary: MethodSummary, key: tuple, all_: dict[tuple, MethodSummary],
             by_key: dict[str, Row], baseline: str, ci: str) -> None:
    if baseline == "parent":
        if summary.kind == "unpruned":
            return
        parent_values = {}
        for r in summary.rows:
            if r.parent_value is not None:
                parent_values[unit_of(r)] = float(r.parent_value)
        summary.baseline = "parent"
        summary.difference = paired_difference(summary.values, parent_values, method=ci)
        return
    dataset, protocol, kind, parent_method, _ = key
    for other_key, other in all_.items():
        if other is summary or other_key[:2] != (dataset, protocol) or other.kind != kind:
            continue
        if kind == "unpruned":
            match = other.model == baseline or other.model.split("(")[0].split(" ")[0] == baseline
        else:
            match = (other.criterion == baseline and other.parent_method == parent_method
                     and other.plan == summary.plan)
        if match:
            summary.baseline = baseline
            summary.difference = paired_difference(summary.values, other.values, method=ci)
            return
