"""`criterion="auto"`: the criterion our cross-validated measurements support at a given budget.

The rule is read off BENCHMARKS.md section 1 (FSDD leave one speaker out, 6 folds, every method
at the same MACs and fine-tuning; bench/results/criteria_fsdd_loso.json and
criteria_fsdd_cnn6_loso.json):

- keeping 50% of the MACs, Torch-Pruning's first-order Taylor importance |w dL/dw| over the
  dependency group (`tp-taylor`, scored on training batches) led every method on dcase21net,
  ahead of Torch-Pruning's group magnitude by 2.8 points [0.5, 5.5]. (Until 2026-12 `auto`
  chose our own per-filter `taylor` here, which that table never measured; `tp-taylor` is the
  registered form of the measured importance, tp.importance.TaylorImportance.)
- keeping 30% or 15%, Torch-Pruning's group magnitude (`tp-magnitude`) led on dcase21net and
  on cnn6 at a quarter width (by 10.7 points [1.0, 22.1] over our best on cnn6 at 30%).

Between the measured budgets (0.5 and 0.3) the switch sits at KEEP_SWITCH = 0.4, midway: it is a
choice, not a measurement. Without calibration data (tp-taylor needs it) the choice is always
`tp-magnitude`. Quaternion layers have no measured choice (Torch-Pruning's importances cannot
score them), so `auto` refuses them and says what to pick instead. RAVDESS (issue 25) is to
confirm or change this rule once recipes/ravdess/criteria.yaml has run: a default chosen on one
dataset stands only where the other agrees.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audioprune.errors import ArgumentError
from audioprune.pruning.engine import PruningGraph
from audioprune.pruning.plan import Plan, resolve_plan

AUTO = "auto"
KEEP_SWITCH = 0.4  # keep at least this fraction of the MACs: tp-taylor; below: tp-magnitude
MODERATE, HEAVY = "tp-taylor", "tp-magnitude"
log = logging.getLogger("audioprune.prune")
EVIDENCE = ("BENCHMARKS.md section 1: FSDD leave-one-speaker-out, dcase21net and cnn6 w0.25 "
            "at 50/30/15% of the MACs")


@dataclass(frozen=True)
class AutoChoice:
    """What `auto` chose, and from what: kept_macs is the fraction of the MACs a uniform plan
    of the same request keeps."""

    criterion: str
    kept_macs: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"asked": AUTO, "chosen": self.criterion, "kept_macs": self.kept_macs,
                "reason": self.reason, "evidence": EVIDENCE}


def rule(kept_macs: float, calibration: bool) -> tuple[str, str]:
    """The criterion for a plan keeping `kept_macs` of the MACs, and why."""
    if not calibration:
        return HEAVY, "no calibration data (tp-taylor needs training batches)"
    if kept_macs >= KEEP_SWITCH:
        return MODERATE, f"keeps {kept_macs:.2f} of the MACs (>= {KEEP_SWITCH}): moderate budget"
    return HEAVY, f"keeps {kept_macs:.2f} of the MACs (< {KEEP_SWITCH}): heavy budget"


def check_no_options(options: Mapping[str, Any] | None) -> None:
    """`auto` picks a criterion with its defaults: options meant for one criterion would reach
    another, so they are refused (by ap.prune, prune runs and recipes alike)."""
    if options:
        raise ArgumentError(f"`criterion` auto takes no criterion options, got "
                            f"{', '.join(sorted(options))}")


def choose_criterion(graph: PruningGraph, plan: Plan, *, calibration: bool) -> AutoChoice:
    """Resolve `auto` for pruning the model behind `graph` (already traced, by the Pruner) by
    `plan`. The budget is read from the uniform plan of the same request (global ranking and
    sensitivity allocation need a criterion to plan, and land on the same MACs by construction
    when a budget is given)."""
    quaternion = sorted(n for n, layer in graph.layers().items() if layer.quaternion)
    if quaternion:
        raise ArgumentError(f"`criterion` auto: no measurement supports a choice for quaternion "
                            f"layers ({', '.join(quaternion)}); name one, e.g. l1 (the "
                            f"QCNN paper's) or taylor")
    uniform = plan.replace(allocation="uniform", global_ranking=False)
    resolved = resolve_plan(uniform, graph)
    base = resolved.base.get("macs", 0)
    kept = resolved.predicted["macs"] / base if base else 1.0
    criterion, reason = rule(kept, calibration)
    log.info("criterion auto -> %s (%s)", criterion, reason)
    return AutoChoice(criterion, round(float(kept), 4), reason)
